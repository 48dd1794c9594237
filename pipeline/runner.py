"""dsar's main job, as library calls: run, resume, retry, resume every run of a workspace.

:func:`start_run` validates and plans an input file into a new run directory (the plan is
written to the journal in one transaction), then drives it; :func:`resume_run` drives an
existing run from its journal, after a crash, a pause for the daily cap, ``--no-wait`` or
``--max-runtime``. Each returns a :class:`RunOutcome` whose ``exit_code`` follows DESIGN.md:
0 all complete, 1 finished with errors or rejects, 4 paused with work pending.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from . import __version__
from .engine import DriveResult, drive
from .errors import ConfigError, InputError, JournalError, RunPaused
from .handoff import key_secret_from_env, write_handoff
from .journal import Journal
from .journal_models import RunMeta, RunState
from .journal_schema import JOURNAL_FILE, make_private_dir
from .ledger import Ledger
from .leftovers import remove_dead_temp_files, spill_root, sweep_workspace
from .planning import plan_input
from .progress import ProgressReporter
from .reports import write_reports
from .runstate import RunContext, RunOptions
from .settings import Settings, load_settings
from .target import Target, api_target

log = logging.getLogger("dsar.run")


@dataclass(frozen=True, kw_only=True)
class RunOutcome:
    """Where a run stands after a command drove it."""

    run_dir: Path
    run_id: str
    exit_code: int
    state: str
    pause_reason: str | None
    resume_after: datetime | None
    jobs: dict[str, int]
    rejected_rows: int
    api_calls: dict[str, dict[str, int]]

    @property
    def message(self) -> str:
        """One line saying what happened and what to do next."""
        if self.state == RunState.FINISHED:
            if self.exit_code == 0:
                return "finished: every job complete"
            return "finished with errors or rejected rows: see status.parquet and rejects.parquet"
        if self.pause_reason == "daily_cap":
            when = self.resume_after.isoformat() if self.resume_after else "tomorrow (UTC)"
            return f"paused at the daily job cap: run `dsar resume {self.run_dir}` after {when}"
        if self.pause_reason == "dry_run":
            return f"dry run: nothing submitted; `dsar resume {self.run_dir}` submits the plan"
        reason = self.pause_reason or "paused"
        return f"paused ({reason}) with work pending: run `dsar resume {self.run_dir}`"


def new_run_id(now: datetime) -> str:
    """A sortable, unique run id: UTC time plus 6 random hex digits."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def settings_snapshot(settings: Settings) -> dict[str, Any]:
    """The settings without credentials, JSON-ready, with an absolute workspace."""
    data = dataclasses.asdict(settings)
    data.pop("credentials")
    data["output"]["workspace"] = str(Path(settings.output.workspace).resolve())
    return data


def settings_from_snapshot(snapshot: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """The settings a run was planned with, and today's credentials from ``env``."""
    return load_settings(None, env=env, overrides={k: dict(v) for k, v in snapshot.items()})


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def start_run(
    input_path: Path,
    settings: Settings,
    *,
    env: Mapping[str, str],
    run_dir: Path | None = None,
    options: RunOptions | None = None,
    dry_run: bool = False,
    confirm: Callable[[Target, int], bool] | None = None,
) -> RunOutcome:
    """Validate, plan and drive ``input_path`` as a new run; see the module docstring."""
    options = options or RunOptions(env=env)
    now = datetime.now(UTC)
    run_id = new_run_id(now)
    workspace = Path(settings.output.workspace)
    run_dir = run_dir or (
        Path(settings.output.run_dir) if settings.output.run_dir else workspace / run_id
    )
    if (run_dir / JOURNAL_FILE).exists():
        _refuse_planned(run_dir)  # a run killed while planning is planned again
    if not input_path.is_file():
        raise InputError(f"{input_path}: no such file")
    make_private_dir(run_dir)
    sweep_workspace(workspace)
    try:
        return _start(input_path, settings, env, run_dir, run_id, options, dry_run, confirm)
    except InputError:
        _discard_unplanned(run_dir)
        raise


def _refuse_planned(run_dir: Path) -> None:
    """ConfigError unless ``run_dir`` holds a run killed while planning (none was written)."""
    with Journal.open(run_dir) as journal:
        if journal.has_plan:
            raise ConfigError(f"{run_dir} already holds a run: use `dsar resume {run_dir}`")
        planning = journal.planning()
    if planning is not None and planning.planner_alive:
        raise ConfigError(f"{run_dir} is being planned by process {planning.pid}")
    remove_dead_temp_files(run_dir, legacy=True)
    log.info("%s holds a run killed while planning: planning from the start", run_dir)


def _restart_planning(
    run_dir: Path, env: Mapping[str, str], options: RunOptions
) -> RunOutcome | None:
    """Plan again, from the start, a run killed while planning, and drive it; None if the run
    holds a plan. Its input must be where it was, unchanged."""
    with Journal.open(run_dir) as journal:
        if journal.has_plan:
            return None
        planning = journal.planning()
    if planning is None:  # killed between the journal's creation and the planning's record
        raise ConfigError(
            f"{run_dir}: the run was killed before planning: start it again with"
            f" `dsar run INPUT --run-dir {run_dir}`"
        )
    if planning.planner_alive:
        raise ConfigError(f"{run_dir} is being planned by process {planning.pid}")
    input_path = Path(planning.input_path)
    if not input_path.is_file():
        raise InputError(f"{input_path}: no such file (the input of this run)")
    if file_sha256(input_path) != planning.input_sha256:
        raise InputError(f"{input_path} changed since the run started: start a new run")
    settings = settings_from_snapshot(planning.settings, env)
    remove_dead_temp_files(run_dir, legacy=True)
    sweep_workspace(Path(settings.output.workspace))
    log.info("the run was killed while planning: planning it again from the start")
    return _start(input_path, settings, env, run_dir, planning.run_id, options, False, None)


def _discard_unplanned(run_dir: Path) -> None:
    """Remove a run directory whose planning failed before any plan was written."""
    with Journal.open(run_dir) as journal:
        planned = journal.has_plan
    if not planned:
        shutil.rmtree(run_dir, ignore_errors=True)


def _start(
    input_path: Path,
    settings: Settings,
    env: Mapping[str, str],
    run_dir: Path,
    run_id: str,
    options: RunOptions,
    dry_run: bool,
    confirm: Callable[[Target, int], bool] | None,
) -> RunOutcome:
    workspace = Path(settings.output.workspace)
    if dry_run:
        with Journal.open(run_dir) as journal:
            _plan(journal, input_path, settings, run_id, run_dir, env, org_id=None)
            journal.pause("dry_run", datetime.now(UTC))
            publish(journal, run_dir, options=options)
            return _outcome(journal, run_dir)
    with api_target(settings, workspace=workspace, env=env) as target:
        org_id = target.settings.credentials.org_id
        with Journal.open(run_dir) as journal:
            jobs = _plan(journal, input_path, settings, run_id, run_dir, env, org_id=org_id)
            publish(journal, run_dir, options=options)
            if confirm is not None and not target.embedded and not confirm(target, jobs):
                journal.pause("not_confirmed", datetime.now(UTC))
                raise RunPaused("not confirmed; nothing was submitted", str(run_dir))
            return _drive(journal, run_dir, target, options)


def _plan(
    journal: Journal,
    input_path: Path,
    settings: Settings,
    run_id: str,
    run_dir: Path,
    env: Mapping[str, str],
    *,
    org_id: str | None,
) -> int:
    input_sha256 = file_sha256(input_path)
    snapshot = settings_snapshot(settings)
    journal.begin_planning(
        run_id=run_id,
        input_path=str(input_path.resolve()),
        input_sha256=input_sha256,
        settings=snapshot,
        at=datetime.now(UTC),
    )
    with plan_input(
        input_path,
        settings,
        run_id=run_id,
        rejects_path=run_dir / "rejects.parquet",
        env=env,
        spill_dir=spill_root(Path(settings.output.workspace)),
    ) as plan:
        meta = RunMeta(
            run_id=run_id,
            created_at=datetime.now(UTC),
            input_path=str(input_path.resolve()),
            input_sha256=input_sha256,
            input_rows=plan.summary.rows,
            config_digest=settings.digest(),
            tool_version=__version__,
            settings=snapshot,
            org_id=org_id,
        )
        jobs = journal.write_plan(meta, plan.batches(), rejects_count=0)
        journal.set_rejects_count(plan.summary.rejected_rows)
        log.info(
            "planned %d rows: %d subjects, %d users, %d requests, %d jobs, %d rows rejected",
            plan.summary.rows,
            plan.summary.subjects,
            plan.summary.users,
            plan.summary.requests,
            plan.summary.jobs,
            plan.summary.rejected_rows,
        )
    return jobs


def resume_run(
    run_dir: Path,
    *,
    env: Mapping[str, str],
    options: RunOptions | None = None,
    retry_errors: bool = False,
) -> RunOutcome:
    """Drive an existing run from its journal (``dsar resume``; ``dsar retry`` with
    ``retry_errors``, which first plans new attempts for the jobs that ended in error)."""
    if not (run_dir / JOURNAL_FILE).exists():
        raise ConfigError(f"{run_dir} holds no run journal")
    options = options or RunOptions(env=env)
    restarted = None if retry_errors else _restart_planning(run_dir, env, options)
    if restarted is not None:
        return restarted
    with Journal.open(run_dir) as journal:
        if not journal.has_plan:
            raise JournalError(f"{run_dir}: the run was killed while planning; resume it first")
        info = journal.run_info()
        settings = settings_from_snapshot(info.meta.settings, env)
        sweep_workspace(Path(settings.output.workspace))
        if retry_errors:
            batches = journal.plan_retry(
                datetime.now(UTC), users_per_batch=settings.limits.users_per_request
            )
            log.info("retry: %d new batches for the jobs that ended in error", len(batches))
        elif info.state == RunState.FINISHED:
            publish(journal, run_dir, options=options)
            return _outcome(journal, run_dir)
        workspace = Path(settings.output.workspace)
        with api_target(settings, workspace=workspace, env=env) as target:
            org = target.settings.credentials.org_id
            if info.meta.org_id and org != info.meta.org_id:
                raise ConfigError("the credentials belong to another org than this run's")
            return _drive(journal, run_dir, target, options)


def resume_all(
    workspace: Path, *, env: Mapping[str, str], options: RunOptions | None = None
) -> list[RunOutcome]:
    """Advance every unfinished run of ``workspace`` in turn (the cron entry point)."""
    outcomes = []
    for journal_path in sorted(workspace.glob(f"*/{JOURNAL_FILE}")):
        run_dir = journal_path.parent
        with Journal.open(run_dir) as journal:
            if journal.has_plan:
                if journal.run_info().state == RunState.FINISHED:
                    continue
            elif (planning := journal.planning()) is None or planning.planner_alive:
                continue  # a run killed while planning is planned again; a live one is left
        outcomes.append(resume_run(run_dir, env=env, options=options))
    return outcomes


def _drive(journal: Journal, run_dir: Path, target: Target, options: RunOptions) -> RunOutcome:
    settings = target.settings
    options = dataclasses.replace(
        options, poll_interval_s=options.poll_interval_s or target.poll_interval_s
    )
    info = journal.run_info()
    regulations = tuple(sorted({settings.job.regulation, *_batch_regulations(journal)}))

    last_extra: dict[str, Any] = {}

    async def main() -> DriveResult:
        async with target.client() as client:
            ledger = Ledger.open(Path(settings.output.workspace))
            try:
                ctx = RunContext(
                    journal=journal,
                    ledger=ledger,
                    client=client,
                    settings=settings,
                    options=options,
                    org_id=info.meta.org_id or settings.credentials.org_id or "",
                    regulations=regulations,
                )

                def checkpoint(extra: Mapping[str, Any]) -> None:
                    nonlocal last_extra
                    last_extra = dict(extra)
                    publish(journal, run_dir, options=options, extra=last_extra)

                with ProgressReporter() as reporter:
                    return await drive(ctx, run_dir, checkpoint=checkpoint, reporter=reporter)
            finally:
                ledger.close()

    _drive_allocator()
    try:
        asyncio.run(main())
    except BaseException:
        publish(journal, run_dir, options=options, extra=last_extra)  # what is known
        raise
    return _outcome(journal, run_dir)


def _drive_allocator() -> None:
    """While a run is driven, Arrow allocates through the system allocator (unless
    ARROW_DEFAULT_MEMORY_POOL chooses): each checkpoint's report pass then hands its pages
    back, where mimalloc kept them and stacked the passes' peaks (478 MB for 100,000
    subjects). Planning keeps mimalloc, which holds very wide inputs in far less memory."""
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.default_memory_pool().release_unused()  # what planning's allocator still keeps
        pa.set_memory_pool(pa.system_memory_pool())


def publish(
    journal: Journal,
    run_dir: Path,
    *,
    options: RunOptions,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Rewrite every report of the run: the Parquet files and summary.json, then report.html
    and manifest.json (whose checksums cover the others), each atomically."""
    now = datetime.now(UTC)
    write_reports(journal, run_dir, now=now, extra=extra)
    write_handoff(
        run_dir,
        now=now,
        redact_keys=options.redact_keys,
        key_secret=key_secret_from_env(options.env),
    )
    # Arrow's allocator keeps freed pages for reuse; a long run's report passes would stack
    # their peaks on each other without handing them back to the system.
    pa.default_memory_pool().release_unused()


def _batch_regulations(journal: Journal) -> set[str]:
    return {w.regulation for w in journal.open_windows()}


def _outcome(journal: Journal, run_dir: Path) -> RunOutcome:
    info = journal.run_info()
    counts = journal.counts()
    jobs = counts.jobs
    if info.state == RunState.FINISHED:
        bad = jobs["error"] + jobs["failed"] + info.rejects_count
        bad += journal.results_unavailable()  # an access answer that never reached disk
        code = 0 if bad == 0 else 1
    else:
        code = 4
    return RunOutcome(
        run_dir=run_dir,
        run_id=info.meta.run_id,
        exit_code=code,
        state=info.state.value,
        pause_reason=info.pause_reason,
        resume_after=info.resume_after,
        jobs=jobs,
        rejected_rows=info.rejects_count,
        api_calls=journal.api_calls(),
    )
