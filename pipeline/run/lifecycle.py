"""The run's edges: what may drive a run, ``dsar cancel``, and the shared-org warning.

Nothing is submitted behind the user's back. A dry run leaves a *preview* that only
``dsar submit`` turns live; a declined prompt leaves a *declined* run that nothing resumes;
``dsar cancel`` stops a run from submitting anything more. :func:`check_drivable` is the one
place that says which run a command may drive, with the one-line reason when it may not.

The daily-cap ledger is per workspace (``WORKSPACE/ledger.sqlite``); the service's cap is per
org. :func:`warn_shared_org` warns when a sibling workspace of the same base directory books
jobs for the same org, since neither ledger sees the other's jobs.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, DamagedJournal, JournalError
from ..journal.intent import CancelResult
from ..journal.ledger import LEDGER_FILE, Ledger
from ..journal.models import RunInfo, RunIntent, RunState
from ..journal.schema import JOURNAL_FILE
from ..journal.store import Journal
from .budget import settle_reservations
from .context import RunOptions
from .lock import hold_lock
from .publish import publish

if TYPE_CHECKING:
    from .purge import PurgeOutcome
    from .runner import RunOutcome

log = logging.getLogger("dsar.run")


def run_label(run_dir: Path) -> str:
    """``"run RUN_ID"`` from the journal (the directory's name before a plan exists)."""
    try:
        with Journal.open(run_dir) as journal:
            if journal.has_plan:
                return f"run {journal.run_info().meta.run_id}"
    except JournalError:
        pass
    return f"run {run_dir.name}"


def check_drivable(info: RunInfo, run_dir: Path, *, retry: bool = False) -> None:
    """Raise :class:`ConfigError` (exit 2) with the next step when ``resume``/``retry`` must
    not drive this run: a preview, a declined run, or a ``retry`` of a cancelled run. A
    finished preview (every row rejected: nothing to submit) passes; there is nothing to do."""
    if info.intent == RunIntent.PREVIEW and info.state != RunState.FINISHED:
        raise ConfigError(
            f"{run_dir} is a preview (a dry run, or a plan never confirmed): nothing was "
            "submitted; "
            f"`dsar submit {run_dir}` submits it"
        )
    if info.intent == RunIntent.DECLINED:
        raise ConfigError(
            f"{run_dir}: the confirmation was declined, nothing was submitted and the run "
            "cannot be resumed; run `dsar run INPUT` again to submit"
        )
    if retry and info.intent == RunIntent.CANCELLED:
        raise ConfigError(f"{run_dir} was cancelled: nothing more is submitted, retries neither")
    if retry and info.identities_purged_at is not None:
        raise ConfigError(
            f"{run_dir}: its identity values were purged, so nothing can be resubmitted; "
            "start a new run from the input to retry"
        )


def skip_note(info: RunInfo, run_dir: Path) -> str | None:
    """The line ``resume --all`` prints for a run it leaves alone (None: drive it)."""
    if info.intent == RunIntent.PREVIEW:
        name = run_dir.name
        return f"{name}: a preview, skipped (nothing sent); `dsar submit {run_dir}` sends it"
    if info.intent == RunIntent.DECLINED:
        return f"{run_dir.name}: declined at the prompt, skipped; nothing was submitted"
    return None


@dataclass(frozen=True, kw_only=True)
class WorkspaceOutcome:
    """What ``resume --all`` did: the runs it drove, and how many another process drives."""

    outcomes: list[RunOutcome]
    busy: int  # runs locked by another dsar process: still pending
    damaged: int = 0  # runs whose journal is damaged: skipped, each named in a notice
    refused: int = 0  # runs that could create more jobs than --max-jobs: skipped, named
    purged: list[PurgeOutcome] = field(default_factory=list)  # what [retention] removed

    @property
    def exit_code(self) -> int:
        """The worst run's code; a busy run counts as pending (4), a damaged journal as a
        journal error (6), a run refused by ``--max-jobs`` as a usage error (2)."""
        codes = [o.exit_code for o in self.outcomes] + ([4] if self.busy else [])
        codes += [2] if self.refused else []
        codes += [DamagedJournal.exit_code] if self.damaged else []
        return max(codes, default=0)


@dataclass(frozen=True, kw_only=True)
class CancelOutcome:
    """What ``dsar cancel`` did, and the line that says so."""

    run_dir: Path
    run_id: str
    result: CancelResult
    stop_polling: bool

    @property
    def message(self) -> str:
        """One line: what will never be sent, and what happens to the jobs already sent."""
        r = self.result
        parts = [f"cancelled: {r.jobs_cancelled:,} jobs will never be submitted"]
        if r.batches_unresolved:
            parts.append(
                f"{r.batches_unresolved:,} POSTs of unknown outcome are reconciled (never "
                f"re-sent) by `dsar resume {self.run_dir}`"
            )
        if r.jobs_in_flight and self.stop_polling:
            parts.append(f"{r.jobs_in_flight:,} jobs at the service are reported as last seen")
        elif r.jobs_in_flight:
            parts.append(
                f"{r.jobs_in_flight:,} jobs at the service are polled to the end by "
                f"`dsar resume {self.run_dir}` (or `resume --all`)"
            )
        if r.finished:
            parts.append("the run is finished")
        return "; ".join(parts)


def cancel_run(run_dir: Path, *, stop_polling: bool, options: RunOptions) -> CancelOutcome:
    """Cancel the run of ``run_dir`` under its lock, so nothing more of it is ever submitted,
    and rewrite its reports (the cancelled jobs show as ``cancelled``)."""
    if not (run_dir / JOURNAL_FILE).exists():
        raise ConfigError(f"{run_dir} holds no run journal")
    with hold_lock(run_dir, run_label(run_dir)), Journal.open(run_dir) as journal:
        if not journal.has_plan:
            raise JournalError(f"{run_dir}: the run was killed while planning; nothing to cancel")
        result = journal.cancel(options.clock.utc_now(), stop_polling=stop_polling)
        _settle_ledger(journal)
        publish(journal, run_dir, options=options)
        run_id = journal.run_info().meta.run_id
    return CancelOutcome(run_dir=run_dir, run_id=run_id, result=result, stop_polling=stop_polling)


def _settle_ledger(journal: Journal) -> None:
    """Give back what a cancelled run's last process left reserved for batches that will now
    never be sent (a finished cancelled run is never driven again to settle them)."""
    workspace = Path(journal.run_info().meta.settings["output"]["workspace"])
    if (workspace / LEDGER_FILE).is_file():  # no ledger, nothing reserved: make none
        with Ledger.open(workspace) as ledger:
            settle_reservations(journal, ledger)


def ledger_orgs(workspace: Path) -> set[str]:
    """The org ids booked in ``workspace``'s ledger (read-only; empty when there is none)."""
    path = workspace / LEDGER_FILE
    if not path.is_file():
        return set()
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return {str(r[0]) for r in conn.execute("SELECT DISTINCT org FROM day_usage")}
        finally:
            conn.close()
    except sqlite3.Error:
        return set()  # not a ledger we can read: nothing to compare


def warn_shared_org(workspace: Path, orgs: set[str]) -> list[Path]:
    """Log one warning per sibling workspace (same base directory) whose ledger books one of
    ``orgs``; returns those siblings. The org id itself is not logged."""
    here = workspace.resolve()
    wanted = {o for o in orgs if o}
    if not wanted or not here.parent.is_dir():
        return []
    shared = []
    for sibling in sorted(p for p in here.parent.iterdir() if p.is_dir() and p != here):
        if ledger_orgs(sibling) & wanted:
            shared.append(sibling)
            log.warning(
                "workspace %s books the same org as %s: each workspace keeps its own daily "
                "budget, but the service caps the org; use one workspace per org",
                sibling,
                here,
            )
    return shared
