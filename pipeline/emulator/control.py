"""The control plane under ``/_emulator/``: reset, config, clock advance, stats, health.

No authentication, not counted in stats, never faulted or rate limited. Bodies are JSON.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .clock import http_date
from .config import ConfigValueError
from .keys import BACKEND_KEY


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _object_body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


async def reset(request: web.Request) -> web.Response:
    """Forget all jobs, counters and limit windows, and restart the clock (config is kept)."""
    request.app[BACKEND_KEY].reset()
    return web.json_response({"reset": True})


async def get_config(request: web.Request) -> web.Response:
    """The current configuration (client secrets masked)."""
    return web.json_response(request.app[BACKEND_KEY].config.to_dict())


async def post_config(request: web.Request) -> web.Response:
    """Merge a partial JSON configuration (e.g. ``{"faults": {"reset_rate": 0.1}}``)."""
    body = await _object_body(request)
    if body is None:
        return _bad("the body must be a JSON object")
    try:
        config = request.app[BACKEND_KEY].reconfigure(body)
    except (ConfigValueError, ValueError, TypeError) as exc:
        return _bad(str(exc))
    return web.json_response(config.to_dict())


async def advance(request: web.Request) -> web.Response:
    """Move the emulator clock forward by ``{"seconds": N}`` and/or ``{"days": N}``."""
    body = await _object_body(request)
    if body is None:
        return _bad("the body must be a JSON object")
    seconds, days = body.get("seconds", 0), body.get("days", 0)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (seconds, days)):
        return _bad("seconds and days must be numbers")
    try:
        now = request.app[BACKEND_KEY].advance(float(seconds) + float(days) * 86_400)
    except ValueError as exc:
        return _bad(str(exc))
    return web.json_response({"now": now, "date": http_date(now)})


async def stats(request: web.Request) -> web.Response:
    """Request counts by endpoint and status, jobs created per user key, throttling counts."""
    return web.json_response(request.app[BACKEND_KEY].stats.to_dict())


async def health(request: web.Request) -> web.Response:
    """Liveness: the number of jobs held and the emulator time."""
    backend = request.app[BACKEND_KEY]
    now = backend.clock.now()
    return web.json_response({"jobs": len(backend.store), "now": now, "date": http_date(now)})
