"""Bench section ``multiorg``: a many-org input planned into a run journal.

The figure is what ``dsar run --dry-run`` spends before its prompt on a 2,000,000-subject input
whose ``org`` column spreads the subjects over 10 ``[[orgs]]`` (:func:`.synth.subjects`):
read, validate, merge (no earlier jobs to dedupe against), batch per org and regulation, and
write the plan into a new journal in its one transaction, from columnar batches. Its baseline
is the ``input`` section's validate-only figure (validate + batch into columnar requests, no
journal), measured on the same file in the same run, and their ratio says what the journal
costs. Each measurement runs in a fresh child process (:func:`.children.spawn`) whose peak RSS
is its own; the rows/s are timed inside the child, from opening the input to the commit.
Targets: 300,000 rows/s and 600 MB. ``--quick`` plans 50,000 subjects.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ..settings import Settings, load_settings
from . import Figure
from .children import check, reap, spawn
from .files import write_subjects
from .input import MIN_ROWS_PER_S, peak_rss
from .synth import org_names

SECTION = "multiorg"
ORGS = 10
NOW = datetime(2026, 12, 1, tzinfo=UTC)  # the plan's creation time (the clock is not timed)
FULL_SUBJECTS = 2_000_000
QUICK_SUBJECTS = 50_000


def _measure(mode: str, path: Path, workdir: Path) -> dict[str, float]:
    """One measurement (``validate`` or ``journal``) of ``path`` in a child process: its own
    figures (the last line it prints) and its peak RSS."""
    log = workdir / f"{mode}.log"
    started = time.monotonic()
    proc = spawn(["-m", "pipeline.bench.multiorg", mode, str(path), str(workdir)], {}, log)
    result = check(reap(proc, started, log), f"bench multiorg {mode}", ok=(0,))
    figures: dict[str, float] = orjson.loads(result.stderr_tail.strip().splitlines()[-1])
    return {**figures, "peak_rss_mb": result.peak_rss_mb}


def _rate(result: dict[str, float]) -> float:
    return result["rows"] / result["wall_s"] if result["wall_s"] else 0.0


def run(quick: bool, workdir: Path) -> list[Figure]:
    """Write the many-org file, plan it with and without the journal, return the figures."""
    n = QUICK_SUBJECTS if quick else FULL_SUBJECTS
    path = write_subjects(workdir / f"multiorg-{n}.csv", n, orgs=ORGS)
    base = _measure("validate", path, workdir)
    plan = _measure("journal", path, workdir)
    path.unlink()
    rate, base_rate = _rate(plan), _rate(base)
    counts = f"{int(plan['users']):,} users, {int(plan['jobs']):,} jobs"
    return [
        Figure(
            section=SECTION,
            name=f"csv {n:,} rows, {ORGS} orgs: planned into the journal ({counts})",
            value=rate,
            unit="rows/s",
            baseline=base_rate,
            baseline_name="validate+batch only, as section input",
            target=f">= {MIN_ROWS_PER_S:,} rows/s",
            ok=rate >= MIN_ROWS_PER_S if not quick else None,
        ),
        Figure(
            section=SECTION,
            name="planned into the journal / validate+batch only",
            value=rate / base_rate if base_rate else 0.0,
            unit="x",
            baseline=1.0,
            baseline_name="validate+batch only",
        ),
        peak_rss(
            SECTION,
            f"csv {n:,} rows, {ORGS} orgs: peak RSS planning into the journal",
            plan,
            base,
            "validate+batch only",
            capped=not quick,
        ),
    ]


def settings() -> Settings:
    """The config of the many-org file: one ``[[orgs]]`` table per org name in its column
    (empty cells go to the first), and its CRM column mapped as a custom identity."""
    tables = [
        {
            "name": name,
            "org_id": f"{name.upper()}@AdobeOrg",
            "client_id_env": f"DSAR_BENCH_{name.upper()}_ID",
            "client_secret_env": f"DSAR_BENCH_{name.upper()}_SECRET",
        }
        for name in org_names(ORGS)
    ]
    overrides: dict[str, Any] = {
        "input": {"columns": {"crm_id": {"namespace": "crmId", "type": "custom"}}},
        "job": {"org": org_names(ORGS)[0]},
        "orgs": tables,
    }
    return load_settings(None, env={}, overrides=overrides)


def _child(mode: str, path: Path, workdir: Path) -> dict[str, float]:
    # imported here so that the parent's import cost is not in the child's figures
    from ..input.planning import plan_input
    from ..journal.models import RunIntent, RunMeta
    from ..journal.store import Journal

    config = settings()
    run_dir = workdir / f"run-{mode}"
    started = time.perf_counter()
    with plan_input(
        path, config, run_id="bench", rejects_path=run_dir / "rejects.parquet", env={}
    ) as plan:
        if mode == "validate":  # the input section's figure: columnar requests, no journal
            jobs = sum(frame.job_count for frame in plan.frames())
        else:  # as `dsar run` plans: frames as deferred records, into a new journal
            meta = RunMeta(
                run_id="bench", created_at=NOW, input_path=str(path),
                input_sha256="", input_rows=plan.summary.rows, config_digest=config.digest(),
                tool_version="bench", settings={}, org_id=None,
            )  # fmt: skip
            with Journal.open(run_dir) as journal:
                frames = plan.frames(allow_empty=True)
                jobs = journal.write_plan(
                    meta, frames, rejects_count=0, intent=RunIntent.PREVIEW, skipped=plan.skipped
                )
        summary = plan.summary
    return {
        "rows": summary.rows,
        "users": summary.users,
        "jobs": jobs,
        "requests": summary.requests,
        "wall_s": time.perf_counter() - started,
    }


if __name__ == "__main__":
    result = _child(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
    print(orjson.dumps(result).decode())
