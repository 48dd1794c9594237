"""The gateway in front of the emulated service: faults, auth, per-client rate limit, stats.

Runs as aiohttp middleware on every API request (control endpoints under ``/_emulator/`` pass
straight through and are not counted). A path no route serves, or a method its route does not
take, is authenticated and rate-limited like any call, then answered with a gateway error body
(404 or 405), never aiohttp's plain text. Also stamps every response with a ``Date`` header
from the emulator clock.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler

from .catalog import API_PREFIX, CONTROL_PREFIX, TOKEN_PATH
from .clock import http_date
from .errors import ImsError, MethodNotAllowed, RouteNotFound, TooManyRequests, WireError
from .faults import Fault
from .keys import BACKEND_KEY, CLIENT_KEY, DropConnection, fault_error


def endpoint_name(request: web.Request) -> str:
    """``METHOD template`` of the matched route, e.g. ``GET jobs/{jobId}``."""
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    path = resource.canonical if resource is not None else "unmatched"
    path = path.removeprefix(API_PREFIX).strip("/")
    return f"{request.method} {path}"


def _error_response(error: WireError) -> web.Response:
    return web.json_response(error.body(), status=error.status, headers=error.headers)


def _drop(request: web.Request) -> web.Response:
    transport = request.transport
    if transport is not None:
        transport.abort()
    # Nothing reaches the client; aiohttp discards this once it sees the transport is gone.
    return web.Response(status=499)


@web.middleware
async def gateway_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Apply faults, authentication and the rate limit, then count the answer."""
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    if request.path == TOKEN_PATH:  # IMS is another service: no API faults, limits or auth
        return await _counted(request, handler)
    backend = request.app[BACKEND_KEY]
    endpoint = endpoint_name(request)
    stats = backend.stats
    at = backend.monotonic()
    delay = backend.faults.latency_s()
    if delay > 0:
        await asyncio.sleep(delay)  # injected latency is real time by definition
    fault = backend.faults.before()
    status: str
    try:
        if fault is Fault.RESET:
            raise DropConnection()
        if fault not in (Fault.NONE, Fault.THROTTLE):
            stats.faults[fault.value] += 1
            raise fault_error(fault)
        client = backend.authenticate(request.headers)
        request[CLIENT_KEY] = client
        retry_after = backend.request_limiter.try_acquire(client.client_id)
        if fault is Fault.THROTTLE:
            stats.faults["throttle_burst"] += 1
            retry_after = retry_after or 1
        if retry_after is not None:
            stats.throttled += 1
            raise TooManyRequests(retry_after)
        check_route(request)
        response = await handler(request)
        status = str(response.status)
    except WireError as error:
        response = _error_response(error)
        status = str(error.status)
    except DropConnection:
        stats.faults["reset"] += fault is Fault.RESET
        stats.record_request(endpoint, "reset", at)
        return _drop(request)
    stats.record_request(endpoint, status, at)
    return response


async def _counted(request: web.Request, handler: Handler) -> web.StreamResponse:
    stats = request.app[BACKEND_KEY].stats
    at = request.app[BACKEND_KEY].monotonic()
    try:
        if not_allowed(request) is not None:
            raise ImsError(405, "invalid_request", "the token endpoint takes POST only")
        response = await handler(request)
    except WireError as error:
        response = _error_response(error)
    stats.record_request(endpoint_name(request), str(response.status), at)
    return response


def not_allowed(request: web.Request) -> web.HTTPMethodNotAllowed | None:
    """The router's 405 for this request, if its path exists under other methods."""
    missed = request.match_info.http_exception
    return missed if isinstance(missed, web.HTTPMethodNotAllowed) else None


def check_route(request: web.Request) -> None:
    """Raise the gateway's 404 or 405 when no route serves this path and method."""
    missed = request.match_info.http_exception
    if missed is None:
        return
    if isinstance(missed, web.HTTPMethodNotAllowed):
        raise MethodNotAllowed(missed.allowed_methods)
    raise RouteNotFound()


async def stamp_date(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: the ``Date`` header comes from the emulator clock."""
    backend = request.app[BACKEND_KEY]
    response.headers["Date"] = http_date(backend.clock.now())
