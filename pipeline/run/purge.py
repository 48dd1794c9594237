"""``dsar purge``: personal data does not outlive its purpose.

A finished run keeps each subject's identity values in ``journal.sqlite`` and each access
result (a copy of the person's data) in ``results/*.zip``. :func:`purge_run` removes them:

- ``results``: every file under ``RUN_DIR/results/`` (the ZIPs and any half-downloaded
  temporary file). Their sha256 and size are recorded in the journal first (one
  transaction, which also stamps each job's ``result_purged_at``), then the files are removed;
- ``identities``: every user's identity values are scrubbed from the journal (one
  transaction), then the journal file is rewritten so that their bytes are gone from the file
  and its WAL (:func:`pipeline.journal.purge.rewrite_journal`).

Then the reports, report.html and manifest.json are rewritten from the journal: the manifest
lists every purge with the sha256 and size of each file it removed, and ``dsar verify`` reports
those files as purged, not missing. Keys, statuses, product outcomes, checksums and times stay.

Each step is idempotent and ordered so that a purge killed anywhere and run again ends the
same. It holds the run lock (another driver: exit 7). An unfinished run is refused (exit 2)
unless ``force``; a forced identity purge of an unfinished run cancels it first (its unsent
jobs could never be sent without the identities) and says so. :func:`purge_workspace` purges
every finished run of a workspace (``--all``, ``--older-than``), and :func:`apply_retention`
applies ``[retention]`` at the end of ``dsar resume --all``.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import ConfigError, JournalError, PipelineError, RunLocked
from ..files import fsync_dir, sha256_file
from ..journal.models import PurgedFile, RunState
from ..journal.purge import remove_purge_leftovers, rewrite_journal
from ..journal.schema import JOURNAL_FILE
from ..journal.store import Journal
from ..reports.files import RESULTS_DIR
from ..settings import RetentionSettings, Settings
from .context import RunOptions
from .damage import check_journal
from .leftovers import SPILL_FOLDER, remove_dead_temp_files, sweep_workspace
from .lifecycle import run_label
from .lock import hold_lock
from .publish import publish

log = logging.getLogger("dsar.run")

# Testing switch: the purge stops at this step (one line on stderr) until it is killed.
PAUSE_ENV = "DSAR_TEST_PURGE_PAUSE_AT"
STEPS = ("locked", "results_recorded", "result_removed", "scrubbed", "copied", "renamed")


@dataclass(frozen=True, kw_only=True)
class PurgeOutcome:
    """What one purge of one run did."""

    run_dir: Path
    run_id: str
    files_removed: int
    bytes_removed: int
    identities: bool  # the journal's identity values are gone (now or by an earlier purge)
    cancelled: bool = False  # a forced identity purge cancelled the unfinished run

    @property
    def message(self) -> str:
        """One line: what was removed, and what is kept."""
        parts = [f"purged {self.run_id}"]
        if self.files_removed:
            parts.append(f"{self.files_removed:,} result files removed ({self.bytes_removed:,} B)")
        if self.identities:
            parts.append("identity values scrubbed from journal.sqlite (rewritten and checked)")
        if self.cancelled:
            parts.append("the unfinished run is cancelled: its unsent jobs can never be sent")
        if len(parts) == 1:
            parts.append("nothing to remove")
        return "; ".join(parts) + "; manifest.json records the purge"


def purge_run(
    run_dir: Path,
    *,
    results: bool,
    identities: bool,
    force: bool = False,
    options: RunOptions,
    pause_at: str | None = None,
) -> PurgeOutcome:
    """Purge ``run_dir`` under its lock; see the module docstring. ``pause_at`` is a testing
    switch (:data:`STEPS`): the process stops there until it is killed."""
    if not (run_dir / JOURNAL_FILE).is_file():
        raise ConfigError(f"{run_dir} holds no run journal")
    check_journal(run_dir)
    step = _stepper(pause_at)
    with hold_lock(run_dir, run_label(run_dir), clock=options.clock):
        step("locked")
        remove_purge_leftovers(run_dir)
        remove_dead_temp_files(run_dir)
        if (run_dir.parent / SPILL_FOLDER).is_dir():
            sweep_workspace(run_dir.parent)  # spill folders of dead planners hold identities
        return _purge_locked(run_dir, results, identities, force, options, step)


def _purge_locked(
    run_dir: Path,
    results: bool,
    identities: bool,
    force: bool,
    options: RunOptions,
    step: Callable[[str], None],
) -> PurgeOutcome:
    cancelled = False
    removed: list[PurgedFile] = []
    with Journal.open(run_dir) as journal:
        if not journal.has_plan:
            if not force:
                raise ConfigError(
                    f"{run_dir}: the run was killed while planning, it is not finished; "
                    "--force purges it anyway"
                )
            run_id = run_dir.name
        else:
            info = journal.run_info()
            run_id = info.meta.run_id
            if info.state != RunState.FINISHED and not force:
                raise ConfigError(
                    f"{run_dir}: the run is not finished ({info.state.value}); finish it with "
                    f"`dsar resume {run_dir}`, or --force purges it anyway"
                )
            if identities and info.state != RunState.FINISHED:
                journal.cancel(options.clock.utc_now(), stop_polling=False)
                cancelled = True
        if results:
            removed = _purge_results(journal, run_dir, options.clock.utc_now(), step)
        if identities:
            journal.scrub_identities(options.clock.utc_now())
            step("scrubbed")
    if identities:  # the bytes go before anything else can fail
        rewrite_journal(run_dir, step=step)
    with Journal.open(run_dir) as journal:
        if journal.has_plan:
            publish(journal, run_dir, options=options)
    log.info("purged %s: %d files removed", run_id, len(removed))
    return PurgeOutcome(
        run_dir=run_dir,
        run_id=run_id,
        files_removed=len(removed),
        bytes_removed=sum(f.bytes for f in removed),
        identities=identities,
        cancelled=cancelled,
    )


def _purge_results(
    journal: Journal, run_dir: Path, at: datetime, step: Callable[[str], None]
) -> list[PurgedFile]:
    """Record, then remove, every file of ``RUN_DIR/results``; returns what was removed."""
    folder = run_dir / RESULTS_DIR
    if not folder.is_dir():
        return []
    paths = sorted(p for p in folder.iterdir() if p.is_file())
    files = [
        PurgedFile(path=f"{RESULTS_DIR}/{p.name}", sha256=sha256_file(p), bytes=p.stat().st_size)
        for p in paths
    ]
    journal.record_results_purged(files, at)
    step("results_recorded")
    for path in paths:
        path.unlink(missing_ok=True)
        step("result_removed")
    fsync_dir(folder)
    return files


def _stepper(pause_at: str | None) -> Callable[[str], None]:
    if pause_at is not None and pause_at not in STEPS:
        raise ConfigError(f"{PAUSE_ENV}: unknown step; known: {', '.join(STEPS)}")

    def step(name: str) -> None:
        if name == pause_at:
            print(f"dsar purge: paused at {name} ({PAUSE_ENV})", file=sys.stderr, flush=True)
            threading.Event().wait()  # until the test kills this process

    return step


@dataclass(frozen=True, kw_only=True)
class WorkspacePurge:
    """What a purge of a whole workspace did."""

    outcomes: list[PurgeOutcome]
    skipped: int  # unfinished runs, or runs too recent for --older-than
    busy: int  # runs another dsar process drives

    @property
    def exit_code(self) -> int:
        """0, or 7 when a run was busy (purge it again later)."""
        return RunLocked.exit_code if self.busy else 0


def finished_runs(workspace: Path, notice: Callable[[str], None]) -> list[tuple[Path, Any]]:
    """(run directory, RunInfo) of every finished run of ``workspace``; the others are named
    in one ``notice`` line each."""
    out = []
    for journal_path in sorted(workspace.glob(f"*/{JOURNAL_FILE}")):
        run_dir = journal_path.parent
        try:
            with Journal.open(run_dir) as journal:
                info = journal.run_info() if journal.has_plan else None
        except JournalError as exc:
            notice(f"{run_dir.name}: skipped, {exc}")
            continue
        if info is None or info.state != RunState.FINISHED:
            notice(f"{run_dir.name}: not finished, not purged (`dsar purge --force {run_dir}`)")
            continue
        out.append((run_dir, info))
    return out


def purge_workspace(
    workspace: Path,
    *,
    results: bool,
    identities: bool,
    older_than: timedelta | None,
    options: RunOptions,
    notice: Callable[[str], None] = log.warning,
    pause_at: str | None = None,
) -> WorkspacePurge:
    """Purge every finished run of ``workspace`` (finished at least ``older_than`` ago),
    under the workspace's lock; unfinished runs are skipped with one line each."""
    if not workspace.is_dir():
        raise ConfigError(f"{workspace}: not a workspace directory")
    with hold_lock(workspace, f"workspace {workspace}", clock=options.clock):
        sweep_workspace(workspace)
        now = options.clock.utc_now()
        outcomes: list[PurgeOutcome] = []
        busy = 0
        runs = finished_runs(workspace, notice)
        skipped = len(list(workspace.glob(f"*/{JOURNAL_FILE}"))) - len(runs)
        for run_dir, info in runs:
            if older_than is not None and now - info.updated_at < older_than:
                skipped += 1
                continue
            try:
                outcomes.append(
                    purge_run(
                        run_dir, results=results, identities=identities, options=options,
                        pause_at=pause_at,
                    )
                )  # fmt: skip
            except RunLocked as exc:
                notice(f"{run_dir.name}: skipped, {exc}")
                busy += 1
    return WorkspacePurge(outcomes=outcomes, skipped=skipped, busy=busy)


def retention_of(snapshot: Mapping[str, Any], command: Settings) -> RetentionSettings:
    """A run's ``[retention]``: as journalled, with the keys the command's config sets."""
    journalled = dict(snapshot.get("retention") or {})
    for f in fields(RetentionSettings):
        if f"retention.{f.name}" in command.explicit:
            journalled[f.name] = getattr(command.retention, f.name)
    return RetentionSettings(**journalled)


def apply_retention(
    workspace: Path,
    command: Settings,
    *,
    options: RunOptions,
    notice: Callable[[str], None] = log.warning,
) -> list[PurgeOutcome]:
    """At the end of ``dsar resume --all`` (the caller holds the workspace lock): purge the
    results of every finished run older than its ``results_days`` and the identities of
    those older than ``identities_days``. A run another process drives, or one the purge
    stops at (a damaged file), is named in one ``notice`` line and left for the next night."""
    now = options.clock.utc_now()
    done: list[PurgeOutcome] = []
    for run_dir, info in finished_runs(workspace, lambda _line: None):
        keep = retention_of(info.meta.settings, command)
        age = now - info.updated_at
        results = keep.results_days is not None and age >= timedelta(days=keep.results_days)
        results = results and any((run_dir / RESULTS_DIR).glob("*"))
        identities = (
            keep.identities_days is not None
            and age >= timedelta(days=keep.identities_days)
            and info.identities_purged_at is None
        )
        if not (results or identities):
            continue
        try:
            outcome = purge_run(run_dir, results=results, identities=identities, options=options)
        except PipelineError as exc:  # busy, or a damaged file: said, and the next run goes on
            notice(f"{run_dir.name}: retention not applied, {exc}")
            continue
        log.info("retention: %s", outcome.message)
        done.append(outcome)
    return done
