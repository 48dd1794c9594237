"""Wire errors: one class per error the emulated service (or its gateway, or IMS) answers with.

Each error knows its HTTP status, JSON body and extra headers; handlers raise them and the error
middleware renders them. Messages never contain identity values or tokens. A gateway error's
HTTP status is the first three digits of its ``error_code`` (403010 is a 403), as in the
reference's table of gateway errors.

    WireError
    ├── GatewayError               {"error_code", "message"}     (Adobe I/O gateway)
    │   ├── MissingToken 403/403010, InvalidToken 401/401013
    │   ├── MissingApiKey 403/403000, InvalidApiKey 403/403003
    │   ├── MissingOrgHeader 400/400003, ProfileNotValid 403/403025, UserRegionMissing 403/403027
    │   ├── RouteNotFound 404/404000, MethodNotAllowed 405/405000 (+ Allow)
    │   ├── TooManyRequests 429/429050 (+ Retry-After)
    │   └── GatewayTimeout 504/504000
    ├── InvalidContentType 400     problem-detail body
    ├── PrivacyError               {"errors": {errorType, errorCode, title, detail[, code]}}
    │   ├── InvalidRequest 400, DocumentRateLimited 400 PRVCY-1030-400 (+ Retry-After)
    │   ├── DailyLimitExceeded 400, NotFound 404
    │   └── InternalServerError 500, ServiceUnavailable 503
    └── ImsError                   {"error", "error_description"}  (token endpoint)
"""

from __future__ import annotations

import abc
from typing import Any

JOBS_URI = "/data/core/privacy/jobs"
CONSENT_URI = "/data/core/privacy/consent"


class WireError(Exception, abc.ABC):
    """An error response: ``status``, ``body()`` and ``headers``."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = {}

    @abc.abstractmethod
    def body(self) -> dict[str, Any]:
        """The JSON body of the response."""


class GatewayError(WireError):
    """An error raised by the API gateway, before the service sees the request."""

    error_code = "500000"
    default_message = "Internal error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    def body(self) -> dict[str, Any]:
        return {"error_code": self.error_code, "message": self.message}


class MissingToken(GatewayError):
    """No ``Authorization`` header.

    Platform's troubleshooting page says a missing token is a 401; the gateway's own code
    403010 says 403, and every other gateway error's status is its code's prefix, so 403.
    """

    status, error_code, default_message = 403, "403010", "Oauth token is missing."


class InvalidToken(GatewayError):
    """A bearer token that is unknown, expired, or not valid for this client."""

    status, error_code, default_message = 401, "401013", "Oauth token is not valid"


class MissingApiKey(GatewayError):
    """No ``x-api-key`` header."""

    status, error_code, default_message = 403, "403000", "Api Key is required"


class InvalidApiKey(GatewayError):
    """An ``x-api-key`` that is unknown or is not the token's client id."""

    status, error_code, default_message = 403, "403003", "Api Key is invalid"


class MissingOrgHeader(GatewayError):
    """No ``x-gw-ims-org-id`` header."""

    status, error_code, default_message = 400, "400003", "Missing header"


class ProfileNotValid(GatewayError):
    """The token is not entitled for the org named in ``x-gw-ims-org-id``."""

    status, error_code, default_message = 403, "403025", "Profile is not valid"


class UserRegionMissing(GatewayError):
    """The ``x-gw-ims-org-id`` header names no org the service knows."""

    status, error_code, default_message = 403, "403027", "User region is missing"


class RouteNotFound(GatewayError):
    """An authenticated request for a path the API does not have.

    The code is the emulator's choice (no source shows the gateway's 404 body); its prefix is
    the status, like every documented gateway code.
    """

    status, error_code, default_message = 404, "404000", "Resource not found"


class MethodNotAllowed(GatewayError):
    """An authenticated request with a method the path does not serve; ``Allow`` lists them.

    The code is the emulator's choice, as for :class:`RouteNotFound`.
    """

    status, error_code, default_message = 405, "405000", "Method not allowed"

    def __init__(self, allowed: set[str] | frozenset[str]) -> None:
        super().__init__()
        self.headers["Allow"] = ", ".join(sorted(allowed))


class TooManyRequests(GatewayError):
    """The client went over its requests-per-second limit; ``Retry-After`` says when to retry."""

    status, error_code, default_message = 429, "429050", "Too many requests"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__()
        self.retry_after_s = retry_after_s
        self.headers["Retry-After"] = str(retry_after_s)


class GatewayTimeout(GatewayError):
    """The gateway gave up waiting for the service (a fault)."""

    status, error_code, default_message = 504, "504000", "Gateway Timeout"


class InvalidContentType(WireError):
    """A POST without ``Content-Type: application/json``."""

    status = 400

    def __init__(self) -> None:
        super().__init__("A valid content-type must be specified")

    def body(self) -> dict[str, Any]:
        return {
            "type": "/placeholder/type/uri",
            "status": 400,
            "title": "BadRequestError",
            "detail": self.message,
        }


class PrivacyError(WireError):
    """An error answered by the Privacy Service itself, in its ``errors`` envelope."""

    status = 400
    title = "Invalid Request"
    code: str | None = None

    def __init__(self, detail: str, *, uri: str = JOBS_URI) -> None:
        super().__init__(detail)
        self.uri = uri

    def body(self) -> dict[str, Any]:
        errors: dict[str, Any] = {
            "errorType": f"uri={self.uri}",
            "errorCode": self.status,
            "title": self.title,
            "detail": self.message,
        }
        if self.code is not None:
            errors["code"] = self.code
        return {"errors": errors}


class InvalidRequest(PrivacyError):
    """The request breaks a validation rule; ``detail`` names the rule."""


class DocumentRateLimited(PrivacyError):
    """Too many jobs submitted in the last minute for this org (PRVCY-1030-400)."""

    title = "Document rate limit exceeded"
    code = "PRVCY-1030-400"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"{self.code}: the workload exceeded the current document rate limit; "
            f"slow down and retry after {retry_after_s} s"
        )
        self.headers["Retry-After"] = str(retry_after_s)


class DailyLimitExceeded(PrivacyError):
    """The POST would take the org over its daily job cap; nothing was created."""

    title = "Daily upload limit exceeded"

    def __init__(self, cap: int, used: int, requested: int) -> None:
        super().__init__(
            f"The daily upload limit of {cap} jobs per day has been reached "
            f"({used} used today, {requested} requested)"
        )


class NotFound(PrivacyError):
    """No such job (or content) for this org, or it is past its retention."""

    status, title = 404, "Not Found"


class InternalServerError(PrivacyError):
    """The service failed (an injected fault)."""

    status, title = 500, "Internal Server Error"


class ServiceUnavailable(InternalServerError):
    """The service is briefly unavailable (an injected fault)."""

    status, title = 503, "Service Unavailable"


class ImsError(WireError):
    """A token-endpoint error in the OAuth 2 shape."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.message}
