"""Sync and async forms of the run commands' library calls.

A sync call (``start_run``, ``list_jobs``, ...) owns its event loop and, for a run, the
SIGINT/SIGTERM handlers. From code that already runs a loop (Airflow, a notebook, an async
service) it cannot do either, so it refuses at once with a :class:`ConfigError` that names its
``*_async`` twin; the twin runs on the caller's loop and installs no signal handler.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from ..errors import ConfigError

P = ParamSpec("P")
T = TypeVar("T")


def refuse_running_loop(name: str) -> None:
    """ConfigError if a loop runs in this thread: ``name`` must then be awaited as a twin."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise ConfigError(
        f"{name}() runs its own event loop and cannot be called from a running one "
        f"(a notebook, Airflow, async code): use `await {name}_async(...)` instead"
    )


def run_sync(name: str, coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``coro()`` on a new loop, after :func:`refuse_running_loop`."""
    refuse_running_loop(name)
    return asyncio.run(coro())


def in_worker(func: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """The async twin of a sync run call: the same function, run in a worker thread.

    The worker owns the run's loop, off the main thread, so no signal handler is installed;
    the caller's loop keeps serving while the run is driven."""

    @functools.wraps(func)
    async def twin(*args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(func, *args, **kwargs)

    twin.__name__ = twin.__qualname__ = f"{func.__name__}_async"
    twin.__doc__ = (
        f"Async twin of :func:`{func.__name__}` for a running event loop (no signal handler)."
        f"\n\n{func.__doc__ or ''}"
    )
    return twin


def sync_twin(func: Callable[P, Coroutine[Any, Any, T]], name: str) -> Callable[P, T]:
    """The sync form ``name`` of the async call ``func`` (named ``<name>_async``): the same
    call on a new event loop, refused inside a running one (:func:`run_sync`)."""

    @functools.wraps(func)
    def twin(*args: P.args, **kwargs: P.kwargs) -> T:
        return run_sync(name, lambda: func(*args, **kwargs))

    twin.__name__ = twin.__qualname__ = name
    twin.__doc__ = f"{func.__doc__ or ''}\n\nSync form of :func:`{name}_async` (its own loop)."
    return twin


__all__ = ["in_worker", "refuse_running_loop", "run_sync", "sync_twin"]
