"""Names shared by the HTTP layer: app and request keys, and fault-to-error mapping."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from .backend import PrivacyBackend
from .errors import GatewayTimeout, InternalServerError, ServiceUnavailable, WireError
from .faults import Fault

BACKEND_KEY: Final = web.AppKey("dsar_emulator_backend", PrivacyBackend)
CLIENT_KEY: Final = "dsar_emulator_client"


class DropConnection(Exception):
    """Raised by a handler to make the server abort the connection without a response."""


def fault_error(fault: Fault) -> WireError:
    """The wire error an injected 5xx fault answers with."""
    if fault is Fault.ERROR_504:
        return GatewayTimeout()
    if fault is Fault.ERROR_503:
        return ServiceUnavailable("the service is temporarily unavailable")
    return InternalServerError("an internal error occurred; retry in a few minutes")
