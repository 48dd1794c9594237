"""dsar: bulk data subject requests for the Adobe Experience Platform Privacy Service.

Library first: everything the ``dsar`` command does is reachable from here. The names below
are imported on first use, so that starting ``dsar`` imports nothing heavy before its
interrupt handling is in place (see :mod:`pipeline.cli.launch`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api.auth import ImsTokenProvider, StaticTokenProvider, TokenProvider
    from .api.client import PrivacyServiceClient
    from .api.ratelimit import RateLimiter
    from .api.retry import RetryPolicy

__version__ = "0.1.0"

_LAZY = {
    "ImsTokenProvider": ".api.auth",
    "StaticTokenProvider": ".api.auth",
    "TokenProvider": ".api.auth",
    "PrivacyServiceClient": ".api.client",
    "RateLimiter": ".api.ratelimit",
    "RetryPolicy": ".api.retry",
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
