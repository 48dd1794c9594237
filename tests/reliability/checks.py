"""What every reliability test asserts about a run: each input row once, no user key twice."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.journal.registry import Registry, journal_jobs
from pipeline.keys import key_secret
from tests.helpers.run import assert_every_row_once

# Outcomes without product errors: a run that loses nothing must then end with exit 0.
NO_PRODUCT_ERRORS = {"product_error_rate": 0.0}


def summary(run_dir: Path) -> dict[str, Any]:
    """summary.json of a run."""
    data: dict[str, Any] = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    return data


def statuses(run_dir: Path) -> list[str]:
    """The status column of status.parquet."""
    column = pq.read_table(run_dir / "status.parquet", columns=["status"]).column(0)
    return [str(s) for s in column.to_pylist()]


def assert_run_lost_nothing(run_dir: Path, n_rows: int, stats: dict[str, Any]) -> None:
    """Every input row in exactly one subject of status.parquet or in rejects.parquet, and the
    emulator created no job twice for a (user key, action)."""
    assert_every_row_once(run_dir, n_rows)
    assert stats["duplicate_user_keys"] == [], "a user key was submitted twice"


def persisted_duplicates(db_path: Path) -> tuple[int, int]:
    """(jobs, (user key, action) pairs with more than one job) in an emulator's SQLite file."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        jobs = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        dups = db.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM jobs GROUP BY user_key, action "
            "HAVING COUNT(*) > 1)"
        ).fetchone()[0]
    return int(jobs), int(dups)


def non_202_posts(run_dir: Path) -> int:
    """POST /jobs calls that did not answer 202, from summary.json."""
    posts = summary(run_dir)["api_calls"].get("POST jobs", {})
    return sum(v for k, v in posts.items() if k != "202")


def registry_disagreement(workspace: Path, *, catch_up: bool = False) -> tuple[int, int]:
    """(jobs the registry holds that no run journal of ``workspace`` recorded, jobs the
    journals recorded that the registry lacks); with ``catch_up``, after the registry's
    catch-up (what the next run or resume does first). No dsar process may be running."""
    journals = set().union(*(journal_jobs(p.parent) for p in workspace.glob("*/journal.sqlite")))
    with Registry.open(workspace) as registry:
        if catch_up:
            registry.catch_up(key_secret({}))
        registered = registry.jobs()
    return len(registered - journals), len(journals - registered)
