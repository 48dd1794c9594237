"""Safe against production: a canary first, a ceiling on the jobs a command may create.

**The canary** (``dsar run --canary N``, ``job.canary_users``): the first N users in plan
order are cut into requests of their own at planning (:func:`cut_canary`), so the canary is
exactly N users. While its verdict is open, the submitter sends only the canary's batches
(:class:`CanaryGate`); once every canary job has left ``pending`` the wait starts, and the
verdict is journalled when every canary job is terminal (its error share against
``job.canary_max_error``: at most that share passes) or when ``job.canary_wait_s`` has
passed on the run's clock (timed out: not passed). A pass lets the rest go in the same
command; a failure or a time-out pauses the run (``pause_reason = "canary"``, exit 4) with one
line saying why. Nothing acts behind the user's back: a held run submits nothing more on
``dsar resume`` or ``resume --all`` (they still follow the canary's jobs); only
``dsar submit RUN_DIR`` releases it.

**The ceiling** (``--max-jobs N``, ``limits.max_jobs``): a command that could create more
jobs than N is refused before any API call with :class:`~pipeline.errors.TooManyJobs`
(exit 2), naming the count (:func:`check_max_jobs`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from ..errors import TooManyJobs
from ..input.batching import BatchFrame
from ..journal.canary import CanaryInfo, CanaryState
from ..journal.models import JobState, RunIntent
from ..journal.store import Journal
from ..models import PlannedBatch
from ..settings import JobSettings, Settings
from .context import RunContext

log = logging.getLogger("dsar.canary")

PAUSE_REASON = "canary"
REST_SUFFIX = "r"  # the id of the part of a batch that follows the canary: <batch_id>r
B = TypeVar("B", PlannedBatch, BatchFrame)


def cut_canary(batches: Iterable[B], users: int) -> Iterator[B]:
    """``batches`` (typed or columnar) in plan order, the one that holds the ``users``-th user
    cut in two, so that the first ``users`` users travel in requests of their own (no cut for
    ``users = 0``)."""
    seen = 0
    for batch in batches:
        keep = users - seen
        seen += len(batch.users)
        if 0 < keep < len(batch.users):
            yield dataclasses.replace(batch, users=batch.users[:keep])
            rest = batch.users[keep:]
            yield dataclasses.replace(batch, batch_id=batch.batch_id + REST_SUFFIX, users=rest)
        else:
            yield batch
    if users and seen <= users:
        log.warning(
            "the canary of %d users holds every user of the plan (%d): nothing waits for it",
            users,
            seen,
        )
    elif users:
        log.info(
            "canary: the first %d users go alone; the other %d wait for it", users, seen - users
        )


def max_jobs(settings: Settings, flag: int | None) -> int | None:
    """The ceiling in force: ``--max-jobs`` when given, else ``limits.max_jobs`` (None: none)."""
    return flag if flag is not None else settings.limits.max_jobs


def check_max_jobs(jobs: int, ceiling: int | None, *, what: str = "the run") -> None:
    """:class:`TooManyJobs` when ``jobs`` (what a command could create) exceeds ``ceiling``."""
    if ceiling is not None and jobs > ceiling:
        raise TooManyJobs(
            f"--max-jobs {ceiling:,}: {what} would create {jobs:,} jobs; nothing was sent"
        )


def could_create(journal: Journal, *, retry: bool = False) -> int:
    """The jobs a resume (``retry``: a retry) of ``journal``'s run could still create: its
    pending jobs (and, for a retry, the jobs in error); none for a run that submits nothing
    more (a cancelled run, a run held by its canary)."""
    info = journal.run_info()
    canary = journal.canary()
    if info.intent == RunIntent.CANCELLED or (canary is not None and canary.held):
        return 0
    jobs = journal.counts().jobs
    return jobs[JobState.PENDING] + (jobs[JobState.ERROR] if retry else 0)


def describe(job: JobSettings) -> str:
    """The canary in a few words, for the confirmation and the logs ('' without one)."""
    if not job.canary_users:
        return ""
    return (
        f"a canary of {job.canary_users:,} users first, the rest only if at most "
        f"{job.canary_max_error:.1%} of its jobs end in error within {_duration(job.canary_wait_s)}"
    )


class CanaryGate:
    """What the submitter may send while a canary is judged, and the judging itself.

    Without a canary (``job.canary_users = 0``) it lets everything through and never judges.
    """

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.users = ctx.settings.job.canary_users
        self._info: CanaryInfo | None = ctx.journal.canary() if self.users else None

    @property
    def open(self) -> bool:
        """True while only the canary may be submitted (no verdict that lets the rest go)."""
        if not self.users:
            return False
        return self._info is None or self._info.state not in (
            CanaryState.PASSED,
            CanaryState.RELEASED,
        )

    @property
    def held(self) -> bool:
        """True when a verdict (failed, timed out) holds the rest until ``dsar submit``."""
        return self._info is not None and self._info.held

    def allowed(self, batch_ids: list[str]) -> list[str]:
        """The batches of ``batch_ids`` that may be sent now (plan order kept)."""
        if not self.open:
            return batch_ids
        if self.held:
            return []
        canary = self.ctx.journal.canary_batches(self.users)
        return [b for b in batch_ids if b in canary]

    def blocks(self) -> bool:
        """True when nothing may be submitted now although jobs are pending: the canary
        is sent and awaits its verdict, or holds the run."""
        if not self.open:
            return False
        return self.held or self.ctx.journal.canary_progress(self.users).pending == 0

    def step(self, now: datetime) -> CanaryInfo | None:
        """Start the wait once the canary is sent; journal the verdict once its jobs are all
        terminal or the wait has passed. Returns the verdict when one was made now."""
        if not self.open or self.held:
            return None
        journal, job = self.ctx.journal, self.ctx.settings.job
        progress = journal.canary_progress(self.users)
        if self._info is None:
            if progress.pending:
                return None
            self._info = journal.start_canary(
                users=self.users,
                max_error=job.canary_max_error,
                wait_s=job.canary_wait_s,
                at=now,
            )
            log.info(
                "canary sent: %d users, %d jobs; waiting up to %s for them to finish",
                self.users,
                progress.jobs,
                _duration(job.canary_wait_s),
            )
        info = self._info
        if progress.open == 0 and progress.share <= info.max_error:
            self._info = journal.pass_canary(progress, now)
        elif progress.open == 0:
            self._info = journal.fail_canary(progress, now)
        elif (now - info.started_at).total_seconds() >= info.wait_s:
            self._info = journal.time_out_canary(progress, now)
        else:
            return None
        if self._info.state == CanaryState.PASSED:
            log.info(
                "canary passed: %d of %d jobs in error (%.1f%%, at most %.1f%%); "
                "submitting the rest",
                progress.errors,
                progress.jobs,
                100 * progress.share,
                100 * info.max_error,
            )
        elif journal.counts().jobs[JobState.PENDING]:
            log.warning("%s; the rest of the run is held", verdict_line(self._info))
        else:  # the canary held every user: there is no rest to hold back
            log.warning("canary %s: it held every user of the run", self._info.state.value)
        return self._info


def verdict_line(info: CanaryInfo) -> str:
    """Why the canary did not pass: the share, the threshold (and what is still open)."""
    share = f"{info.errors:,} of {info.jobs:,} canary jobs in error ({info.share:.1%})"
    if info.state == CanaryState.TIMED_OUT:
        return (
            f"canary timed out: {info.still_open:,} of {info.jobs:,} canary jobs still open "
            f"after {_duration(info.wait_s)}, {share}; threshold {info.max_error:.1%}"
        )
    return f"canary failed: {share}, above the threshold of {info.max_error:.1%}"


def hold_line(info: CanaryInfo, run_dir: Path) -> str:
    """One line: why the canary holds the run, and how to go on."""
    return (
        f"{verdict_line(info)}; the rest of the run was not submitted: see status.parquet, "
        f"then `dsar submit {run_dir}` submits the rest or `dsar cancel {run_dir}` abandons it"
    )


def held_note(journal: Journal, run_dir: Path) -> str | None:
    """The outcome's line for a run paused by its canary (None when it is not held)."""
    info = journal.canary()
    if info is None or not info.held:
        return None
    return hold_line(info, run_dir)


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


__all__ = [
    "PAUSE_REASON",
    "CanaryGate",
    "check_max_jobs",
    "could_create",
    "cut_canary",
    "describe",
    "held_note",
    "hold_line",
    "max_jobs",
    "verdict_line",
]
