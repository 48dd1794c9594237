"""A synthetic run directory with the report files of DESIGN.md section 6, for hand-off tests.

The runner is not needed: status.parquet, products.parquet, rejects.parquet, summary.json and
results/*.zip are written directly with pyarrow, with a seeded mix of statuses, regulations,
products and outcomes. Identity values (emails, phones) exist only where a real run keeps
them (the result ZIPs and the journal-like ``input.csv``), so a privacy scan of the hand-off
files has something to find if they leak.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.reports.sla import TIMESTAMP, sla_columns
from pipeline.reports.writers import STATUS_SCHEMA

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
STATUSES = np.array(["rejected", "pending", "submitted", "processing", "complete", "error"])
STATUS_WEIGHTS = [0.03, 0.10, 0.05, 0.07, 0.70, 0.05]
REGULATIONS = np.array(["gdpr", "ccpa", "lgpd_bra", "cpra_ca_usa"])
PRODUCTS = ("aepDataLake", "profileService", "analytics")
OUTCOMES = np.array(["success", "ids_not_found", "partial", "not_provisioned", "error"])
OUTCOME_CODES = {
    "success": "PRVCY-6000-200", "ids_not_found": "PRVCY-6052-200", "partial": "PRVCY-6054-200",
    "not_provisioned": "PRVCY-6051-200", "error": "PRVCY-1022-400",
}  # fmt: skip
# keys that must be escaped in HTML and defused in CSV
HOSTILE_KEYS = ("<script>alert(1)</script>", '=HYPERLINK("http://x")', "+1+1", "@SUM(A1)")


@dataclass(frozen=True)
class SyntheticRun:
    """What the fixture wrote: the directory, its summary and the planted identity values."""

    run_dir: Path
    summary: dict[str, Any]
    identities: tuple[str, ...]
    subjects: int


def _us(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def build_run_dir(
    run_dir: Path, *, subjects: int = 200, seed: int = 7, zips: int = 3
) -> SyntheticRun:
    """Write a run directory of ``subjects`` subjects (about 1.5 status rows each)."""
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    keys = np.array([f"cust-{i:07d}" for i in range(subjects)], dtype=object)
    keys[: min(len(HOSTILE_KEYS), subjects)] = HOSTILE_KEYS[: min(len(HOSTILE_KEYS), subjects)]
    both = rng.random(subjects) < 0.5  # access + delete, else access only
    subject_idx = np.concatenate([np.arange(subjects), np.flatnonzero(both)])
    action = np.where(np.arange(len(subject_idx)) < subjects, "access", "delete")
    n = len(subject_idx)
    status = rng.choice(STATUSES, size=n, p=STATUS_WEIGHTS)
    status[: min(len(HOSTILE_KEYS), n)] = "error"  # hostile keys reach the error table
    regulation = REGULATIONS[subject_idx % len(REGULATIONS)]
    received = _us(NOW) - rng.integers(0, 40 * 86_400, size=n) * 1_000_000
    span_s = max(3, n // 15_000) * 86_400  # about 15,000 jobs a day: under the daily cap
    submitted = _us(NOW) - span_s * 1_000_000 + rng.integers(0, span_s, size=n) * 1_000_000
    has_job = np.isin(status, ["submitted", "processing", "complete", "error"])
    finished = np.isin(status, ["complete", "error"])
    completed = submitted + rng.integers(600, 86_400, size=n) * 1_000_000
    job_ids = np.array([f"job-{i:08x}" for i in range(n)], dtype=object)
    error_code = np.where(status == "error", "PRVCY-1024-400", None)
    error_msg = np.where(status == "error", "Invalid namespace in request <b>", None)

    def ts(values: np.ndarray, mask: np.ndarray) -> pa.Array:
        return pa.array(values, pa.int64(), mask=~mask).cast(TIMESTAMP)

    regs = pa.array(regulation, pa.string())
    received_arr = ts(received, np.ones(n, bool))
    completed_arr = ts(completed, finished)
    statuses = pa.array(status, pa.string())
    sla = sla_columns(regs, received_arr, now=NOW, completed_at=completed_arr, status=statuses)
    zip_rows = np.flatnonzero((status == "complete") & (action == "access"))[:zips]
    identities, result_path, result_sha = _write_zips(run_dir, job_ids, zip_rows, n)
    status_table = pa.table(
        {
            "subject_key": pa.array(keys[subject_idx], pa.string()),
            "user_key": pa.array([f"u{i:09d}" for i in range(n)], pa.string()),
            "action": pa.array(action, pa.string()),
            "regulation": regs,
            "request_id": pa.array(np.where(has_job, "req-1", None), pa.string()),
            "job_id": pa.array(np.where(has_job, job_ids, None), pa.string()),
            "status": statuses,
            "submitted_at": ts(submitted, has_job),
            "updated_at": ts(completed, has_job),
            "completed_at": completed_arr,
            "products_total": pa.array(np.where(has_job, len(PRODUCTS), 0), pa.int32()),
            "products_complete": pa.array(np.where(finished, len(PRODUCTS), 0), pa.int32()),
            "products_error": pa.array(np.zeros(n, np.int32)),
            "result_path": pa.array(result_path, pa.string()),
            "result_sha256": pa.array(result_sha, pa.string()),
            "error_code": pa.array(error_code, pa.string()),
            "error_message": pa.array(error_msg, pa.string()),
            "input_rows": pa.array([[int(i)] for i in subject_idx], pa.list_(pa.int64())),
            "part": pa.array(np.zeros(n, np.int32)),
            "attempt": pa.array(np.zeros(n, np.int32)),
            "received_at": received_arr,
            "due_at": sla.due_at,
            "days_left": sla.days_left,
            "overdue": sla.overdue,
            "result_purged_at": pa.nulls(n, pa.timestamp("us", tz="UTC")),
            "result_plain_sha256": pa.nulls(n, pa.string()),
            "reason_code": pa.nulls(n, pa.string()),
            "previous_run_id": pa.nulls(n, pa.string()),
            "previous_job_id": pa.nulls(n, pa.string()),
            "org": pa.array(["default"] * n, pa.string()),
        }
    )
    assert status_table.schema.names[: len(STATUS_SCHEMA)] == STATUS_SCHEMA.names
    pq.write_table(status_table, run_dir / "status.parquet")
    _write_products(run_dir, rng, job_ids, keys[subject_idx], action, finished)
    _write_rejects(run_dir, keys[subject_idx], status)
    counts = {str(s): int((status == s).sum()) for s in STATUSES}
    counts["accepted"] = 0  # no opt-out went through POST /consent in this synthetic run
    counts["cancelled"] = 0  # and no run was cancelled
    counts["skipped"] = 0  # nor any job skipped as a duplicate of an earlier run
    summary = _summary(counts, subjects)
    (run_dir / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    # a journal-like file beside the reports that does hold identities, as a real run does
    (run_dir / "input.csv").write_text("email\n" + "\n".join(identities) + "\n")
    return SyntheticRun(run_dir, summary, tuple(identities), subjects)


def _write_zips(
    run_dir: Path, job_ids: np.ndarray, rows: np.ndarray, n: int
) -> tuple[list[str], list[str | None], list[str | None]]:
    import hashlib

    results = run_dir / "results"
    results.mkdir(exist_ok=True)
    identities: list[str] = []
    paths: list[str | None] = [None] * n
    shas: list[str | None] = [None] * n
    for i in rows:
        email = f"person{i}@example.org"
        identities += [email, f"+1555{int(i):07d}"]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("aepDataLake/data.json", orjson.dumps({"email": email}))
        name = f"results/{job_ids[i]}.zip"
        (run_dir / name).write_bytes(buf.getvalue())
        paths[i], shas[i] = name, hashlib.sha256(buf.getvalue()).hexdigest()
    return identities, paths, shas


def _write_products(
    run_dir: Path,
    rng: np.random.Generator,
    job_ids: np.ndarray,
    keys: np.ndarray,
    action: np.ndarray,
    finished: np.ndarray,
) -> None:
    rows = np.repeat(np.flatnonzero(finished), len(PRODUCTS))
    product = np.tile(np.array(PRODUCTS), int(finished.sum()))
    outcome = rng.choice(OUTCOMES, size=len(rows), p=[0.6, 0.25, 0.05, 0.07, 0.03])
    codes = np.vectorize(OUTCOME_CODES.__getitem__, otypes=[object])(outcome)
    message = np.where(outcome == "error", "Product failed to process the identities", "")
    table = pa.table(
        {
            "job_id": pa.array(job_ids[rows], pa.string()),
            "subject_key": pa.array(keys[rows], pa.string()),
            "action": pa.array(action[rows], pa.string()),
            "product": pa.array(product, pa.string()),
            "status": pa.array(np.where(outcome == "error", "error", "complete"), pa.string()),
            "response_code": pa.array(codes, pa.string()),
            "outcome": pa.array(outcome, pa.string()),
            "message": pa.array(message, pa.string()),
            "processed_date": pa.array(np.full(len(rows), _us(NOW)), pa.int64()).cast(TIMESTAMP),
            "retry_count": pa.array(np.zeros(len(rows), np.int32)),
        }
    )
    pq.write_table(table, run_dir / "products.parquet")


def _write_rejects(run_dir: Path, keys: np.ndarray, status: np.ndarray) -> None:
    rows = np.flatnonzero(status == "rejected")
    reasons = np.where(rows % 3 == 0, "INVALID_EMAIL", "NO_IDENTITY")
    messages = np.where(rows % 3 == 0, "email fails the syntax check", "no identity in the row")
    table = pa.table(
        {
            "input_row": pa.array(rows, pa.int64()),
            "subject_key": pa.array(keys[rows], pa.string()),
            "reason_code": pa.array(reasons, pa.string()),
            "message": pa.array(messages, pa.string()),
        }
    )
    pq.write_table(table, run_dir / "rejects.parquet")


def _summary(counts: dict[str, int], subjects: int) -> dict[str, Any]:
    """The shape pipeline.reports.writers.build_summary writes."""
    return {
        "run_id": "run-20260307-synthetic",
        "tool_version": "0.1.0",
        "created_at": (NOW - timedelta(days=3)).isoformat(),
        "config_digest": "sha256:" + "ab" * 32,
        "input": {"path": "subjects.csv", "sha256": "cd" * 32, "rows": subjects},
        "counts": {"status": counts, "total": sum(counts.values()), "users": subjects},
        "limits": {"daily_job_cap": None},
        "timings": {
            "created_at": (NOW - timedelta(days=3)).isoformat(),
            "first_intent_at": (NOW - timedelta(days=3)).isoformat(),
            "first_submitted_at": (NOW - timedelta(days=3)).isoformat(),
            "last_submitted_at": NOW.isoformat(),
            "last_completed_at": NOW.isoformat(),
        },
    }
