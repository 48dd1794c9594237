"""``dsar submit``: the explicit act that submits a preview.

A dry run (``dsar run --dry-run``) leaves its plan as a *preview* that nothing else submits:
not ``resume``, not ``resume --all``, not ``retry``. :func:`submit_run` asks the same
confirmation as ``dsar run`` (none with ``--yes``, without a terminal, or on the embedded
emulator), turns the preview live, and drives it to the end like ``dsar run``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from ..errors import ConfigError, JournalError, RunPaused
from ..journal.models import JobState, RunIntent
from ..journal.schema import JOURNAL_FILE
from ..journal.store import Journal
from .aio import in_worker, refuse_running_loop
from .context import RunOptions
from .lifecycle import run_label, warn_shared_org
from .lock import hold_lock
from .runner import RunOutcome, drive_target, settings_from_snapshot
from .target import Target, api_target


def submit_run(
    run_dir: Path,
    *,
    env: Mapping[str, str],
    options: RunOptions | None = None,
    confirm: Callable[[Target, int], bool] | None = None,
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
        if info.intent != RunIntent.PREVIEW:
            raise ConfigError(
                f"{run_dir} is not a preview ({info.intent.value}): `dsar submit` only submits "
                "the plan of a dry run"
            )
        settings = settings_from_snapshot(info.meta.settings, env)
        workspace = Path(settings.output.workspace)
        with api_target(settings, workspace=workspace, env=env) as target:
            org = target.settings.credentials.org_id
            if info.meta.org_id and org != info.meta.org_id:
                raise ConfigError("the credentials belong to another org than this run's")
            warn_shared_org(workspace, {org or ""})
            jobs = journal.counts().jobs[JobState.PENDING]
            if confirm is not None and not target.embedded and not confirm(target, jobs):
                raise RunPaused(f"not confirmed; {run_dir} stays a preview, nothing was sent")
            journal.go_live(options.clock.utc_now(), org_id=org)
            return drive_target(journal, run_dir, target, options)


submit_run_async = in_worker(submit_run)  # for a running event loop; see pipeline.run.aio
