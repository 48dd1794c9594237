"""The HTTP exchange: the one place that catches aiohttp errors and classifies answers.

``exchange`` sends one request and reads the whole answer; ``download`` streams a body to a
file. Both turn network failures into :class:`UnavailableError` / :class:`ApiTimeoutError`,
and record every answer in :class:`CallStats` under the endpoint *template* (``"GET jobs/{id}"``),
never under a URL with values in it. ``raise_for_status`` maps an error answer to the
exception tree of ``errors.py``; the service's own message is kept, with identity values and
anything that looks like one masked.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from .. import constants
from ..errors import (
    ApiError,
    ApiTimeoutError,
    DailyCapReached,
    MalformedResponse,
    NotFoundError,
    PermissionDeniedError,
    RequestRejected,
    ThrottledError,
    UnavailableError,
)
from ..files import publish, sha256_file
from ..logs import mask_values, masked_values
from .encrypt import AgeWriter

_CHUNK = 64 * 1024
_MAX_MESSAGE = 240
_DAILY_CAP = re.compile(r"daily\b.*\blimit", re.IGNORECASE)
_EMAIL = re.compile(r"[^\s@\"',;:<>()\[\]]+@[^\s@\"',;:<>()\[\]]+")
_LONG_NUMBER = re.compile(r"(?<![\w\-/:.])\+?\d[\d\- ]{5,}\d(?![\w\-/:])")
_LONG_TOKEN = re.compile(r"\b[A-Za-z0-9_\-\.]{32,}\b")


class CallStats:
    """API calls counted by endpoint template and outcome: ``{"POST jobs": {"202": 3}}``.

    The outcome is the HTTP status, or ``timeout`` / ``connection_error`` when none came.
    """

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, int]] = {}

    def record(self, endpoint: str, outcome: str) -> None:
        """Count one call of ``endpoint`` that ended with ``outcome``."""
        by_outcome = self._counts.setdefault(endpoint, {})
        by_outcome[outcome] = by_outcome.get(outcome, 0) + 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        """A copy of the counts, safe to serialise into summary.json."""
        return {endpoint: dict(sorted(c.items())) for endpoint, c in sorted(self._counts.items())}

    def total(self, endpoint: str | None = None) -> int:
        """Calls of ``endpoint`` (or of every endpoint) whatever their outcome."""
        rows = [self._counts.get(endpoint, {})] if endpoint else list(self._counts.values())
        return sum(sum(c.values()) for c in rows)

    def __repr__(self) -> str:
        return f"CallStats({self.snapshot()!r})"


@dataclass(frozen=True)
class RawResponse:
    """One answer: status, headers and the whole body (empty for a streamed download)."""

    endpoint: str
    status: int
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(default=b"", repr=False)

    def json(self) -> Any:
        """The body parsed as JSON; MalformedResponse names the endpoint when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            pass  # raised below, so that the decoder's error (it quotes the body) is not chained
        raise MalformedResponse(
            "body is not valid JSON", endpoint=self.endpoint, status=self.status
        )


class Redactor:
    """Masks identity values, user keys and anything shaped like an email, phone or token."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._source = values
        self._values: list[str] | None = None

    def __repr__(self) -> str:
        return "Redactor()"

    def extended(self, values: Iterable[str]) -> Redactor:
        """A redactor that also masks ``values`` (e.g. the token and API key of one call)."""
        return Redactor([*self._source, *values])

    def __call__(self, text: str) -> str:
        if self._values is None:
            self._values = masked_values(self._source)  # on first use: errors are rare
        text = mask_values(text, self._values)
        for pattern in (_EMAIL, _LONG_TOKEN, _LONG_NUMBER):
            text = pattern.sub("***", text)
        if len(text) > _MAX_MESSAGE:
            text = text[: _MAX_MESSAGE - 3] + "..."
        return text


def server_date(headers: Mapping[str, str]) -> datetime | None:
    """The ``Date`` header as an aware UTC datetime, or None when absent or unreadable."""
    raw = headers.get("Date")
    if not raw:
        return None
    try:
        parsed = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (integer or HTTP-date form), or None."""
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw.strip()))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    now = server_date(headers)
    if now is None or when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class ErrorBody:
    """What an error body says, from any of the shapes the service and gateway use."""

    code: str = ""
    title: str = ""
    message: str = ""

    @property
    def text(self) -> str:
        """Title and message joined, for matching and for the exception message."""
        return ": ".join(p for p in (self.title, self.message) if p)


def parse_error_body(body: bytes) -> ErrorBody:
    """Read ``{"errors": {...}}``, ``{"error_code", "message"}``, RFC 7807 or OAuth2 errors.

    Never raises: an unreadable body gives an empty :class:`ErrorBody`.
    """
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return ErrorBody()
    if not isinstance(data, dict):
        return ErrorBody()
    inner = data.get("errors")
    if isinstance(inner, list) and inner and isinstance(inner[0], dict):
        inner = inner[0]
    if isinstance(inner, dict):
        data = inner
    code = data.get("code") or data.get("error_code") or data.get("error") or ""
    detail = data.get("detail") or data.get("message") or data.get("error_description") or ""
    title = data.get("title") or ""
    if not code and isinstance(detail, str) and constants.THROTTLE_CODE in detail:
        code = constants.THROTTLE_CODE
    if not code and data.get("errorCode") is not None:
        code = str(data["errorCode"])
    return ErrorBody(code=str(code), title=str(title), message=str(detail))


def raise_for_status(resp: RawResponse, redact: Redactor) -> None:
    """Raise the exception that an error answer stands for; return on 2xx.

    401 is not handled here: the caller refreshes the token first.
    """
    status = resp.status
    if 200 <= status < 300:
        return
    err = parse_error_body(resp.body)
    message = redact(err.text) or f"HTTP {status}"
    code = redact(err.code) or None
    kw: dict[str, Any] = {"endpoint": resp.endpoint, "status": status, "code": code}
    exc: ApiError
    if status == 429 or constants.THROTTLE_CODE in (err.code, err.message, err.title):
        exc = ThrottledError(message, retry_after_s=retry_after_s(resp.headers), **kw)
    elif status == 400 and _DAILY_CAP.search(f"{err.title} {err.message}"):
        exc = DailyCapReached(message, **kw)
    elif status == 403:
        exc = PermissionDeniedError(message, **kw)
    elif status in (404, 410):
        exc = NotFoundError(message, **kw)
    elif 400 <= status < 500:
        exc = RequestRejected(message, **kw)
    elif status >= 500:
        exc = UnavailableError(message, **kw)
    else:
        exc = MalformedResponse(f"unexpected HTTP {status}", **kw)
    raise exc


def _network_error(exc: BaseException, endpoint: str, timeout_s: float | None) -> ApiError:
    if isinstance(exc, TimeoutError):
        limit = f" within {timeout_s:g}s" if timeout_s else ""
        return ApiTimeoutError(f"no answer{limit}", endpoint=endpoint)
    return UnavailableError(f"connection failed ({type(exc).__name__})", endpoint=endpoint)


async def exchange(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    endpoint: str,
    headers: Mapping[str, str],
    client_timeout: aiohttp.ClientTimeout,
    stats: CallStats,
    params: Mapping[str, str] | None = None,
    json_body: Any = None,
    form: Mapping[str, str] | None = None,
) -> RawResponse:
    """Send one request and read its whole answer; network failures become API errors."""
    data: bytes | None = orjson.dumps(json_body) if json_body is not None else None
    try:
        async with session.request(
            method,
            url,
            params=params,
            data=data if data is not None else form,
            headers=headers,
            timeout=client_timeout,
        ) as resp:
            body = await resp.read()
            answer = RawResponse(endpoint, resp.status, resp.headers, body)
    except (aiohttp.ClientError, TimeoutError) as exc:
        outcome = "timeout" if isinstance(exc, TimeoutError) else "connection_error"
        stats.record(endpoint, outcome)
        raise _network_error(exc, endpoint, client_timeout.total) from None
    stats.record(endpoint, str(answer.status))
    return answer


@dataclass(frozen=True)
class FileDigest:
    """The sha256 of a downloaded file as written, and of its plaintext (equal unless the
    file is encrypted)."""

    sha256: str
    plain_sha256: str


async def download(
    session: aiohttp.ClientSession,
    url: str,
    *,
    endpoint: str,
    headers: Mapping[str, str],
    client_timeout: aiohttp.ClientTimeout,
    stats: CallStats,
    dest: Path,
    encrypt_to: Sequence[str] = (),
) -> tuple[RawResponse, FileDigest | None]:
    """Stream a 200 answer into ``dest`` (created 0600, replaced atomically); return its digests.

    With ``encrypt_to`` (age recipients) the answer is encrypted as it arrives: only
    ciphertext is written. Any other status comes back with its body and ``None``, for
    ``raise_for_status``.
    """
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        async with session.get(url, headers=headers, timeout=client_timeout) as resp:
            if resp.status != 200:
                body = await resp.content.read(64 * 1024)
                stats.record(endpoint, str(resp.status))
                return RawResponse(endpoint, resp.status, resp.headers, body), None
            digest = hashlib.sha256()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            sink = AgeWriter(fd, encrypt_to) if encrypt_to else None
            try:
                os.fchmod(fd, 0o600)
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    digest.update(chunk)
                    if sink is None:
                        os.write(fd, chunk)
                    else:
                        sink.write(chunk)
                if sink is not None:
                    sink.close()
                os.fsync(fd)
            finally:
                if sink is not None:
                    sink.abort()
                os.close(fd)
            answer = RawResponse(endpoint, resp.status, resp.headers)
    except asyncio.CancelledError:  # a stop abandoned the download: leave no partial file
        tmp.unlink(missing_ok=True)
        raise
    except (aiohttp.ClientError, TimeoutError) as exc:
        tmp.unlink(missing_ok=True)
        outcome = "timeout" if isinstance(exc, TimeoutError) else "connection_error"
        stats.record(endpoint, outcome)
        raise _network_error(exc, endpoint, client_timeout.sock_read) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    plain = digest.hexdigest()
    written = sha256_file(tmp) if encrypt_to else plain
    publish(tmp, dest, synced=True)
    stats.record(endpoint, "200")
    return answer, FileDigest(sha256=written, plain_sha256=plain)
