"""Bench section ``recurring``: planning against a workspace registry of earlier submissions.

The figure is the planning time (load the blocklist from ``registry.sqlite``, validate, merge,
dedupe, batch, and collect the skipped jobs: what ``dsar run`` does before it writes its
journal) of a 1,000,000-subject input against a registry that holds the jobs of an earlier run
of the same subjects (every job blocks: the nightly cumulative export, the worst case),
beside planning the same file against an empty registry, measured in the same run, alternated,
best of three each. Target: at most 1.5 times. Each measurement runs in a fresh child process
(``python -m pipeline.bench.recurring``); ``--quick`` uses 50,000 subjects.
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
from .children import child_json
from .files import write_subjects

SECTION = "recurring"
MAX_RATIO = 1.5
REPEATS = 3
FULL_SUBJECTS = 1_000_000
QUICK_SUBJECTS = 50_000
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _measure(mode: str, path: Path, workspace: Path) -> dict[str, float]:
    return child_json("pipeline.bench.recurring", [mode, str(path), str(workspace)])


def run(quick: bool, workdir: Path) -> list[Figure]:
    """Seed a registry with an earlier run of the input, then time planning against it and
    against an empty registry."""
    n = QUICK_SUBJECTS if quick else FULL_SUBJECTS
    path = write_subjects(workdir / f"recurring-{n}.csv", n, dirty=0.0)
    empty, full = workdir / "ws-empty", workdir / "ws-registry"
    seeded = _measure("seed", path, full)
    bases, plans = [], []
    for _ in range(REPEATS):  # alternated, best of each: a busy machine slows both alike
        bases.append(_measure("plan", path, empty))
        plans.append(_measure("plan", path, full))
    base = min(bases, key=lambda r: r["wall_s"])
    plan = min(plans, key=lambda r: r["wall_s"])
    path.unlink()
    ratio = plan["wall_s"] / base["wall_s"] if base["wall_s"] else 0.0
    return [
        Figure(
            section=SECTION,
            name=(
                f"{n:,} subjects vs a registry of {int(seeded['registered']):,} earlier jobs:"
                f" planning ({int(plan['skipped']):,} skipped)"
            ),
            value=plan["wall_s"],
            unit="s",
            baseline=base["wall_s"],
            baseline_name="empty registry",
        ),
        Figure(
            section=SECTION,
            name="planning with the registry / with an empty registry",
            value=ratio,
            unit="x",
            baseline=1.0,
            baseline_name="empty registry",
            target=f"<= {MAX_RATIO}x",
            ok=ratio <= MAX_RATIO if not quick else None,
        ),
        Figure(
            section=SECTION,
            name="of which waiting for the blocklist (it loads while pass 1 reads the file)",
            value=plan["wait_s"],
            unit="s",
            baseline=plan["wall_s"],
            baseline_name="planning with the registry",
        ),
    ]


def _settings(workspace: Path) -> Settings:
    crm = {"namespace": "crmId", "type": "custom"}
    overrides: dict[str, dict[str, Any]] = {
        "input": {"columns": {"crm_id": crm}},
        "output": {"workspace": str(workspace)},
    }
    return load_settings(None, env={}, overrides=overrides)


def _seed(path: Path, workspace: Path) -> dict[str, float]:
    """Register every job of a plan of ``path`` as a complete job of an earlier run."""
    import sqlite3
    import tempfile

    from ..input.planning import plan_input
    from ..input.rules import CANONICAL_ACTIONS
    from ..journal.models import to_us
    from ..journal.registry import Registry
    from ..keys import fingerprints, key_secret

    settings = _settings(workspace)
    rows: list[tuple[object, ...]] = []
    at = to_us(NOW)
    with tempfile.TemporaryDirectory(prefix="dsar-bench-seed-") as tmp:
        rejects = Path(tmp) / "rejects.parquet"
        with plan_input(path, settings, run_id="earlier", rejects_path=rejects, env={}) as plan:
            for frame in plan.frames():
                users = frame.users
                fps = fingerprints(users.column("subject_key").combine_chunks(), key_secret({}))
                actions = users.column("action").to_numpy()
                regulation = frame.options.regulation
                keys = users.column("user_key").to_pylist()
                for fp, code, key in zip(fps.tolist(), actions.tolist(), keys, strict=True):
                    for action in CANONICAL_ACTIONS[code].split("+"):
                        job = f"job-{key}-{action}"
                        rows.append(
                            ("earlier", job, fp, action, regulation, "", at, at, "complete")
                        )
    with Registry.open(workspace):
        pass  # creates the file at its schema version
    conn = sqlite3.connect(workspace / "registry.sqlite")
    with conn:
        conn.executemany("INSERT INTO submission VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("UPDATE generation SET n = n + 1")
    conn.close()
    with Registry.open(workspace) as registry:
        registry.write_snapshot()  # as the earlier run's last registry sync does
    return {"registered": float(len(rows))}


def _plan(path: Path, workspace: Path) -> dict[str, float]:
    """Plan ``path`` as ``dsar run`` does: the blocklist loads while pass 1 reads the file."""
    import tempfile

    from ..input.dedupe import Blocklist
    from ..input.planning import plan_input
    from ..run.recurring import loading_blocklist

    settings = _settings(workspace)
    started = time.perf_counter()
    waited: list[float] = []
    loaded: list[Blocklist] = []
    users = 0
    with (
        loading_blocklist(settings, {}, org=None, now=NOW) as load,
        tempfile.TemporaryDirectory(prefix="dsar-bench-plan-") as tmp,
    ):

        def wait() -> Blocklist:
            at = time.perf_counter()
            loaded.append(load())
            waited.append(time.perf_counter() - at)
            return loaded[0]

        rejects = Path(tmp) / "rejects.parquet"
        with plan_input(
            path, settings, run_id="bench", rejects_path=rejects, env={}, blocklist=wait
        ) as plan:
            for frame in plan.frames(allow_empty=True):
                users += frame.users.num_rows
            skipped = plan.skipped().num_rows
    return {
        "wall_s": time.perf_counter() - started,
        "wait_s": waited[0],
        "users": users,
        "skipped": skipped,
        "blocking": len(loaded[0]),
    }


if __name__ == "__main__":
    mode, file, ws = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    print(orjson.dumps(_seed(file, ws) if mode == "seed" else _plan(file, ws)).decode())
