"""Reports: the contract's columns and types, the right rows, atomic, and free of identities."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import InputError
from pipeline.files import atomic_file
from pipeline.journal.models import JobObservation
from pipeline.journal.store import Journal
from pipeline.reports.writers import (
    PRODUCTS_SCHEMA,
    REJECT_SCHEMA,
    STATUS_SCHEMA,
    write_rejects,
    write_reports,
)
from tests.helpers.plans import T0, at, email, user

STATUS_CONTRACT = [
    "subject_key", "user_key", "action", "regulation", "request_id", "job_id", "status",
    "submitted_at", "updated_at", "completed_at", "products_total", "products_complete",
    "products_error", "result_path", "result_sha256", "error_code", "error_message", "input_rows",
]  # fmt: skip
PRODUCTS_CONTRACT = [
    "job_id", "subject_key", "action", "product", "status", "response_code", "outcome",
    "message", "processed_date", "retry_count", "org",
]  # fmt: skip
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def test_status_has_the_contract_columns_in_order_with_utc_times(
    run: tuple[Journal, Path],
) -> None:
    journal, run_dir = run
    write_reports(journal, run_dir, now=NOW)
    schema = pq.read_schema(run_dir / "status.parquet")
    assert schema.names[: len(STATUS_CONTRACT)] == STATUS_CONTRACT
    assert schema.equals(STATUS_SCHEMA)
    for name in ("submitted_at", "updated_at", "completed_at", "received_at"):
        assert schema.field(name).type == pa.timestamp("us", tz="UTC")
    assert pq.read_schema(run_dir / "products.parquet").names == PRODUCTS_CONTRACT
    assert pq.read_schema(run_dir / "products.parquet").equals(PRODUCTS_SCHEMA)
    assert pq.read_schema(run_dir / "rejects.parquet").equals(REJECT_SCHEMA)


def test_status_has_one_row_per_subject_and_action_with_its_outcome(
    run: tuple[Journal, Path],
) -> None:
    journal, run_dir = run
    write_reports(journal, run_dir, now=NOW)
    rows = {
        (r["subject_key"], r["action"]): r
        for r in pq.read_table(run_dir / "status.parquet").to_pylist()
    }
    assert len(rows) == 16
    done = rows[("subj-0000000", "access")]
    assert (done["status"], done["job_id"], done["request_id"]) == (
        "complete",
        "uk-0000000-access",
        "req-1",
    )
    assert (done["products_total"], done["products_complete"], done["products_error"]) == (2, 2, 0)
    assert done["result_path"] == "results/uk-0000000-access.zip"
    assert done["submitted_at"] == at(2)
    assert done["completed_at"] == at(50)
    assert done["input_rows"] == [0]
    failed = rows[("subj-0000001", "access")]
    assert (failed["status"], failed["error_code"]) == ("error", "PRVCY-1022-400")
    rejected = rows[("subj-0000005", "delete")]
    assert (rejected["status"], rejected["error_code"], rejected["job_id"]) == (
        "error", "PRVCY-1000-400", None,
    )  # fmt: skip
    assert rows[("subj-0000002", "access")]["status"] == "processing"
    assert rows[("subj-0000007", "delete")]["status"] == "pending"


def test_products_carry_outcomes_per_response_code(run: tuple[Journal, Path]) -> None:
    journal, run_dir = run
    write_reports(journal, run_dir, now=NOW)
    products = pq.read_table(run_dir / "products.parquet").to_pylist()
    got = {(p["job_id"], p["product"]): (p["outcome"], p["retry_count"]) for p in products}
    assert got == {
        ("uk-0000000-access", "AudienceManager"): ("ids_not_found", 0),
        ("uk-0000000-access", "Profile"): ("success", 0),
        ("uk-0000001-access", "Profile"): ("error", 3),
    }
    profile = next(p for p in products if p["product"] == "Profile" and p["outcome"] == "success")
    assert profile["processed_date"] == at(49)
    assert profile["subject_key"] == "subj-0000000"


def test_summary_counts_statuses_api_calls_and_names_the_input(run: tuple[Journal, Path]) -> None:
    journal, run_dir = run
    summary = write_reports(journal, run_dir, now=NOW)
    assert orjson.loads((run_dir / "summary.json").read_bytes()) == summary
    assert summary["counts"]["status"] == {
        "rejected": 0, "pending": 4, "submitted": 4, "processing": 1, "complete": 2, "error": 5,
        "accepted": 0, "cancelled": 0, "skipped": 0,
    }  # fmt: skip
    assert summary["api_calls"] == {"GET jobs": {"200": 3}, "POST jobs": {"200": 2, "400": 1}}
    assert summary["api_calls_total"] == 6
    assert summary["input"] == {"path": "subjects.csv", "sha256": "ab" * 32, "rows": 9}
    assert summary["config_digest"] == "cd" * 32
    assert summary["tool_version"] == "0.1.0"
    assert summary["state"] == "active"
    assert summary["created_at"] == "2026-03-01T12:00:00Z"
    assert summary["generated_at"] == "2026-03-02T00:00:00Z"
    assert summary["timings"]["elapsed_s"] == (NOW - T0).total_seconds()
    assert summary["timings"]["last_completed_at"] == "2026-03-01T12:00:52Z"


def test_rejects_keep_only_the_contract_columns(run: tuple[Journal, Path]) -> None:
    journal, run_dir = run
    source = run_dir.parent / "validate-rejects.parquet"
    pq.write_table(
        pa.table({
            "input_row": pa.array([3, 8], pa.int32()),
            "email": [email(90), email(91)],
            "subject_key": ["k3", None],
            "reason_code": ["INVALID_EMAIL", "NO_IDENTITY"],
        }),
        source,
    )  # fmt: skip
    summary = write_reports(journal, run_dir, now=NOW, rejects_source=source)
    table = pq.read_table(run_dir / "rejects.parquet")
    assert table.schema.equals(REJECT_SCHEMA)
    assert table.column("input_row").to_pylist() == [3, 8]
    assert table.column("message").null_count == 2
    assert summary["counts"]["status"]["rejected"] == 2


def test_a_rejects_file_already_in_shape_is_left_alone(tmp_path: Path) -> None:
    pq.write_table(REJECT_SCHEMA.empty_table(), tmp_path / "rejects.parquet")
    before = os.stat(tmp_path / "rejects.parquet").st_ino
    assert write_rejects(tmp_path) == 0
    assert os.stat(tmp_path / "rejects.parquet").st_ino == before


def test_a_rejects_file_without_reason_codes_is_refused(tmp_path: Path) -> None:
    pq.write_table(pa.table({"input_row": [1]}), tmp_path / "rejects.parquet")
    with pytest.raises(InputError, match="lacks reason_code"):
        write_rejects(tmp_path)


def test_no_identity_value_reaches_any_report(run: tuple[Journal, Path]) -> None:
    journal, run_dir = run
    write_reports(journal, run_dir, now=NOW)
    identities = {i.value for n in range(8) for i in user(n).request.identities}
    texts = [(run_dir / "summary.json").read_text()]
    for name in ("status.parquet", "products.parquet", "rejects.parquet"):
        texts.extend(
            str(v) for row in pq.read_table(run_dir / name).to_pylist() for v in row.values()
        )
    leaks = [v for v in identities for t in texts if v in t]
    assert leaks == []
    # the messages that echoed an identity were masked, not dropped
    assert any("not found: ***" in t for t in texts)


def test_reports_replace_old_files_atomically(run: tuple[Journal, Path]) -> None:
    journal, run_dir = run
    write_reports(journal, run_dir, now=NOW)
    reader = (run_dir / "status.parquet").open("rb")  # a reader holding the old file
    old = reader.read()
    reader.seek(0)
    journal.observe([], at(100))
    journal.observe([JobObservation(job_id="uk-0000002-access", status="complete")], at(101))
    write_reports(journal, run_dir, now=NOW)
    assert reader.read() == old  # the old inode is intact for whoever has it open
    reader.close()
    new = pq.read_table(run_dir / "status.parquet").to_pylist()
    assert sum(r["status"] == "complete" for r in new) == 3
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []


def test_a_failed_rewrite_keeps_the_previous_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_bytes(b'{"ok": 1}')

    def half_write() -> None:
        with atomic_file(target) as fh:
            fh.write(b'{"half')
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        half_write()
    assert target.read_bytes() == b'{"ok": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_small_chunks_give_the_same_reports(run: tuple[Journal, Path]) -> None:
    journal, run_dir = run
    write_reports(journal, run_dir, now=NOW)
    whole = pq.read_table(run_dir / "status.parquet")
    write_reports(journal, run_dir, now=NOW, chunk_rows=3)
    pf = pq.ParquetFile(run_dir / "status.parquet")
    assert pf.metadata.num_row_groups == 6
    assert pf.read().equals(whole)


def test_report_files_are_private(run: tuple[Journal, Path]) -> None:
    journal, run_dir = run
    write_reports(journal, run_dir, now=NOW)
    for name in ("status.parquet", "products.parquet", "rejects.parquet", "summary.json"):
        assert (run_dir / name).stat().st_mode & 0o777 == 0o600
