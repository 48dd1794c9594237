"""dsar: bulk data subject requests for the Adobe Experience Platform Privacy Service.

Library first: everything the ``dsar`` command does is reachable from here.
"""

from __future__ import annotations

from .auth import ImsTokenProvider, StaticTokenProvider, TokenProvider
from .client import PrivacyServiceClient
from .ratelimit import RateLimiter
from .retry import RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "ImsTokenProvider",
    "PrivacyServiceClient",
    "RateLimiter",
    "RetryPolicy",
    "StaticTokenProvider",
    "TokenProvider",
    "__version__",
]
