"""The canary in the journal: its progress, its cut at planning, and its verdict's moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import JournalError
from pipeline.journal.canary import CanaryProgress, CanaryState
from pipeline.journal.schema import JOURNAL_FILE, SCHEMA_VERSION, open_database
from pipeline.journal.store import Journal
from pipeline.run.canary import cut_canary
from tests.helpers.plans import at, iter_plan, meta


def test_the_canary_is_cut_into_requests_of_exactly_its_users(tmp_path: Path) -> None:
    batches = list(cut_canary(iter_plan(7, per_batch=3), 4))
    assert [b.batch_id for b in batches] == ["b00001", "b00002", "b00002r", "b00003"]
    assert [len(b.users) for b in batches] == [3, 1, 2, 1]
    assert [u.user_key for b in batches for u in b.users] == [f"uk-{i:07d}" for i in range(7)]
    assert list(cut_canary(iter_plan(6, per_batch=3), 3)) == list(iter_plan(6, per_batch=3))
    assert list(cut_canary(iter_plan(2), 0)) == list(iter_plan(2))
    with Journal.open(tmp_path / "run") as j:
        j.write_plan(meta(), iter(batches), rejects_count=0)
        assert j.canary_batches(4) == {"b00001", "b00002"}
        assert j.canary_progress(4) == CanaryProgress(jobs=8, pending=8, open=0, errors=0)


def test_the_verdict_moves_once_and_only_a_held_canary_is_released(journal: Journal) -> None:
    assert journal.canary() is None
    with pytest.raises(JournalError, match="not started -> passed"):
        journal.pass_canary(journal.canary_progress(2), at(1))
    journal.start_canary(users=2, max_error=0.05, wait_s=60.0, at=at(2))
    with pytest.raises(JournalError, match="already started"):
        journal.start_canary(users=2, max_error=0.05, wait_s=60.0, at=at(3))
    with pytest.raises(JournalError, match="waiting -> released"):
        journal.release_canary(at(3))
    progress = CanaryProgress(jobs=4, pending=0, open=1, errors=1)
    info = journal.time_out_canary(progress, at(62))
    assert (info.state, info.held, info.jobs, info.errors, info.still_open) == (
        CanaryState.TIMED_OUT, True, 4, 1, 1,
    )  # fmt: skip
    assert info.share == 0.25
    with pytest.raises(JournalError, match="timed_out -> failed"):
        journal.fail_canary(progress, at(63))
    journal.release_canary(at(64))
    info = journal.canary()
    assert info is not None
    assert (info.state, info.held) == (CanaryState.RELEASED, False)
    with pytest.raises(JournalError, match="released -> released"):
        journal.release_canary(at(65))


def test_progress_counts_first_attempts_and_refused_batches_as_errors(journal: Journal) -> None:
    journal.activate(at(0))
    journal.record_intent("b00001", "d" * 64, at(1))
    journal.mark_failed("b00001", "PRVCY-1000-400", "refused", at(2))
    journal.record_intent("b00002", "d" * 64, at(3))
    jobs = {(f"uk-000000{i}", a): f"J{i}{a}" for i in (2, 3) for a in ("access", "delete")}
    journal.mark_submitted("b00002", "req-2", jobs, at(4))
    progress = journal.canary_progress(3)  # users 1-3: b00001 (2 users) and one of b00002
    assert progress == CanaryProgress(jobs=6, pending=0, open=2, errors=4)
    assert journal.canary_batches(5) == {"b00003"}


def test_a_version_3_journal_migrates_to_one_without_a_canary(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    open_database(run_dir / JOURNAL_FILE, target=3).close()
    with Journal.open(run_dir) as j:
        assert j._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 10
        assert j.canary() is None
