"""Recurring runs into one workspace: the registry's catch-up and dedupe, and the dataset.

* :func:`catch_up` brings ``WORKSPACE/registry.sqlite`` level with every run journal of the
  workspace (and every run directory elsewhere that it has seen); the runner calls it at the
  start of every run and resume, before dedupe, and :func:`sync_registry` after a drive.
* :func:`blocklist` is what planning leaves out: see :mod:`pipeline.journal.registry`.
* :func:`publish_dataset` copies a run's ``status.parquet`` and ``products.parquet`` to
  ``WORKSPACE/dataset/{status,products}/run_id=RUN_ID/part-0.parquet`` (atomic replace), so
  that pandas, ``pyarrow.dataset(partitioning="hive")`` and DuckDB read every run of the
  workspace as one table whose ``run_id`` column comes from the directory name (the files
  have no ``run_id`` column).
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from ..errors import DamagedJournal, JournalError
from ..files import publish, temp_path
from ..input.dedupe import Blocklist
from ..input.planning import PlanSummary, validate_file
from ..journal.registry import REGISTRY_FILE, Registry
from ..journal.schema import make_private_dir
from ..keys import key_secret
from ..reports.writers import PRODUCTS_FILE, STATUS_FILE
from ..settings import Settings

log = logging.getLogger("dsar.run")

DATASET_DIR = "dataset"
DATASET_TABLES = {"status": STATUS_FILE, "products": PRODUCTS_FILE}


@contextmanager
def _registry(workspace: Path) -> Iterator[Registry]:
    """The workspace registry; an SQLite failure in it (a damaged or foreign file) is one
    :class:`DamagedJournal` line naming it and the remedy (exit 6), never a traceback."""
    try:
        with Registry.open(workspace) as registry:
            yield registry
    except sqlite3.Error as exc:
        raise DamagedJournal(str(workspace / REGISTRY_FILE), str(exc)) from None


def secret_of(settings: Settings, env: Mapping[str, str]) -> bytes:
    """The fingerprints' secret: the variable named by ``input.key_secret_env``."""
    return key_secret(env, settings.input.key_secret_env)


def catch_up(workspace: Path, secret: bytes, *, run_dir: Path | None = None) -> None:
    """Sync the registry with every run journal of ``workspace`` (and ``run_dir``'s, which
    may live elsewhere: registering it makes later catch-ups find it)."""
    with _registry(workspace) as registry:
        changed = registry.catch_up(secret)
        if run_dir is not None and run_dir.resolve().parent != workspace.resolve():
            changed += registry.sync_run(run_dir, secret)
    if changed:
        log.info("registry: %d submitted jobs recorded or updated from the run journals", changed)


def sync_registry(workspace: Path, run_dir: Path, secret: bytes) -> None:
    """Record in the registry what ``run_dir``'s journal has committed. A failure is only
    logged: the registry is derived, and the next run's catch-up (which does fail loudly)
    records what this one could not."""
    try:
        with _registry(workspace) as registry:
            registry.sync_run(run_dir, secret)
    except (JournalError, sqlite3.Error, OSError) as exc:
        log.warning("registry: not updated now (%s); the next run or resume catches up", exc)


def blocklist(
    settings: Settings, env: Mapping[str, str], *, org: str | None, now: datetime
) -> Blocklist:
    """The earlier jobs of the workspace that block a new submission (see the registry):
    each blocks only the subjects planned for its own org. With ``[[orgs]]`` the org ids come
    from the tables (dedupe is per org even without credentials); else ``org`` or the
    credentials' org (neither: any org, a dry run without credentials)."""
    workspace = Path(settings.output.workspace)
    if settings.multi_org:
        plan_orgs: tuple[str | None, ...] = tuple(o.org_id for o in settings.org_list())
    else:
        plan_orgs = (org or settings.credentials.org_id,)
    with _registry(workspace) as registry:
        return registry.blocklist(
            plan_orgs=plan_orgs,
            now=now,
            cooldown_days=settings.job.cooldown_days,
            secret=secret_of(settings, env),
        )


@contextmanager
def loading_blocklist(
    settings: Settings, env: Mapping[str, str], *, org: str | None, now: datetime
) -> Iterator[Callable[[], Blocklist]]:
    """Start loading :func:`blocklist` in a thread; yields the call that waits for it, which
    planning makes when its pass 2 starts (the load overlaps pass 1's read of the input)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsar-blocklist") as pool:
        future = pool.submit(blocklist, settings, env, org=org, now=now)
        try:
            yield future.result
        finally:
            future.cancel()


def publish_dataset(run_dir: Path, workspace: Path, run_id: str) -> None:
    """Copy the run's status and products tables into the workspace dataset, atomically."""
    for table, name in DATASET_TABLES.items():
        source = run_dir / name
        if not source.exists():
            continue
        folder = workspace / DATASET_DIR / table / f"run_id={run_id}"
        make_private_dir(folder)
        dest = folder / "part-0.parquet"
        tmp = temp_path(dest)
        shutil.copyfile(source, tmp)
        publish(tmp, dest)


def validate_in_workspace(
    path: Path,
    settings: Settings,
    *,
    out_dir: Path,
    env: Mapping[str, str],
    now: datetime,
    dedupe: bool = True,
) -> PlanSummary:
    """``dsar validate``: plan ``path`` without any API call, counting the jobs dedupe would
    skip against the workspace's registry (caught up first). A workspace that does not exist
    yet is not created: nothing was submitted from it."""
    workspace = Path(settings.output.workspace)
    blocked = None
    if dedupe and workspace.is_dir():
        catch_up(workspace, secret_of(settings, env))
        blocked = blocklist(settings, env, org=None, now=now)
    return validate_file(path, settings, out_dir=out_dir, env=env, blocklist=blocked)
