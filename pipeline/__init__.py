"""dsar: bulk data subject requests for the Adobe Experience Platform Privacy Service.

Library first: everything the ``dsar`` command does is reachable from here. The names below
are imported on first use, so that starting ``dsar`` imports nothing heavy before its
interrupt handling is in place (see :mod:`pipeline.launch`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .auth import ImsTokenProvider, StaticTokenProvider, TokenProvider
    from .client import PrivacyServiceClient
    from .ratelimit import RateLimiter
    from .retry import RetryPolicy

__version__ = "0.1.0"

_LAZY = {
    "ImsTokenProvider": ".auth",
    "StaticTokenProvider": ".auth",
    "TokenProvider": ".auth",
    "PrivacyServiceClient": ".client",
    "RateLimiter": ".ratelimit",
    "RetryPolicy": ".retry",
}


def __getattr__(name: str) -> Any:
    """Import a public name of the package on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ImsTokenProvider",
    "PrivacyServiceClient",
    "RateLimiter",
    "RetryPolicy",
    "StaticTokenProvider",
    "TokenProvider",
    "__version__",
]
