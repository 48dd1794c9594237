"""The emulator clock: real UTC time plus an offset that only grows, or a frozen manual clock.

Job state is derived from this clock whenever it is read, so advancing it is how tests make jobs
finish, expire and cross daily-cap days without sleeping. Rate limits use a separate monotonic
clock (:data:`Monotonic`), because they are about real request pacing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

Monotonic = Callable[[], float]
WallClock = Callable[[], float]

_MONTH_DAY_FMT = "%m/%d/%Y %I:%M %p GMT"


class EmulatorClock:
    """Seconds since the epoch on the emulator's timeline; never goes backwards.

    ``frozen=True`` is manual mode: time starts at ``start`` (default: the wall clock at
    construction) and moves only through :meth:`advance`. Otherwise it follows ``wall`` plus the
    total advanced so far.
    """

    def __init__(
        self,
        *,
        frozen: bool = False,
        start: float | None = None,
        offset_s: float = 0.0,
        wall: WallClock = time.time,
    ) -> None:
        self._wall = wall
        self._frozen = frozen
        self._base = start if start is not None else wall()
        if not frozen and start is not None:
            offset_s += start - wall()
        self._offset = offset_s
        self._last = 0.0

    @property
    def offset_s(self) -> float:
        """Seconds added to the wall clock (or to the start, when frozen) so far."""
        return self._offset

    @property
    def frozen(self) -> bool:
        """Whether only :meth:`advance` moves this clock."""
        return self._frozen

    def now(self) -> float:
        """The current emulator time in epoch seconds (monotone non-decreasing)."""
        base = self._base if self._frozen else self._wall()
        value = max(base + self._offset, self._last)
        self._last = value
        return value

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (>= 0); returns the new time."""
        if seconds < 0:
            raise ValueError("the emulator clock only moves forward")
        self._offset += seconds
        return self.now()

    def now_datetime(self) -> datetime:
        """The current emulator time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now(), tz=UTC)


def http_date(epoch_s: float) -> str:
    """``epoch_s`` as an RFC 7231 HTTP date (``Sat, 28 Nov 2026 08:15:00 GMT``)."""
    return format_datetime(datetime.fromtimestamp(epoch_s, tz=UTC), usegmt=True)


def service_date(epoch_s: float) -> str:
    """``epoch_s`` in the service's job date format: ``MM/DD/YYYY hh:mm AM GMT``."""
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime(_MONTH_DAY_FMT)


def utc_day(epoch_s: float) -> int:
    """The UTC day number (days since the epoch) that ``epoch_s`` falls on."""
    return int(epoch_s // 86400)
