"""A virtual clock for whole runs against an in-process emulator: waits cost no real time.

:class:`RunClock` implements ``pipeline.api.clock.Clock`` as real time plus an offset that only
grows. A ``sleep`` registers a deadline; a driver task on the run's event loop wakes sleepers
whose deadline passed and, once the loop has had nothing to do for a few milliseconds of real
time (every task waits: on a sleep, or on an answer of the emulator), jumps the offset to the
earliest deadline. The emulator built by :func:`virtual_backend` reads its job timeline and its
rate-limit windows from the same clock, so the engine's poll interval, retry back-offs,
``Retry-After`` pauses, ``--max-runtime`` and the jobs' processing all move together: a run that
waits minutes for its jobs finishes in milliseconds of real time, in the same order of events.

Time never jumps while an HTTP call of this process is in flight (aiohttp's
``ClientSession._request`` is counted): on a loaded machine the emulator's thread can take
longer than the idle ticks to answer, and a jump then would age a fresh token past its life
before it reaches the emulator, which no real network does.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from pipeline.emulator import EmulatorConfig
from pipeline.emulator.backend import PrivacyBackend
from pipeline.emulator.clock import EmulatorClock
from pipeline.emulator.persistence import attach_persistence

TICK_S = 0.001  # the driver looks at the loop this often (real seconds)
IDLE_TICKS = 3  # a loop with nothing ready for this many ticks is idle: time may jump


class _InFlight:
    """HTTP calls of this process between their start and their response headers."""

    calls = 0


def _count_calls(request: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def counted(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> Any:
        _InFlight.calls += 1
        try:
            return await request(self, *args, **kwargs)
        finally:
            _InFlight.calls -= 1

    counted.__wrapped__ = request  # type: ignore[attr-defined]
    return counted


if not hasattr(aiohttp.ClientSession._request, "__wrapped__"):
    aiohttp.ClientSession._request = _count_calls(aiohttp.ClientSession._request)  # type: ignore[method-assign]


class RunClock:
    """Real time plus the virtual seconds jumped so far; see the module docstring."""

    def __init__(self) -> None:
        self.offset_s = 0.0
        self.jumps = 0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._drivers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    def monotonic(self) -> float:
        return time.monotonic() + self.offset_s

    def time(self) -> float:
        """Epoch seconds on this clock (the emulator's wall clock)."""
        return time.time() + self.offset_s

    def utc_now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset_s)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (self.monotonic() + seconds, next(self._seq), future))
        driver = self._drivers.get(loop)
        if driver is None or driver.done():
            self._drivers[loop] = loop.create_task(self._drive(loop), name="test-run-clock")
        await future

    def _wake_due(self) -> None:
        now = self.monotonic()
        while self._sleepers and (self._sleepers[0][2].done() or self._sleepers[0][0] <= now):
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def _drive(self, loop: asyncio.AbstractEventLoop) -> None:
        idle = 0
        while True:
            self._wake_due()
            if not self._sleepers:
                return
            await asyncio.sleep(TICK_S)
            ready = len(loop._ready)  # type: ignore[attr-defined]
            idle = idle + 1 if ready == 0 and _InFlight.calls == 0 else 0
            if idle >= IDLE_TICKS and self._sleepers:
                jump = self._sleepers[0][0] - self.monotonic()
                if jump > 0:
                    self.offset_s += jump
                    self.jumps += 1
                idle = 0


class _VirtualBackend(PrivacyBackend):
    """An emulator backend whose wall clock and rate-limit clock are a :class:`RunClock`."""

    def __init__(self, config: EmulatorConfig, clock: RunClock) -> None:
        self._run_clock = clock
        super().__init__(config, monotonic=clock.monotonic)

    def _new_clock(self, config: EmulatorConfig) -> EmulatorClock:  # type: ignore[override]
        return EmulatorClock(
            frozen=config.clock_frozen, start=config.clock_start_epoch(), wall=self._run_clock.time
        )


def virtual_backend(config: EmulatorConfig, clock: RunClock) -> PrivacyBackend:
    """A backend for ``config`` on ``clock`` (restored from SQLite when persistence is set)."""
    backend = _VirtualBackend(config, clock)
    if config.persistence_path:
        attach_persistence(backend, Path(config.persistence_path))
    return backend
