"""Progress output: bars on a terminal, periodic plain lines otherwise.

Only counts are shown, never identities or keys. On a terminal, rich draws three bars
(submitted, terminal, downloaded) with rate and ETA; elsewhere (cron, Airflow, a pipe) one
log line is written every ``every_s`` seconds and at the end.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
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

log = logging.getLogger("dsar.progress")


class JobRateColumn(ProgressColumn):
    """Jobs per second of a task (rich's speed column speaks in bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f}/s" if speed else "     -/s")


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._every_s = every_s
        self._clock = clock
        self._last_line = -float("inf")
        self._started = clock()
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
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

    def update(self, counts: Counts, *, final: bool = False) -> None:
        """Show ``counts``; plain lines are rate-limited to one per ``every_s``."""
        if self._bars is not None:
            self._bars.update(
                self._tasks["submitted"], completed=counts.submitted, total=counts.jobs_total
            )
            self._bars.update(
                self._tasks["terminal"], completed=counts.terminal, total=counts.jobs_total
            )
            self._bars.update(
                self._tasks["downloaded"],
                completed=counts.downloaded,
                total=counts.downloads_total,
            )
            return
        now = self._clock()
        if not final and now - self._last_line < self._every_s:
            return
        self._last_line = now
        elapsed = max(now - self._started, 1e-9)
        rate = counts.terminal / elapsed
        left = counts.jobs_total - counts.terminal
        eta = f"{left / rate:.0f}s" if rate > 0 and left > 0 else "-"
        log.info(
            "progress: submitted %d/%d, terminal %d/%d, downloaded %d/%d, %.1f jobs/s, eta %s",
            counts.submitted,
            counts.jobs_total,
            counts.terminal,
            counts.jobs_total,
            counts.downloaded,
            counts.downloads_total,
            rate,
            eta,
        )
