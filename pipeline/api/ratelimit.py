"""One request limiter shared by every call of a client.

Three controls in one object:

- a token bucket with **no initial burst**: request *n* may start no earlier than
  ``(n - 1) / rate`` seconds after the first, so a fleet of workers starting together is spread
  out instead of hitting the service with a spike;
- a cap on requests **in flight**, so slow answers do not pile up connections;
- **AIMD** on throttle signals: a 429 (or ``PRVCY-1030-400``) halves the rate, then the rate grows
  back linearly, up to the configured ceiling, while no new signal arrives; a ``Retry-After`` closes
  one **pause gate** that every worker waits out before its next request.

Time comes from an injectable :class:`~pipeline.api.clock.Clock`, so the limiter is tested on a
virtual clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..errors import ConfigError
from .clock import Clock, SystemClock


class RateLimiter:
    """Spaces requests at ``requests_per_second`` (no burst) with at most ``max_in_flight`` open.

    Use ``async with limiter.slot(): ...`` around one HTTP exchange. Call :meth:`on_throttle`
    when the service signals throttling; the rate halves (at most once per ``cooldown_s``) and
    recovers by ``recovery_per_s`` requests/s per second afterwards, never above the ceiling
    nor below ``min_rate``. Requests are spaced ``margin`` (2 %) wider than the rate, so that
    network jitter cannot push a server-side window over the limit the rate was set to.
    """

    def __init__(
        self,
        *,
        requests_per_second: float,
        max_in_flight: int,
        clock: Clock | None = None,
        min_rate: float | None = None,
        recovery_per_s: float | None = None,
        cooldown_s: float = 1.0,
        margin: float = 0.02,
    ) -> None:
        if requests_per_second <= 0:
            raise ConfigError("limits.requests_per_second must be above 0")
        if max_in_flight < 1:
            raise ConfigError("limits.max_in_flight must be at least 1")
        self.ceiling = float(requests_per_second)
        self.max_in_flight = max_in_flight
        self.min_rate = min_rate if min_rate is not None else min(0.1, self.ceiling)
        self.recovery_per_s = recovery_per_s if recovery_per_s is not None else self.ceiling / 10
        self.cooldown_s = cooldown_s
        if not 0 <= margin < 0.5:
            raise ValueError("margin must be in [0, 0.5)")
        self.margin = margin
        self._clock: Clock = clock or SystemClock()
        self._rate = self.ceiling
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight = 0
        self._next_start: float | None = None  # earliest start of the next request
        self._pause_until = float("-inf")
        self._last_decrease = float("-inf")
        self._last_adjust: float | None = None
        self.throttle_signals = 0
        self.decreases = 0

    def __repr__(self) -> str:
        return (
            f"RateLimiter(rate={self._rate:.3g}/s, ceiling={self.ceiling:.3g}/s, "
            f"in_flight={self._in_flight}/{self.max_in_flight})"
        )

    @property
    def rate(self) -> float:
        """The current allowed rate in requests per second (after any recovery so far)."""
        self._recover(self._clock.monotonic())
        return self._rate

    @property
    def in_flight(self) -> int:
        """Requests that hold a slot now."""
        return self._in_flight

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one in-flight slot, entered no earlier than the rate and the pause gate allow."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    async def acquire(self) -> None:
        """Wait for an in-flight slot, then for this request's turn under the rate and gate."""
        await self._slots.acquire()
        try:
            await self._wait_turn()
        except BaseException:
            self._slots.release()
            raise
        self._in_flight += 1

    def release(self) -> None:
        """Give back the in-flight slot taken by :meth:`acquire`."""
        self._in_flight -= 1
        self._slots.release()

    async def _wait_turn(self) -> None:
        while True:
            now = self._clock.monotonic()
            self._recover(now)
            start = max(now, self._pause_until)
            if self._next_start is not None:
                start = max(start, self._next_start)
            self._next_start = start + (1.0 + self.margin) / self._rate
            if start > now:
                await self._clock.sleep(start - now)
            # A pause that began while we slept invalidates the turn we reserved.
            if self._pause_until <= start:
                return

    def _recover(self, now: float) -> None:
        if self._last_adjust is None:
            self._last_adjust = now
            return
        # No recovery during the cooldown after a decrease, nor while the pause gate is shut.
        hold_until = max(self._last_decrease + self.cooldown_s, self._pause_until)
        if self._rate < self.ceiling and now > hold_until:
            since = now - max(self._last_adjust, hold_until)
            if since > 0:
                self._rate = min(self.ceiling, self._rate + self.recovery_per_s * since)
        self._last_adjust = now

    def on_throttle(self, retry_after_s: float | None = None) -> None:
        """Record a throttle signal: halve the rate (once per cooldown) and honour Retry-After.

        With ``retry_after_s`` every request, including those already waiting for their turn,
        starts no earlier than that many seconds from now.
        """
        now = self._clock.monotonic()
        self._recover(now)
        self.throttle_signals += 1
        if now >= self._last_decrease + self.cooldown_s:
            self._rate = max(self.min_rate, self._rate / 2)
            self._last_decrease = now
            self._last_adjust = now
            self.decreases += 1
        if retry_after_s is not None and retry_after_s > 0:
            until = now + retry_after_s
            if until > self._pause_until:
                self._pause_until = until
                # Turns reserved before the pause are void; restart the schedule at its end.
                self._next_start = until
