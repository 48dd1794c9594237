"""Where the chaos driver kills ``dsar``: points of a run recognised by observed state.

A kill point is a condition on what the test can see of a running ``dsar`` process: its spill
folder, and its journal read through a read-only connection (the counts of batches and jobs by
state). The driver polls the condition and SIGKILLs the process the first time it holds, so a
kill lands where it says on a fast machine and on a loaded one alike; no kill is timed by the
clock.

The points:

- ``planning``: the spill folder exists and no plan is committed (pass 1 or 2 of planning);
- ``submitting``: at most a target number of batches is still planned and a POST is in flight
  (a batch is ``submitting`` in the journal), so the kill interrupts a POST;
- ``reconciling``: a batch left ``submitting`` by the previous kill is ``ambiguous``: the
  resumed run is paging through the service's job list to adopt what that POST created;
- ``polling``: every batch is resolved and some job is not terminal yet;
- ``downloading``: access results are being downloaded: some downloaded and some waiting, or
  results waiting once no job is open (the last round's downloads: a small run's results may
  all be downloaded in that one round, one transaction per org).

:func:`choose` turns a wanted point into one the run can still reach, from the journal as the
previous kill left it (e.g. ``reconciling`` needs a batch left ``submitting``). Jobs never
reopen and a downloaded result is never offered again: once every batch is resolved, a journal
with no job open can only reach ``downloading`` (``polling`` becomes it), and one with no
result waiting either reaches neither: the point is then handed out unreachable, and the driver
records it instead of waiting for a kill that cannot come.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.input.spill import SPILL_PREFIX
from pipeline.journal.schema import JOURNAL_FILE
from pipeline.run.leftovers import spill_root

POINTS = ("planning", "submitting", "reconciling", "polling", "downloading")
# A submission kill leaves more planned batches than POSTs run at once, so that it lands while
# POSTs are being made and the next one still finds submission to interrupt.
MIN_PLANNED_LEFT = 24
_UNRESOLVED = ("submitting", "ambiguous")


@dataclass(frozen=True)
class Observed:
    """One look at a run: its spill folders, its journal's batches by state, and (when asked
    for) whether jobs are still open, downloaded, or waiting for their download."""

    spilling: bool = False
    has_plan: bool = False
    batches: Mapping[str, int] = field(default_factory=dict)
    jobs_open: bool = False
    downloaded: bool = False
    awaiting_download: bool = False
    version: int = 0  # PRAGMA data_version: changes with every commit of another process

    def batches_in(self, *states: str) -> int:
        """Batches in any of ``states``."""
        return sum(self.batches.get(s, 0) for s in states)


# each an index lookup (job_by_state, job_needs_download), not a scan of the jobs
_JOBS_SQL = (
    "SELECT EXISTS (SELECT 1 FROM job WHERE state IN ('submitted', 'processing')),"
    " EXISTS (SELECT 1 FROM job WHERE state = 'downloaded'),"
    " EXISTS (SELECT 1 FROM job WHERE state = 'complete' AND has_result = 1)"
)


class RunWatch:
    """Reads a run's state from outside the process that drives it."""

    def __init__(self, run_dir: Path, workspace: Path) -> None:
        self.journal = run_dir / JOURNAL_FILE
        self.spill = spill_root(workspace)
        self._db: sqlite3.Connection | None = None

    def observe(self, *, jobs: bool = False) -> Observed:
        """The state now; the job flags only with ``jobs``."""
        try:
            spilling = any(self.spill.glob(f"{SPILL_PREFIX}*"))
        except FileNotFoundError:  # the run removed the empty spill root between two reads
            spilling = False
        db = self._connect()
        if db is None:
            return Observed(spilling=spilling)
        try:
            version = int(db.execute("PRAGMA data_version").fetchone()[0])
            has_plan = db.execute("SELECT count(*) FROM run").fetchone()[0] > 0
            batches = dict(db.execute("SELECT state, count(*) FROM batch GROUP BY state"))
            flags = (0, 0, 0)
            if jobs and has_plan:
                flags = db.execute(_JOBS_SQL).fetchone()
        except sqlite3.Error:  # the schema is not there yet: the journal is being created
            return Observed(spilling=spilling)
        jobs_open, downloaded, awaiting = (bool(f) for f in flags)
        return Observed(spilling, has_plan, batches, jobs_open, downloaded, awaiting, version)

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None and self.journal.exists():
            uri = f"{self.journal.resolve().as_uri()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
        return self._db

    def close(self) -> None:
        """Close the read-only connection (before the next process opens the journal)."""
        if self._db is not None:
            self._db.close()
            self._db = None


@dataclass(frozen=True)
class KillPoint:
    """A named condition on the observed state; ``jobs``: it needs the job flags. ``poll_s``:
    how often to look, short for the points whose state lasts a few POSTs (each look costs the
    run's CPU on a 2-core machine)."""

    name: str
    holds: Callable[[Observed], bool]
    jobs: bool = False
    poll_s: float = 0.003
    reachable: bool = True  # False: no state the next process can reach holds it


def _never(_: Observed) -> bool:
    return False


def choose(
    wanted: str, before: Observed, rng: random.Random, *, submissions_left: int
) -> KillPoint:
    """The kill point for the next process, given the journal ``before`` it starts.

    ``wanted`` is replaced by the next point the run can still reach: ``reconciling`` needs a
    batch left unresolved, ``submitting`` enough planned batches, ``polling`` a job open (or a
    batch still to resolve). ``downloading`` needs a job open or a result waiting; without
    either the point comes back with ``reachable`` False. ``submissions_left`` (this one
    included) spreads the submission kills over the batches still planned.
    """
    planned = before.batches_in("planned")
    # every batch resolved: no job will be created, so none opens again
    settled = before.has_plan and before.batches_in("planned", *_UNRESOLVED) == 0
    if wanted == "planning" and before.has_plan:
        wanted = "submitting"
    if wanted == "reconciling" and not before.batches_in(*_UNRESOLVED):
        wanted = "submitting"
    if wanted == "submitting" and before.has_plan and planned <= MIN_PLANNED_LEFT:
        wanted = "polling"
    if wanted == "polling" and settled and not before.jobs_open:
        wanted = "downloading"
    if wanted == "downloading" and settled and not (before.jobs_open or before.awaiting_download):
        return KillPoint("downloading", _never, reachable=False)
    if wanted == "planning":
        return KillPoint("planning", lambda o: o.spilling and not o.has_plan, poll_s=0.01)
    if wanted == "submitting":
        return KillPoint("submitting", _SubmissionKill(rng, max(1, submissions_left)))
    if wanted == "reconciling":
        return KillPoint("reconciling", lambda o: o.batches_in("ambiguous") > 0)
    if wanted == "polling":
        return KillPoint(
            "polling",
            lambda o: o.has_plan and o.batches_in("planned", *_UNRESOLVED) == 0 and o.jobs_open,
            jobs=True,
            poll_s=0.05,
        )
    if wanted == "downloading":
        return KillPoint(
            "downloading",
            lambda o: o.awaiting_download and (o.downloaded or not o.jobs_open),
            jobs=True,
            poll_s=0.05,
        )
    raise ValueError(f"unknown kill point {wanted!r}")


class _SubmissionKill:
    """Holds once at most a target number of batches is still planned while a POST is in
    flight. The target is a seeded step into the share of the planned batches that each of the
    remaining submission kills gets, taken from the first observed plan."""

    def __init__(self, rng: random.Random, left: int) -> None:
        self.rng, self.left = rng, left
        self.target: int | None = None

    def __call__(self, o: Observed) -> bool:
        if not o.has_plan:
            return False
        planned = o.batches_in("planned")
        if self.target is None:
            share = max(1, (planned - MIN_PLANNED_LEFT) // self.left)
            self.target = planned - self.rng.randint(max(1, share // 3), share)
        return planned <= self.target and o.batches_in("submitting") > 0


def schedule(kills: int, rng: random.Random) -> list[str]:
    """A seeded order of ``kills`` points: planning first, then submissions (each followed by
    its reconciliation one time in three), then polling and downloading."""
    if kills < 4:
        return ["submitting"] * kills
    middle: list[str] = []
    while len(middle) < kills - 3:
        middle.append("submitting")
        if len(middle) < kills - 3 and rng.random() < 1 / 3:
            middle.append("reconciling")
    return ["planning", *middle, "polling", "downloading"]
