"""The route table: API paths (trailing slash tolerated), the IMS token path, the control plane."""

from __future__ import annotations

from aiohttp import web

from . import control, handlers
from .catalog import API_PREFIX, CONTROL_PREFIX, TOKEN_PATH


def _both(path: str) -> tuple[str, str]:
    return path, path + "/"


def add_routes(app: web.Application) -> None:
    """Register every emulator route on ``app``."""
    router = app.router
    router.add_post(TOKEN_PATH, handlers.issue_token)
    for path in _both(f"{API_PREFIX}/jobs"):
        router.add_get(path, handlers.list_jobs, allow_head=False)
        router.add_post(path, handlers.create_jobs)
    for path in _both(f"{API_PREFIX}/jobs/{{jobId}}"):
        router.add_get(path, handlers.get_job, allow_head=False)
    for path in _both(f"{API_PREFIX}/jobs/{{jobId}}/content"):
        router.add_get(path, handlers.job_content, allow_head=False)
    for path in _both(f"{API_PREFIX}/consent"):
        router.add_post(path, handlers.consent)
    router.add_post(f"{CONTROL_PREFIX}/reset", control.reset)
    router.add_get(f"{CONTROL_PREFIX}/config", control.get_config)
    router.add_post(f"{CONTROL_PREFIX}/config", control.post_config)
    router.add_post(f"{CONTROL_PREFIX}/advance", control.advance)
    router.add_get(f"{CONTROL_PREFIX}/stats", control.stats)
    router.add_get(f"{CONTROL_PREFIX}/health", control.health)
