"""Deferred rows (journal v10): a columnar plan keeps each batch's users as one record; readers
see the same rows before and after the records are materialised, and writers materialise the
batch they touch first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import JournalError
from pipeline.journal.blobs import materialise_all
from pipeline.journal.models import JobObservation, to_us
from pipeline.journal.purge import check_rewritten, rewrite_journal
from pipeline.journal.registry import Registry
from pipeline.journal.schema import JOURNAL_FILE, SCHEMA_VERSION
from pipeline.journal.store import Journal
from pipeline.keys import key_secret
from pipeline.models import Action, PlannedBatch
from tests.helpers.plans import (
    OPTIONS,
    as_frame,
    at,
    email,
    iter_frames,
    iter_plan,
    meta,
    old_plan,
)

A, D = Action.ACCESS, Action.DELETE
SECRET = key_secret({})


@pytest.fixture
def deferred(tmp_path: Path) -> Iterator[Journal]:
    """A live columnar plan of 9 subjects (access + delete) in batches of 2: b00001..b00005,
    held as deferred records."""
    with Journal.open(tmp_path / "run") as j:
        j.write_plan(meta(rows=9), iter_frames(9, per_batch=2), rejects_count=0)
        yield j


def _records(journal: Journal) -> int:
    return int(journal._conn.execute("SELECT count(*) FROM plan_users").fetchone()[0])


def _materialise_all(journal: Journal) -> None:
    with journal._tx() as c:
        materialise_all(c)


def _submit(journal: Journal, batch_id: str, n: int) -> None:
    """Send batch ``batch_id``: every pending job gets the id ``<user key>-<action>``."""
    journal.record_intent(batch_id, "d", at(n))
    users = journal.load_batch(batch_id).users
    jobs = {(u.user_key, a): f"{u.user_key}-{a.value}" for u in users for a in u.request.actions}
    journal.mark_submitted(batch_id, f"req-{batch_id}", jobs, at(n + 1))


def _views(journal: Journal) -> tuple[Any, ...]:
    """Everything the bulk readers say of the journal."""
    status = [r for chunk in journal.iter_status_rows(chunk_rows=3) for r in chunk]
    batches = [journal.batch_info(f"b{i:05d}") for i in range(1, 6)]
    return (
        status, journal.counts(), journal.states_by_org(), journal.jobs_created_by_org(), batches,
        journal.canary_progress(3), journal.canary_batches(3), journal.identities_left(),
    )  # fmt: skip


def test_a_columnar_plan_writes_one_record_per_batch_and_no_user_or_job_row(
    deferred: Journal,
) -> None:
    c = deferred._conn
    assert c.execute("SELECT count(*) FROM user").fetchone()[0] == 0
    assert c.execute("SELECT count(*) FROM job").fetchone()[0] == 0
    ranges = c.execute("SELECT seq, users, jobs, uid_first, jid_first FROM plan_users")
    assert ranges.fetchall() == [
        (1, 2, 4, 1, 1), (2, 2, 4, 3, 5), (3, 2, 4, 5, 9), (4, 2, 4, 7, 13), (5, 1, 2, 9, 17),
    ]  # fmt: skip
    assert deferred.counts().users == 9
    assert deferred.counts().jobs["pending"] == 18


def test_a_paused_run_reads_the_same_rows_in_the_same_order_before_and_after_materialising(
    deferred: Journal,
) -> None:
    # batch 1 sent and one of its jobs done, batch 3 refused, the rest waits for the cap
    _submit(deferred, "b00001", 1)
    deferred.observe([JobObservation(job_id="uk-0000000-access", status="complete")], at(3))
    deferred.record_intent("b00003", "d", at(4))
    deferred.mark_failed("b00003", "INVALID", "bad request", at(5))
    deferred.pause("daily_cap", at(6))
    assert _records(deferred) == 3  # b00002, b00004, b00005 are still records
    before = _views(deferred)
    _materialise_all(deferred)
    assert _records(deferred) == 0
    assert _views(deferred) == before
    status = before[0]
    assert [r.user_key for r in status[:4]] == ["uk-0000000"] * 2 + ["uk-0000001"] * 2
    assert [r.state for r in status] == (
        ["complete", "submitted", "submitted", "submitted"] + ["pending"] * 4 + ["failed"] * 4
        + ["pending"] * 6
    )  # fmt: skip
    assert (status[4].input_rows, status[4].org) == ("[2]", "default")


def test_a_retry_takes_no_jid_or_uid_reserved_by_a_record_still_unsent(deferred: Journal) -> None:
    _submit(deferred, "b00001", 1)
    deferred.observe([JobObservation(job_id="uk-0000000-access", status="error")], at(3))
    assert deferred.plan_retry(at(4)) == ["retry1-00001"]
    (uid, jid) = deferred._conn.execute("SELECT uid, jid FROM job WHERE parent_jid = 1").fetchone()
    assert (uid, jid) == (10, 19)  # above b00005's reserved uid 9 and jids 17..18
    _submit(deferred, "b00002", 5)  # its reserved rows are written now, without a collision
    _submit(deferred, "retry1-00001", 7)
    rows = [r for chunk in deferred.iter_status_rows() for r in chunk]
    assert [(r.user_key, r.action, r.attempt) for r in rows[:1]] == [("uk-0000000", "delete", 1)]
    assert (rows[-1].user_key, rows[-1].attempt) == ("uk-0000000.r1", 2)
    assert len(rows) == 18


def test_a_cancelled_plan_reads_its_records_jobs_as_cancelled(deferred: Journal) -> None:
    _submit(deferred, "b00001", 1)
    result = deferred.cancel(at(3), stop_polling=True)
    assert (result.jobs_cancelled, result.batches_cancelled) == (14, 4)
    assert _records(deferred) == 4  # cancelling writes no rows
    before = _views(deferred)
    cancelled = [r for r in before[0] if r.state == "cancelled"]
    assert len(cancelled) == 14 == before[1].jobs["cancelled"]
    assert {(r.error_code, r.updated_at) for r in cancelled} == {("cancelled", to_us(at(3)))}
    _materialise_all(deferred)
    assert _views(deferred) == before


def test_a_purge_of_identities_leaves_no_identity_in_any_record(
    deferred: Journal, tmp_path: Path
) -> None:
    _submit(deferred, "b00001", 1)
    deferred.cancel(at(3), stop_polling=True)
    assert deferred.identities_left() == 9
    assert deferred.scrub_identities(at(4))
    assert deferred.identities_left() == 0
    assert _records(deferred) == 0
    deferred.close()
    rewrite_journal(tmp_path / "run")
    check_rewritten(tmp_path / "run" / JOURNAL_FILE)
    data = (tmp_path / "run" / JOURNAL_FILE).read_bytes()
    assert all(email(i).encode() not in data for i in range(9))


def test_registry_pending_keys_do_not_change_when_records_are_materialised(
    deferred: Journal, tmp_path: Path
) -> None:
    _submit(deferred, "b00001", 1)
    typed_dir = tmp_path / "typed"
    with Registry.open(tmp_path) as registry:
        assert registry.catch_up(SECRET) == 18  # 4 sent, 14 pending:<jid>
        pending = registry.pending()
        assert {j for _, j in pending} == {f"pending:{n}" for n in range(5, 19)}
        _materialise_all(deferred)
        assert registry.sync_run(tmp_path / "run", SECRET) == 0  # the same mark, the same rows
        assert registry.pending() == pending
        _submit(deferred, "b00002", 5)
        assert registry.sync_run(tmp_path / "run", SECRET) == 8
        assert len(registry.pending()) == 10
    with Journal.open(typed_dir) as typed:  # the typed plan registers the same rows
        typed.write_plan(meta(rows=9), iter_plan(9, per_batch=2), rejects_count=0)
        with Registry.open(tmp_path / "w2") as other:
            other.sync_run(typed_dir, SECRET)
            assert {j for _, j in other.pending()} == {f"pending:{n}" for n in range(1, 19)}


def test_the_canary_counts_and_holds_the_users_of_records(deferred: Journal) -> None:
    assert deferred.canary_batches(3) == {"b00001", "b00002"}
    progress = deferred.canary_progress(3)
    assert (progress.jobs, progress.pending) == (6, 6)
    _submit(deferred, "b00001", 1)
    progress = deferred.canary_progress(3)
    assert (progress.jobs, progress.pending, progress.open) == (6, 2, 4)
    assert deferred.canary_batches(3) == {"b00002"}


def test_writers_materialise_the_batch_they_touch_and_read_what_the_typed_plan_holds(
    deferred: Journal, tmp_path: Path
) -> None:
    with Journal.open(tmp_path / "typed") as typed:
        typed.write_plan(meta(rows=9), iter_plan(9, per_batch=2), rejects_count=0)
        assert deferred.load_batch("b00002") == typed.load_batch("b00002")
        assert _records(deferred) == 4
        child = deferred.split("b00003", 1, at(1))
        assert child == typed.split("b00003", 1, at(1))
        assert deferred.load_batch(child) == typed.load_batch(child)
        deferred.record_intent("b00004", "d", at(2))
        deferred.defer("b00004", "cap", at(3))
        typed.record_intent("b00004", "d", at(2))
        typed.defer("b00004", "cap", at(3))
        assert _records(deferred) == 2  # b00001 and b00005: never touched
        rows = [r for chunk in deferred.iter_status_rows() for r in chunk]
        assert rows == [r for chunk in typed.iter_status_rows() for r in chunk]


def test_a_repeated_user_key_across_records_fails_the_plan(tmp_path: Path) -> None:
    frames = list(iter_frames(4, per_batch=2))
    first = next(iter_plan(1)).users
    again = as_frame(PlannedBatch(batch_id="b00009", options=OPTIONS, users=first))
    with Journal.open(tmp_path) as j:
        with pytest.raises(JournalError, match=r"a user key repeats"):
            j.write_plan(meta(), [*frames, again], rejects_count=0)
        assert not j.has_plan


def test_a_version_9_journal_migrates_to_10_with_no_record(tmp_path: Path) -> None:
    before = old_plan(tmp_path, 9, 3, "job")
    with Journal.open(tmp_path) as j:
        assert j._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 10
        assert j._conn.execute("SELECT * FROM job ORDER BY jid").fetchall() == before
        assert _records(j) == 0
        assert j.counts().jobs["pending"] == 6
