"""Rate limits on a real monotonic clock: requests per second per client, jobs per minute per org.

Both are sliding windows of accepted work; refused requests do not count, so a client that
backs off as told by ``Retry-After`` gets through.
"""

from __future__ import annotations

import math
from collections import deque

from .clock import Monotonic


class SlidingWindow:
    """At most ``limit`` units per ``window_s`` seconds per key; ``limit <= 0`` means no limit."""

    def __init__(self, limit: float, window_s: float, monotonic: Monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._monotonic = monotonic
        self._events: dict[str, deque[tuple[float, int]]] = {}
        self._totals: dict[str, int] = {}

    def try_acquire(self, key: str, units: int = 1) -> int | None:
        """Record ``units`` for ``key`` and return None, or refuse and return Retry-After (s)."""
        if self.limit <= 0:
            return None
        now = self._monotonic()
        events = self._events.setdefault(key, deque())
        total = self._totals.get(key, 0)
        while events and events[0][0] <= now - self.window_s:
            total -= events.popleft()[1]
        if total + units > self.limit and total > 0:
            self._totals[key] = total
            return self._retry_after(events, total, units, now)
        events.append((now, units))
        self._totals[key] = total + units
        return None

    def _retry_after(
        self, events: deque[tuple[float, int]], total: int, units: int, now: float
    ) -> int:
        # The earliest moment enough old events have left the window for this request to fit.
        freed = 0
        for at, count in events:
            freed += count
            if total - freed + units <= self.limit:
                return max(1, math.ceil(at + self.window_s - now))
        return max(1, math.ceil(self.window_s))

    def reset(self) -> None:
        """Forget all recorded events."""
        self._events.clear()
        self._totals.clear()
