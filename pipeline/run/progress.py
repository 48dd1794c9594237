"""Progress output: bars on a terminal, periodic plain lines otherwise.

Only counts are shown, never identities or keys. On a terminal, rich draws three bars
(submitted, terminal, downloaded) with rate and ETA; elsewhere (cron, Airflow, a pipe) one
log line is written every ``every_s`` seconds and at the end. :meth:`ProgressReporter.tick`
keeps those lines coming at that interval whatever the run is doing (a long sweep, a
download, a throttled POST), on the reporter's clock. Rates are measured over the last
``RATE_WINDOW_S`` seconds of observations: a resumed run starts with many terminal jobs, which
are not a rate.
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ..api.clock import SYSTEM_CLOCK

log = logging.getLogger("dsar.progress")

RATE_WINDOW_S = 60.0  # the rate and ETA are measured over this much recent time
MIN_RATE_SPAN_S = 5.0  # below this span of observations there is no rate yet ("-")
BAR_REFRESH_S = 2.0  # how often tick() reads the counts for the bars


class JobRateColumn(ProgressColumn):
    """Jobs per second of a task (rich's speed column speaks in bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f}/s" if speed else "     -/s")


class WindowedRate:
    """Units per second over the last ``window_s`` seconds of ``(time, total)`` observations.

    The first observation is the baseline: whatever was done before it (a resumed run's
    terminal jobs) is not counted. ``None`` until the observations span ``min_span_s``.
    """

    def __init__(self, window_s: float = RATE_WINDOW_S, min_span_s: float = MIN_RATE_SPAN_S):
        self.window_s = window_s
        self.min_span_s = min_span_s
        self._points: deque[tuple[float, int]] = deque()

    def observe(self, at: float, total: int) -> None:
        """Record ``total`` at time ``at`` (times never go backwards)."""
        points = self._points
        if len(points) >= 2 and at - points[-2][0] < self.min_span_s / 10:
            points[-1] = (at, total)  # close to the one before: the newest replaces it
        else:
            points.append((at, total))
        # keep one point at or before the window's start, so the window is fully covered
        while len(points) > 2 and points[1][0] <= at - self.window_s:
            points.popleft()

    def rate(self) -> float | None:
        """The rate over the window, or None while the observations span too little time."""
        if len(self._points) < 2:
            return None
        (t0, n0), (t1, n1) = self._points[0], self._points[-1]
        if t1 - t0 < self.min_span_s:
            return None
        return max(0, n1 - n0) / (t1 - t0)


@dataclass(frozen=True, slots=True)
class Counts:
    """A snapshot of a run's progress, in jobs."""

    jobs_total: int
    submitted: int
    terminal: int
    downloads_total: int
    downloaded: int


class ProgressReporter:
    """Shows :class:`Counts` as bars (terminal) or periodic lines (anything else)."""

    def __init__(
        self,
        *,
        stream: TextIO | None = None,
        every_s: float = 30.0,
        force_plain: bool = False,
        clock: Callable[[], float] = SYSTEM_CLOCK.monotonic,
        sleep: Callable[[float], Awaitable[None]] = SYSTEM_CLOCK.sleep,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._every_s = every_s
        self._clock = clock
        self._sleep = sleep
        self._last_line = -float("inf")
        self._rate = WindowedRate()
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._bars_seeded = False
        if not force_plain and self._stream.isatty():
            self._bars = Progress(
                TextColumn("{task.description:<11}"),
                BarColumn(),
                MofNCompleteColumn(),
                JobRateColumn(),
                TimeRemainingColumn(),
                console=Console(file=self._stream),
                transient=False,
            )

    def __enter__(self) -> ProgressReporter:
        if self._bars is not None:
            self._bars.start()
            for name in ("submitted", "terminal", "downloaded"):
                self._tasks[name] = self._bars.add_task(name, total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._bars.stop()

    @property
    def plain(self) -> bool:
        """True when progress is written as log lines (not a terminal)."""
        return self._bars is None

    async def tick(self, read: Callable[[], Counts]) -> None:
        """Show ``read()`` every ``every_s`` (bars: every ``BAR_REFRESH_S``) until cancelled,
        whatever else the run is doing; the waits go through the reporter's ``sleep``."""
        while True:
            if self._bars is not None:
                await self._sleep(min(self._every_s, BAR_REFRESH_S))
                self.update(read())
                continue
            due = self._wait_s(self._clock())
            if due > 0:
                await self._sleep(due)
            else:
                self.update(read())  # the clock never goes back: still due, a line is written

    def _wait_s(self, now: float) -> float:
        """Seconds until the next plain line is due at ``now`` (<= 0: due).

        ``tick`` and ``update`` decide with this one expression: two forms of the same test
        (``last + every - now > 0`` against ``now - last < every``) can disagree in floating
        point, and ``tick`` then spun without ever awaiting on a clock that only moves when
        awaited."""
        return self._last_line + self._every_s - now

    def update(self, counts: Counts, *, final: bool = False) -> None:
        """Show ``counts``; plain lines are rate-limited to one per ``every_s``."""
        if self._bars is not None:
            self._update_bars(counts)
            return
        now = self._clock()
        self._rate.observe(now, counts.terminal)
        if final or self._wait_s(now) <= 0:
            self._line(counts, now)

    def _line(self, counts: Counts, now: float) -> None:
        self._last_line = now
        rate = self._rate.rate()
        left = counts.jobs_total - counts.terminal
        eta = f"{left / rate:.0f}s" if rate and left > 0 else "-"
        log.info(
            "progress: submitted %d/%d, terminal %d/%d, downloaded %d/%d, %s jobs/s, eta %s",
            counts.submitted,
            counts.jobs_total,
            counts.terminal,
            counts.jobs_total,
            counts.downloaded,
            counts.downloads_total,
            "-" if rate is None else f"{rate:.1f}",
            eta,
        )

    def _update_bars(self, counts: Counts) -> None:
        assert self._bars is not None
        values = {
            "submitted": (counts.submitted, counts.jobs_total),
            "terminal": (counts.terminal, counts.jobs_total),
            "downloaded": (counts.downloaded, counts.downloads_total),
        }
        for name, (done, total) in values.items():
            if self._bars_seeded:
                self._bars.update(self._tasks[name], completed=done, total=total)
            else:
                # what a resumed run did before is a starting point, not a speed sample
                self._bars.reset(self._tasks[name], completed=done, total=total)
        self._bars_seeded = True
