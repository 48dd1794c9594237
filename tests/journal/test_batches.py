"""Batch transitions: every legal move, and the illegal ones refused without a change."""

from __future__ import annotations

import pytest

from pipeline.errors import JournalError
from pipeline.journal.models import BatchState, JobState
from pipeline.journal.store import Journal
from pipeline.models import Action
from tests.helpers.plans import at, email

A, D = Action.ACCESS, Action.DELETE


def _ids(keys: list[str], prefix: str = "job") -> dict[tuple[str, Action], str]:
    return {(k, a): f"{prefix}-{k}-{a.value}" for k in keys for a in (A, D)}


def test_planned_batches_come_out_in_plan_order(journal: Journal) -> None:
    assert journal.batches_to_submit() == ["b00001", "b00002", "b00003"]
    assert journal.batches_to_submit(limit=1) == ["b00001"]
    assert journal.counts().jobs["pending"] == 10


def test_intent_moves_planned_to_submitting_with_its_digest(journal: Journal) -> None:
    journal.record_intent("b00001", "d" * 64, at(1))
    info = journal.batch_info("b00001")
    assert info.state is BatchState.SUBMITTING
    assert info.payload_digest == "d" * 64
    assert info.intent_at == at(1)
    assert journal.batches_to_submit() == ["b00002", "b00003"]


def test_a_second_intent_for_the_same_batch_is_illegal(journal: Journal) -> None:
    journal.record_intent("b00001", "d", at(1))
    with pytest.raises(JournalError, match="illegal transition submitting -> submitting"):
        journal.record_intent("b00001", "d", at(2))


def test_an_unknown_batch_is_refused(journal: Journal) -> None:
    with pytest.raises(JournalError, match="unknown batch"):
        journal.record_intent("nope", "d", at(1))


def test_submitted_records_every_job_id_with_the_batch(journal: Journal) -> None:
    journal.record_intent("b00001", "d", at(1))
    journal.mark_submitted("b00001", "req-1", _ids(["uk-0000000", "uk-0000001"]), at(2))
    info = journal.batch_info("b00001")
    assert info.state is BatchState.SUBMITTED
    assert info.request_id == "req-1"
    assert journal.counts().jobs["submitted"] == 4
    assert set(journal.open_jobs("gdpr")) == set(_ids(["uk-0000000", "uk-0000001"]).values())


def test_submitted_without_every_job_id_changes_nothing(journal: Journal) -> None:
    journal.record_intent("b00001", "d", at(1))
    partial = _ids(["uk-0000000"])
    with pytest.raises(JournalError, match="1 users got no job id"):
        journal.mark_submitted("b00001", "req-1", partial, at(2))
    assert journal.batch_info("b00001").state is BatchState.SUBMITTING
    assert journal.counts().jobs["submitted"] == 0


def test_submitted_with_a_foreign_user_key_changes_nothing(journal: Journal) -> None:
    journal.record_intent("b00001", "d", at(1))
    ids = _ids(["uk-0000000", "uk-0000001", "uk-0000004"])
    with pytest.raises(JournalError, match="2 job ids match no pending job"):
        journal.mark_submitted("b00001", "req-1", ids, at(2))
    assert journal.batch_info("b00001").state is BatchState.SUBMITTING


def test_submitted_straight_from_planned_is_illegal(journal: Journal) -> None:
    with pytest.raises(JournalError, match="illegal transition planned -> submitted"):
        journal.mark_submitted("b00001", "r", _ids(["uk-0000000", "uk-0000001"]), at(2))


def test_a_job_id_seen_twice_is_refused(journal: Journal) -> None:
    journal.record_intent("b00001", "d", at(1))
    ids = _ids(["uk-0000000", "uk-0000001"])
    ids[("uk-0000001", D)] = ids[("uk-0000000", A)]
    with pytest.raises(JournalError, match=r"UNIQUE constraint failed: job\.job_id"):
        journal.mark_submitted("b00001", "r", ids, at(2))


def test_ambiguous_only_from_submitting(journal: Journal) -> None:
    with pytest.raises(JournalError, match="planned -> ambiguous"):
        journal.mark_ambiguous("b00001", at(1))
    journal.record_intent("b00001", "d", at(1))
    journal.mark_ambiguous("b00001", at(2), reason="timeout")
    info = journal.batch_info("b00001")
    assert (info.state, info.error_code) == (BatchState.AMBIGUOUS, "timeout")
    assert [b.batch_id for b in journal.unresolved_batches()] == ["b00001"]


def test_resume_turns_every_submitting_batch_ambiguous(journal: Journal) -> None:
    journal.record_intent("b00003", "d", at(1))
    journal.record_intent("b00001", "d", at(1))
    assert journal.recover_submitting(at(5)) == ["b00001", "b00003"]
    states = {b.batch_id: b.state for b in journal.unresolved_batches()}
    assert states == {"b00001": BatchState.AMBIGUOUS, "b00003": BatchState.AMBIGUOUS}
    assert journal.recover_submitting(at(6)) == []


def test_reconcile_adopts_found_jobs_and_moves_only_missing_users(journal: Journal) -> None:
    journal.record_intent("b00001", "d", at(1))
    journal.mark_ambiguous("b00001", at(2))
    found = {("uk-0000000", A): "j0a", ("uk-0000000", D): "j0d", ("uk-0000001", A): "j1a"}
    result = journal.reconcile("b00001", found, at(3))
    assert result.adopted == 3
    assert result.missing_user_keys == ("uk-0000001",)
    assert result.child_batch_id == "b00001.1"
    assert journal.batch_info("b00001").state is BatchState.RECONCILED
    child = journal.load_batch("b00001.1")
    assert [(u.user_key, u.request.actions) for u in child.users] == [("uk-0000001", (D,))]
    assert journal.batch_info("b00001.1").parent_batch_id == "b00001"
    assert journal.batches_to_submit() == ["b00002", "b00003", "b00001.1"]
    # adopted jobs count as submitted at the intent: the reconciliation window's start
    assert journal.open_windows()[0].oldest_submitted_at == at(1)


def test_reconcile_that_finds_everything_makes_no_child(journal: Journal) -> None:
    journal.record_intent("b00001", "d", at(1))
    journal.mark_ambiguous("b00001", at(2))
    result = journal.reconcile("b00001", _ids(["uk-0000000", "uk-0000001"]), at(3))
    assert (result.child_batch_id, result.missing_user_keys) == (None, ())
    assert journal.batches_to_submit() == ["b00002", "b00003"]


def test_reconcile_needs_an_ambiguous_batch(journal: Journal) -> None:
    journal.record_intent("b00001", "d", at(1))
    with pytest.raises(JournalError, match="submitting -> reconciled"):
        journal.reconcile("b00001", {}, at(2))


def test_reconcile_with_a_job_of_another_batch_changes_nothing(journal: Journal) -> None:
    journal.record_intent("b00001", "d", at(1))
    journal.mark_ambiguous("b00001", at(2))
    with pytest.raises(JournalError, match="match no pending job"):
        journal.reconcile("b00001", {("uk-0000003", A): "x"}, at(3))
    assert journal.batch_info("b00001").state is BatchState.AMBIGUOUS
    assert journal.counts().batches["planned"] == 2


def test_defer_moves_all_users_of_a_refused_post_to_a_new_batch(journal: Journal) -> None:
    journal.record_intent("b00002", "d", at(1))
    child = journal.defer("b00002", "daily_cap", at(2))
    assert child == "b00002.1"
    info = journal.batch_info("b00002")
    assert (info.state, info.error_code) == (BatchState.RECONCILED, "daily_cap")
    assert [u.user_key for u in journal.load_batch(child).users] == ["uk-0000002", "uk-0000003"]
    with pytest.raises(JournalError, match="planned -> reconciled"):
        journal.defer("b00003", "daily_cap", at(3))


def test_rejected_batch_fails_its_jobs_with_a_masked_message(journal: Journal) -> None:
    journal.record_intent("b00001", "d", at(1))
    journal.mark_failed("b00001", "PRVCY-1000-400", f"bad value {email(0)}", at(2))
    info = journal.batch_info("b00001")
    assert info.state is BatchState.FAILED
    assert info.error_message == "bad value ***"
    rows = [r for chunk in journal.iter_status_rows() for r in chunk if r.state == "failed"]
    assert len(rows) == 4
    assert {(r.error_code, r.error_message) for r in rows} == {("PRVCY-1000-400", "bad value ***")}


def test_a_planned_batch_may_fail_but_a_submitted_one_may_not(journal: Journal) -> None:
    journal.mark_failed("b00003", "X", "refused", at(1))
    assert journal.batch_info("b00003").state is BatchState.FAILED
    journal.record_intent("b00001", "d", at(1))
    journal.mark_submitted("b00001", "r", _ids(["uk-0000000", "uk-0000001"]), at(2))
    with pytest.raises(JournalError, match="submitted -> failed"):
        journal.mark_failed("b00001", "X", "late", at(3))
    assert journal.counts().jobs[JobState.SUBMITTED] == 4


def test_journal_errors_never_name_a_user_key_or_an_identity(journal: Journal) -> None:
    journal.record_intent("b00001", "d", at(1))
    attempts = [
        lambda: journal.mark_submitted("b00001", "r", _ids(["uk-0000000"]), at(2)),
        lambda: journal.mark_submitted("b00001", "r", _ids(["uk-0000004"]), at(2)),
        lambda: journal.reconcile("b00001", {("uk-0000000", A): "x"}, at(2)),
        lambda: journal.record_intent("b00001", email(0), at(2)),
    ]
    messages = []
    for attempt in attempts:
        with pytest.raises(JournalError) as caught:
            attempt()
        messages.append(str(caught.value))
    assert len(messages) == 4
    assert not [m for m in messages if "uk-" in m or "@example" in m], messages
