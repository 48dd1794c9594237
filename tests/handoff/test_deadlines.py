"""Deadline watch: overdue and due-soon subjects, recounted at the time of asking."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.keys import key_labeller
from pipeline.reports.deadlines import deadline_watch

from .rundir import NOW, SyntheticRun, build_run_dir


def _open_rows(run: SyntheticRun) -> list[dict[str, object]]:
    rows = pq.read_table(run.run_dir / "status.parquet").to_pylist()
    return [r for r in rows if r["status"] in ("pending", "submitted", "processing", "error")]


def test_watch_lists_overdue_and_due_within_seven_days_soonest_first(run: SyntheticRun) -> None:
    watch = deadline_watch(run.run_dir, now=NOW, limit=10_000)
    open_rows = _open_rows(run)
    expected = [r for r in open_rows if r["days_left"] < 7]  # type: ignore[operator]
    assert len(watch.rows) == len(expected) == watch.overdue + watch.due_soon
    assert watch.overdue == sum(1 for r in open_rows if r["overdue"])
    assert [r.due_at for r in watch.rows] == sorted(r.due_at for r in watch.rows)
    assert {r.subject_key for r in watch.rows} == {str(r["subject_key"]) for r in expected}


def test_clocks_are_recounted_at_the_time_of_asking(run: SyntheticRun) -> None:
    now = deadline_watch(run.run_dir, now=NOW, limit=10_000)
    later = deadline_watch(run.run_dir, now=NOW + timedelta(days=60), limit=10_000)
    assert later.overdue > now.overdue
    # every open subject (received in the last 40 days) is past its window (<= 45 days) by then
    assert later.overdue == len(_open_rows(run))
    first = now.rows[0]
    same = next(r for r in later.rows if r.subject_key == first.subject_key)
    assert same.due_at == first.due_at
    assert same.days_left == first.days_left - 60


def test_watch_labels_keys_and_is_empty_before_reports(run: SyntheticRun, tmp_path: Path) -> None:
    label = key_labeller(b"k")
    watch = deadline_watch(run.run_dir, now=NOW, limit=3, key_label=label)
    assert len(watch.rows) == 3
    assert all(r.subject_key.startswith("h:") for r in watch.rows)
    empty = deadline_watch(tmp_path / "no-reports-yet", now=NOW)
    assert (empty.overdue, empty.due_soon, empty.rows) == (0, 0, ())


def test_watch_counts_from_received_at_when_status_has_no_sla_columns(tmp_path: Path) -> None:
    built = build_run_dir(tmp_path / "run", subjects=100)
    path = built.run_dir / "status.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["due_at", "days_left", "overdue"]), path)
    computed = deadline_watch(built.run_dir, now=NOW, limit=10_000)
    pq.write_table(table, path)
    stored = deadline_watch(built.run_dir, now=NOW, limit=10_000)
    assert computed == stored


def test_a_cancelled_subject_stays_in_the_watch_its_deadline_runs_on(tmp_path: Path) -> None:
    built = build_run_dir(tmp_path / "run", subjects=100)
    path = built.run_dir / "status.parquet"
    table = pq.read_table(path)
    before = deadline_watch(built.run_dir, now=NOW, limit=10_000)
    first = before.rows[0].subject_key
    status = [
        "cancelled" if key == first and s != "complete" else s
        for key, s in zip(
            table.column("subject_key").to_pylist(), table.column("status").to_pylist(), strict=True
        )
    ]
    index = table.schema.get_field_index("status")
    pq.write_table(table.set_column(index, "status", pa.array(status, pa.string())), path)
    after = deadline_watch(built.run_dir, now=NOW, limit=10_000)
    assert after.overdue == before.overdue
    assert {r.status for r in after.rows if r.subject_key == first} == {"cancelled"}
