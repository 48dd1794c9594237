"""A virtual clock for limiter and retry tests: time moves only when every task is waiting.

``await clock.run(coro)`` drives ``coro``: whenever all runnable work has settled, time jumps
to the earliest pending ``sleep`` deadline and wakes its sleepers. No real time passes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

_SETTLE_ROUNDS = 20


class VirtualClock:
    """Implements the ``Clock`` protocol of ``pipeline.api.ratelimit`` on simulated time."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), future))
        await future

    async def _settle(self) -> None:
        stable, last = 0, -1
        while stable < _SETTLE_ROUNDS:
            await asyncio.sleep(0)
            pending = len(self._sleepers)
            stable = stable + 1 if pending == last else 0
            last = pending

    async def run(self, work: Awaitable[T], *, limit_s: float = 3_600.0) -> T:
        """Await ``work`` while advancing virtual time; fail if it needs more than ``limit_s``."""
        task = asyncio.ensure_future(work)
        deadline = self.now + limit_s
        while True:
            await self._settle()
            if task.done():
                return task.result()
            if not self._sleepers:
                task.cancel()
                raise AssertionError("work is blocked and nothing is sleeping")
            when = self._sleepers[0][0]
            if when > deadline:
                task.cancel()
                raise AssertionError(f"work did not finish within {limit_s} virtual seconds")
            self.now = max(self.now, when)
            while self._sleepers and self._sleepers[0][0] <= self.now:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    future.set_result(None)
