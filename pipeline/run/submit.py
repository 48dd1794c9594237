"""``dsar submit``: the explicit act that submits a preview.

A dry run (``dsar run --dry-run``) leaves its plan as a *preview* that nothing else submits:
not ``resume``, not ``resume --all``, not ``retry``. :func:`submit_run` asks the same
confirmation as ``dsar run`` (none with ``--yes``, without a terminal, or on the embedded
emulator), turns the preview live, and drives it to the end like ``dsar run``.

It is also the one act that releases a run held by its canary (failed or timed out, see
:mod:`pipeline.run.canary`): after the same confirmation, the canary's verdict is journalled
as released and the rest of the run is submitted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError, JournalError, RunPaused
from ..journal.models import JobState, RunIntent
from ..journal.schema import JOURNAL_FILE
from ..journal.store import Journal
from .aio import in_worker, refuse_running_loop
from .canary import check_max_jobs, max_jobs
from .context import RunOptions
from .lifecycle import run_label, warn_shared_org
from .lock import hold_lock
from .runner import Confirm, RunOutcome, drive_target, settings_from_snapshot
from .target import api_target


def submit_run(
    run_dir: Path,
    *,
    env: Mapping[str, str],
    options: RunOptions | None = None,
    confirm: Confirm | None = None,
) -> RunOutcome:
    """``dsar submit``: the explicit act that turns a preview (a dry run) live, after the same
    confirmation as ``dsar run``, then drives it like ``dsar run``. A declined confirmation
    leaves the preview as it was."""
    refuse_running_loop("submit_run")
    if not (run_dir / JOURNAL_FILE).exists():
        raise ConfigError(f"{run_dir} holds no run journal")
    options = options or RunOptions(env=env)
    with hold_lock(run_dir, run_label(run_dir)), Journal.open(run_dir) as journal:
        if not journal.has_plan:
            raise JournalError(f"{run_dir}: the run was killed while planning; start it again")
        info = journal.run_info()
        canary = journal.canary()
        held = info.intent == RunIntent.LIVE and canary is not None and canary.held
        if info.intent != RunIntent.PREVIEW and not held:
            raise ConfigError(
                f"{run_dir} is not a preview ({info.intent.value}): `dsar submit` only submits "
                "the plan of a dry run, or the rest of a run held by its canary"
            )
        settings = settings_from_snapshot(info.meta.settings, env)
        jobs = journal.counts().jobs[JobState.PENDING]
        check_max_jobs(jobs, max_jobs(settings, options.max_jobs), what=f"submitting {run_dir}")
        workspace = Path(settings.output.workspace)
        with api_target(settings, workspace=workspace, env=env) as target:
            org = target.settings.credentials.org_id
            if info.meta.org_id and org != info.meta.org_id:
                raise ConfigError("the credentials belong to another org than this run's")
            warn_shared_org(workspace, {org or ""})
            sha256 = info.meta.input_sha256
            if held:  # the canary is behind us: the prompt asks about the rest alone
                job = dataclasses.replace(target.settings.job, canary_users=0)
                asked = dataclasses.replace(target.settings, job=job)
                target = dataclasses.replace(target, settings=asked)
            if confirm is not None and not target.embedded and not confirm(target, jobs, sha256):
                if held:
                    raise RunPaused(f"not confirmed; {run_dir} stays held by its canary")
                raise RunPaused(f"not confirmed; {run_dir} stays a preview, nothing was sent")
            if held:
                journal.release_canary(options.clock.utc_now())
            else:
                journal.go_live(options.clock.utc_now(), org_id=org)
            return drive_target(journal, run_dir, target, options)


submit_run_async = in_worker(submit_run)  # for a running event loop; see pipeline.run.aio
