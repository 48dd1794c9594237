"""dsar's main job, as library calls: run, resume, retry, resume every run of a workspace.

:func:`start_run` validates and plans an input file into a new run directory (the plan is
written to the journal in one transaction), then drives it; :func:`resume_run` drives an
existing run from its journal, after a crash, a pause for the daily cap, ``--no-wait`` or
``--max-runtime``. Each returns a :class:`RunOutcome` whose ``exit_code`` follows DESIGN.md:
0 all complete, 1 finished with errors or rejects, 4 paused with work pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from .. import __version__
from ..errors import (
    ConfigError,
    DamagedJournal,
    InputError,
    JournalError,
    RunLocked,
    RunPaused,
    TooManyJobs,
)
from ..files import sha256_file
from ..input.planning import plan_input
from ..journal.ledger import Ledger
from ..journal.models import RunIntent, RunMeta, RunState
from ..journal.schema import JOURNAL_FILE, make_private_dir
from ..journal.store import Journal
from ..reports.orgs import org_pauses
from ..reports.writers import REJECTS_FILE, STATUS_FILE
from ..settings import Settings, load_settings, snapshot_overrides
from .aio import in_worker, refuse_running_loop
from .canary import (
    check_max_jobs,
    could_create,
    cut_canary,
    held_note,
    max_jobs,
)
from .context import RunContext, RunOptions
from .engine import DriveResult, drive
from .leftovers import remove_dead_temp_files, spill_root, sweep_workspace
from .lifecycle import (
    WorkspaceOutcome,
    check_drivable,
    ledger_orgs,
    run_label,
    skip_note,
    warn_shared_org,
)
from .lock import hold_lock
from .orgs import pause_message
from .poller import Poller
from .progress import ProgressReporter
from .publish import publish
from .purge import apply_retention
from .recurring import catch_up, loading_blocklist, secret_of, sync_registry
from .resume_settings import check_resume_configs, resume_settings
from .target import Target, api_target, check_target

log = logging.getLogger("dsar.run")

# The confirmation before a plan is submitted: (target, jobs, the input's sha256) -> yes?
Confirm = Callable[[Target, int, str], bool]


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
    note: str | None = None  # says it all when set (e.g. ``dsar retry`` with nothing to retry)
    skipped: int = 0  # jobs dedupe left out: an earlier run of the workspace submitted them

    @property
    def message(self) -> str:
        """One line saying what happened and what to do next."""
        if self.note:
            return self.note
        if self.state == RunState.FINISHED:
            if self.jobs.get("cancelled"):
                return "finished (cancelled): see status.parquet for what was never submitted"
            if not sum(self.jobs.values()) and self.skipped:
                return (
                    f"finished: nothing submitted, {self.skipped:,} jobs skipped as duplicates"
                    f" of earlier runs (see {self.run_dir / STATUS_FILE})"
                )
            if self.exit_code == 0:
                return "finished: every job complete"
            if not sum(self.jobs.values()):
                return (
                    f"no valid row: all {self.rejected_rows:,} rows were rejected, "
                    f"see {self.run_dir / REJECTS_FILE}"
                )
            return (
                "finished with errors or rejected rows: see "
                f"{self.run_dir / STATUS_FILE} and {self.run_dir / REJECTS_FILE}"
            )
        if self.pause_reason == "daily_cap":
            when = self.resume_after.isoformat() if self.resume_after else "tomorrow (UTC)"
            return f"paused at the daily job cap: run `dsar resume {self.run_dir}` after {when}"
        if self.pause_reason == "dry_run":
            return f"dry run: nothing submitted; `dsar submit {self.run_dir}` submits the plan"
        if self.pause_reason == "declined":
            return "declined: nothing was submitted, and the run will not be resumed"
        reason = self.pause_reason or "paused"
        return f"paused ({reason}) with work pending: run `dsar resume {self.run_dir}`"


def new_run_id(now: datetime) -> str:
    """A sortable, unique run id: UTC time plus 6 random hex digits."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def settings_snapshot(settings: Settings) -> dict[str, Any]:
    """The settings without credentials, JSON-ready, with an absolute workspace."""
    data = dataclasses.asdict(dataclasses.replace(settings, org_credentials={}))
    data.pop("credentials")
    data.pop("explicit")
    data.pop("org_credentials")
    if not data["orgs"]:
        data.pop("orgs")  # a single-org run's snapshot is what it always was
    data["output"]["workspace"] = str(Path(settings.output.workspace).resolve())
    return data


def settings_from_snapshot(snapshot: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """The settings a run was planned with, and today's credentials from ``env``."""
    return load_settings(None, env=env, overrides=snapshot_overrides(snapshot))


@asynccontextmanager
async def run_poller(run_dir: Path, env: Mapping[str, str]) -> AsyncIterator[Poller]:
    """A :class:`Poller` of ``run_dir`` outside a drive (a benchmark, a test of polling): its
    journal, its workspace's ledger, and a client of the service its journalled settings
    name, with ``env``'s credentials; all closed on the way out."""
    with Journal.open(run_dir) as journal:
        settings = settings_from_snapshot(journal.run_info().meta.settings, env)
        with Ledger.open(Path(settings.output.workspace)) as ledger:
            async with Target(settings=settings, embedded=False).client() as client:
                ctx = RunContext(
                    journal=journal,
                    ledger=ledger,
                    client=client,
                    settings=settings,
                    options=RunOptions(),
                    org_id=settings.credentials.org_id or "",
                    regulations=(settings.job.regulation,),
                )
                yield Poller(ctx, run_dir)


def start_run(
    input_path: Path,
    settings: Settings,
    *,
    env: Mapping[str, str],
    run_dir: Path | None = None,
    options: RunOptions | None = None,
    dry_run: bool = False,
    confirm: Confirm | None = None,
) -> RunOutcome:
    """Validate, plan and drive ``input_path`` as a new run; see the module docstring."""
    refuse_running_loop("start_run")
    options = options or RunOptions(env=env)
    now = options.clock.utc_now()
    run_id = new_run_id(now)
    workspace = Path(settings.output.workspace)
    run_dir = run_dir or (
        Path(settings.output.run_dir) if settings.output.run_dir else workspace / run_id
    )
    if (run_dir / JOURNAL_FILE).exists():
        _refuse_planned(run_dir)  # a run killed while planning is planned again
    if not input_path.is_file():
        raise InputError(f"{input_path}: no such file")
    if not dry_run:
        check_target(settings)  # a half-configured target writes nothing
    make_private_dir(run_dir)
    with hold_lock(run_dir, f"run {run_id}"):
        sweep_workspace(workspace)
        try:
            return _start(input_path, settings, env, run_dir, run_id, options, dry_run, confirm)
        except (InputError, ConfigError, DamagedJournal):  # nothing planned: no run dir left
            _discard_unplanned(run_dir)
            raise
        except KeyboardInterrupt:  # SIGINT/SIGTERM before the run loop took the signals over
            if _discard_unplanned(run_dir):
                raise RunPaused(
                    "interrupted before the plan was written; nothing was submitted: "
                    "run the same command again"
                ) from None
            raise _interrupted(run_dir) from None


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
    """Plan again, from the start, a run killed while planning; None if the run holds a plan.
    Its input must be where it was, unchanged.

    The plan is a preview until an explicit act submits it: a killed dry run plans again as a
    preview, and so does a run whose command would have asked before submitting (nobody
    answered: `dsar submit` asks). A run whose command gave its consent up front (``--yes``,
    no terminal, a library call without a prompt) or that targets the embedded emulator is
    driven on."""
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
    if sha256_file(input_path) != planning.input_sha256:
        raise InputError(f"{input_path} changed since the run started: start a new run")
    settings = settings_from_snapshot(planning.settings, env)
    options = dataclasses.replace(options, dedupe=planning.dedupe)  # as the run was started
    remove_dead_temp_files(run_dir, legacy=True)
    sweep_workspace(Path(settings.output.workspace))
    log.info("the run was killed while planning: planning it again from the start")
    return _start(
        input_path, settings, env, run_dir, planning.run_id, options, planning.dry_run,
        _keep_preview if planning.asks else None,
    )  # fmt: skip


def _keep_preview(_target: Target, _jobs: int, _input_sha256: str) -> bool:
    """The confirmation of a re-planned run against a real service: nobody has been asked,
    so the plan stays a preview (:func:`_confirm_and_drive` knows this one by identity)."""
    return False


def _discard_unplanned(run_dir: Path) -> bool:
    """Remove a run directory whose planning failed before any plan was written; True if
    it was removed."""
    with Journal.open(run_dir) as journal:
        planned = journal.has_plan
    if not planned:
        shutil.rmtree(run_dir, ignore_errors=True)
    return not planned


def _interrupted(run_dir: Path) -> RunPaused:
    """The error of a run interrupted outside its run loop: resumable from its journal."""
    return RunPaused(f"interrupted; `dsar resume {run_dir}` continues the run")


def _start(
    input_path: Path,
    settings: Settings,
    env: Mapping[str, str],
    run_dir: Path,
    run_id: str,
    options: RunOptions,
    dry_run: bool,
    confirm: Confirm | None,
) -> RunOutcome:
    # The plan is a preview until confirmed: a process killed before the answer leaves
    # nothing that a later `resume --all` would submit.
    workspace = Path(settings.output.workspace)
    if dry_run:
        with Journal.open(run_dir) as journal:
            planned = _plan(
                journal, input_path, settings, run_id, run_dir, env, options,
                org_id=None, dry_run=True,
            )  # fmt: skip
            if not planned:
                return _finish_rejects_only(journal, run_dir, options)
            ceiling = max_jobs(settings, options.max_jobs)
            if ceiling is not None and planned > ceiling:  # said now, refused by `dsar submit`
                log.warning(
                    "the plan would create %d jobs, more than --max-jobs %d: nothing is sent by a"
                    " dry run, and `dsar submit` refuses it under the same ceiling",
                    planned,
                    ceiling,
                )
            journal.pause("dry_run", options.clock.utc_now())
            publish(journal, run_dir, options=options)
            return _outcome(journal, run_dir)
    with api_target(settings, workspace=workspace, env=env) as target:
        org_id = target.settings.credentials.org_id
        warn_shared_org(workspace, {org_id or ""})
        with Journal.open(run_dir) as journal:
            asks = confirm is not None and bool(getattr(confirm, "asks", True))
            jobs = _plan(
                journal, input_path, settings, run_id, run_dir, env, options,
                org_id=org_id, asks=asks,
            )  # fmt: skip
            if not jobs:
                return _finish_rejects_only(journal, run_dir, options)
            publish(journal, run_dir, options=options)
            # refused before any call: the plan stays a preview that only `dsar submit` sends
            check_max_jobs(
                jobs,
                max_jobs(settings, options.max_jobs),
                what=f"the plan (kept as a preview in {run_dir})",
            )
            return _confirm_and_drive(journal, run_dir, target, options, confirm, jobs)


def _confirm_and_drive(
    journal: Journal,
    run_dir: Path,
    target: Target,
    options: RunOptions,
    confirm: Confirm | None,
    jobs: int,
) -> RunOutcome:
    """Ask (unless embedded), then turn the preview live and drive it; a no declines it."""
    if confirm is _keep_preview and not target.embedded:  # `dsar submit` asks, later
        journal.pause("dry_run", options.clock.utc_now())
        publish(journal, run_dir, options=options)
        return _outcome(journal, run_dir)
    sha256 = journal.run_info().meta.input_sha256
    if confirm is not None and not target.embedded and not confirm(target, jobs, sha256):
        journal.decline(options.clock.utc_now())
        publish(journal, run_dir, options=options)
        return _outcome(journal, run_dir)
    journal.go_live(options.clock.utc_now(), org_id=target.settings.credentials.org_id)
    return _drive(journal, run_dir, target, options)


def _plan(
    journal: Journal,
    input_path: Path,
    settings: Settings,
    run_id: str,
    run_dir: Path,
    env: Mapping[str, str],
    options: RunOptions,
    *,
    org_id: str | None,
    dry_run: bool = False,
    asks: bool = True,
) -> int:
    input_sha256 = sha256_file(input_path)
    snapshot = settings_snapshot(settings)
    journal.begin_planning(
        run_id=run_id,
        dry_run=dry_run,
        asks=asks,
        input_path=str(input_path.resolve()),
        input_sha256=input_sha256,
        settings=snapshot,
        at=options.clock.utc_now(),
        dedupe=options.dedupe,
    )
    workspace = Path(settings.output.workspace)
    secret = secret_of(settings, env)
    catch_up(workspace, secret)  # the registry knows every earlier job before dedupe
    now = options.clock.utc_now()
    with (
        (
            loading_blocklist(settings, env, org=org_id, now=now)
            if options.dedupe
            else nullcontext()
        ) as blocked,
        plan_input(
            input_path,
            settings,
            run_id=run_id,
            rejects_path=run_dir / "rejects.parquet",
            env=env,
            spill_dir=spill_root(workspace),
            blocklist=blocked,
        ) as plan,
    ):
        meta = RunMeta(
            run_id=run_id,
            created_at=options.clock.utc_now(),
            input_path=str(input_path.resolve()),
            input_sha256=input_sha256,
            input_rows=plan.summary.rows,
            config_digest=settings.digest(),
            tool_version=__version__,
            settings=settings_snapshot(plan.settings),  # with a JSON upload's request options
            org_id=org_id,
        )
        # every row rejected: the plan is empty, and the run (with its rejects) is kept; the
        # plan is written from the columns (no object per user), each batch one deferred
        # record of its raw columns: the rows' JSON is built when a batch is materialised
        frames = plan.frames(allow_empty=True)
        batches = cut_canary(frames, settings.job.canary_users)
        jobs = journal.write_plan(
            meta, batches, rejects_count=0, intent=RunIntent.PREVIEW, skipped=plan.skipped
        )
        journal.set_rejects_count(plan.summary.rejected_rows)
        log.info(
            "planned %d rows: %d subjects, %d users, %d requests, %d jobs, %d rows rejected,"
            " %d jobs skipped (%s)",
            plan.summary.rows,
            plan.summary.subjects,
            plan.summary.users,
            plan.summary.requests,
            plan.summary.jobs,
            plan.summary.rejected_rows,
            plan.summary.skipped,
            "submitted by an earlier run" if options.dedupe else "dedupe off: --no-dedupe",
        )
    sync_registry(workspace, run_dir, secret)  # known to later catch-ups wherever it lives
    return jobs


def _finish_rejects_only(journal: Journal, run_dir: Path, options: RunOptions) -> RunOutcome:
    """A run whose every input row was rejected: nothing to submit. It finishes at once and
    keeps its directory, so the reports (rejects.parquet above all) say why (exit 3)."""
    now = options.clock.utc_now()
    journal.activate(now)
    journal.finish(now)
    publish(journal, run_dir, options=options)
    return _outcome(journal, run_dir)


def resume_run(
    run_dir: Path,
    *,
    env: Mapping[str, str],
    options: RunOptions | None = None,
    retry_errors: bool = False,
    config: Path | None = None,
) -> RunOutcome:
    """Drive an existing run from its journal (``dsar resume``; ``dsar retry`` with
    ``retry_errors``, which first plans new attempts for the jobs that ended in error).
    ``config`` may change how the run is driven, not what was planned: see
    :mod:`pipeline.run.resume_settings`."""
    refuse_running_loop("resume_run")
    if not (run_dir / JOURNAL_FILE).exists():
        raise ConfigError(f"{run_dir} holds no run journal")
    options = options or RunOptions(env=env)
    with hold_lock(run_dir, run_label(run_dir)):
        restarted = None if retry_errors else _restart_planning(run_dir, env, options)
        if restarted is not None:
            return restarted
        return _resume_planned(run_dir, env, options, retry_errors, config)


def _resume_planned(
    run_dir: Path,
    env: Mapping[str, str],
    options: RunOptions,
    retry_errors: bool,
    config: Path | None,
) -> RunOutcome:
    with Journal.open(run_dir) as journal:
        if not journal.has_plan:
            raise JournalError(f"{run_dir}: the run was killed while planning; resume it first")
        info = journal.run_info()
        check_drivable(info, run_dir, retry=retry_errors)
        if retry_errors and held_note(journal, run_dir):
            raise ConfigError(
                f"{run_dir} is held by its canary: `dsar submit {run_dir}` releases it first"
            )
        settings = resume_settings(info.meta.settings, env, config)
        check_max_jobs(
            could_create(journal, retry=retry_errors),
            max_jobs(settings, options.max_jobs),
            what=f"{'retrying' if retry_errors else 'resuming'} {run_dir}",
        )
        sweep_workspace(Path(settings.output.workspace))
        catch_up(Path(settings.output.workspace), secret_of(settings, env), run_dir=run_dir)
        if info.stop_polling:  # cancelled, polling stopped: reconcile what is unknown, no more
            options = dataclasses.replace(options, no_wait=True)
        if retry_errors:
            batches = journal.plan_retry(
                options.clock.utc_now(), users_per_batch=settings.limits.users_per_request
            )
            log.info("retry: %d new batches for the jobs that ended in error", len(batches))
            if not batches:
                return _nothing_to_retry(journal, run_dir)
        elif info.state == RunState.FINISHED:
            publish(journal, run_dir, options=options)
            return _outcome(journal, run_dir)
        workspace = Path(settings.output.workspace)
        try:
            with api_target(settings, workspace=workspace, env=env) as target:
                org = target.settings.credentials.org_id
                if info.meta.org_id and org != info.meta.org_id:
                    raise ConfigError("the credentials belong to another org than this run's")
                outcome = _drive(journal, run_dir, target, options)
        except KeyboardInterrupt:  # SIGINT/SIGTERM before the run loop took the signals over
            raise _interrupted(run_dir) from None
        if info.stop_polling and journal.close_cancelled(options.clock.utc_now()):
            publish(journal, run_dir, options=options)
            outcome = _outcome(journal, run_dir)
        return outcome


def resume_all(
    workspace: Path,
    *,
    env: Mapping[str, str],
    options: RunOptions | None = None,
    config: Path | None = None,
    notice: Callable[[str], None] = log.warning,
) -> WorkspaceOutcome:
    """Advance every unfinished run of ``workspace`` in turn (the cron entry point), under the
    workspace's lock. Previews and declined runs are skipped, and a run another process is
    driving too, and a run whose journal is damaged (exit 6 at the end), each with one line to
    ``notice``; a run killed while planning is planned
    again (:func:`_restart_planning`). With ``config``, every run is checked before any is
    driven (:func:`check_resume_configs`). A signal that stops one run stops the command:
    the runs after it are not started."""
    refuse_running_loop("resume_all")
    outcomes: list[RunOutcome] = []
    busy = damaged = refused = 0
    with hold_lock(workspace, f"workspace {workspace}"):
        warn_shared_org(workspace, ledger_orgs(workspace))
        runs: dict[Path, Mapping[str, Any]] = {}
        for journal_path in sorted(workspace.glob(f"*/{JOURNAL_FILE}")):
            run_dir = journal_path.parent
            try:
                with Journal.open(run_dir) as journal:
                    if not journal.has_plan:
                        planning = journal.planning()
                        if planning is not None and not planning.planner_alive:
                            runs[run_dir] = planning.settings  # killed while planning: again
                        continue
                    info = journal.run_info()
            except DamagedJournal as exc:  # one damaged run does not hold up the others
                notice(f"{run_dir.name}: skipped, {exc}")
                damaged += 1
                continue
            if info.state == RunState.FINISHED:
                continue
            note = skip_note(info, run_dir)
            if note:
                notice(note)
                continue
            runs[run_dir] = info.meta.settings
        if config is not None:
            check_resume_configs(runs, env, config)
        interrupted = False
        for run_dir in runs:
            try:
                outcomes.append(resume_run(run_dir, env=env, options=options, config=config))
            except RunLocked as exc:
                notice(f"{run_dir.name}: skipped, {exc}")
                busy += 1
                continue
            except TooManyJobs as exc:  # --max-jobs: this run is refused, the others go on
                notice(f"{run_dir.name}: skipped, {exc}")
                refused += 1
                continue
            if outcomes[-1].pause_reason == "interrupted":
                interrupted = True
                break
        purged = []
        if not interrupted:  # the nightly cron line enforces [retention]
            command = load_settings(config, env=env) if config is not None else Settings()
            purged = apply_retention(
                workspace, command, options=options or RunOptions(env=env), notice=notice
            )
    return WorkspaceOutcome(
        outcomes=outcomes, busy=busy, damaged=damaged, refused=refused, purged=purged
    )


def drive_target(
    journal: Journal, run_dir: Path, target: Target, options: RunOptions
) -> RunOutcome:
    """Drive the live run of ``journal`` against ``target`` until it finishes or pauses."""
    return _drive(journal, run_dir, target, options)


def _drive(journal: Journal, run_dir: Path, target: Target, options: RunOptions) -> RunOutcome:
    settings = target.settings
    options = dataclasses.replace(
        options, poll_interval_s=options.poll_interval_s or target.poll_interval_s
    )
    info = journal.run_info()
    regulations = tuple(sorted({settings.job.regulation, *_batch_regulations(journal)}))

    last_extra: dict[str, Any] = {}

    # several [[orgs]]: one client (token, limiter, retries) and budget per org
    orgs = settings.org_list() if settings.multi_org and len(settings.orgs) > 1 else ()

    async def main() -> DriveResult:
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(target.for_org(o).client(clock=options.clock))
                for o in orgs
            ] or [await stack.enter_async_context(target.client(clock=options.clock))]
            ledger = Ledger.open(Path(settings.output.workspace))
            try:
                ctx = RunContext(
                    journal=journal,
                    ledger=ledger,
                    client=clients[0],
                    settings=settings,
                    options=options,
                    org_id=info.meta.org_id or settings.credentials.org_id or "",
                    regulations=regulations,
                )
                org_contexts = [
                    ctx.for_org(o.name, client=c, settings=settings.for_org(o), org_id=o.org_id)
                    for o, c in zip(orgs, clients[: len(orgs)], strict=True)
                ]

                def checkpoint(extra: Mapping[str, Any]) -> None:
                    nonlocal last_extra
                    last_extra = dict(extra)
                    publish(journal, run_dir, options=options, extra=last_extra)

                reporter = ProgressReporter(
                    force_plain=options.plain_progress,
                    every_s=options.progress_every_s,
                    clock=options.clock.monotonic,
                    sleep=options.clock.sleep,
                )
                with reporter:
                    return await drive(
                        ctx, run_dir, checkpoint=checkpoint, reporter=reporter, orgs=org_contexts
                    )
            finally:
                ledger.close()

    _drive_allocator()
    try:
        asyncio.run(main())
    except BaseException:
        publish(journal, run_dir, options=options, extra=last_extra)  # what is known
        raise
    finally:  # after the journal's commits, never before them (pipeline.journal.registry)
        sync_registry(Path(settings.output.workspace), run_dir, secret_of(settings, options.env))
    outcome = _outcome(journal, run_dir)
    # [[orgs]]: each org waiting for its next day, with its resume time, as the journal says
    paused = org_pauses(journal.run_info(), journal.states_by_org()) if settings.multi_org else {}
    if paused and outcome.exit_code == 4:
        note = f"{pause_message(paused)}: run `dsar resume {run_dir}` then"
        outcome = dataclasses.replace(outcome, note=note)
    return outcome


def _drive_allocator() -> None:
    """While a run is driven, Arrow allocates through the system allocator (unless
    ARROW_DEFAULT_MEMORY_POOL chooses): each checkpoint's report pass then hands its pages
    back, where mimalloc kept them and stacked the passes' peaks (478 MB for 100,000
    subjects). Planning keeps mimalloc, which holds very wide inputs in far less memory."""
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.default_memory_pool().release_unused()  # what planning's allocator still keeps
        pa.set_memory_pool(pa.system_memory_pool())


def _nothing_to_retry(journal: Journal, run_dir: Path) -> RunOutcome:
    """``dsar retry`` when no job awaits a new attempt: no credentials, no API call."""
    outcome = _outcome(journal, run_dir)
    if outcome.state == RunState.FINISHED:
        note = "nothing to retry: no job of the run ended in error"
        return dataclasses.replace(outcome, exit_code=0, note=note)
    note = f"nothing to retry (no job in error); work is pending: run `dsar resume {run_dir}`"
    return dataclasses.replace(outcome, note=note)


def _batch_regulations(journal: Journal) -> set[str]:
    return {w.regulation for w in journal.open_windows()}


def _outcome(journal: Journal, run_dir: Path) -> RunOutcome:
    info = journal.run_info()
    counts = journal.counts()
    jobs = counts.jobs
    skipped = journal.skipped_count()
    if info.state == RunState.FINISHED:
        bad = jobs["error"] + jobs["failed"] + jobs["cancelled"] + info.rejects_count
        bad += journal.results_unavailable()  # an access answer that never reached disk
        code = 0 if bad == 0 else 1
        if not sum(jobs.values()) and info.rejects_count and not skipped:
            code = InputError.exit_code  # no valid row (DESIGN.md: exit 3)
    else:
        code = 4
    note = held_note(journal, run_dir) if info.pause_reason == "canary" else None
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
        note=note,
        skipped=skipped,
    )


# Async twins for a running event loop (Airflow, notebooks): the same calls, in a worker
# thread that owns the run's loop and installs no signal handler (see pipeline.run.aio).
start_run_async = in_worker(start_run)
resume_run_async = in_worker(resume_run)
resume_all_async = in_worker(resume_all)
