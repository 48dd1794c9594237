"""The run's intent in the journal: previews, declined prompts, cancellation, schema v2."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import JournalError
from pipeline.journal.models import RunIntent, RunState
from pipeline.journal.schema import JOURNAL_FILE, SCHEMA_VERSION, open_database
from pipeline.journal.store import Journal
from tests.helpers.plans import at, iter_plan, meta


def test_a_preview_is_never_submitted_until_it_goes_live(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "run") as j:
        j.write_plan(meta(), iter_plan(4, per_batch=2), rejects_count=0, intent=RunIntent.PREVIEW)
        with pytest.raises(JournalError, match="preview"):
            j.record_intent("b00001", "d" * 64, at(1))
        assert j.batch_info("b00001").state == "planned"
        j.go_live(at(2), org_id="OTHER@AdobeOrg")
        assert j.run_info().intent == RunIntent.LIVE
        assert j.run_info().meta.org_id == "ORG@AdobeOrg"  # a recorded org is kept
        j.record_intent("b00001", "d" * 64, at(3))
        with pytest.raises(JournalError, match="live, not a preview"):
            j.go_live(at(4), org_id=None)


def test_a_declined_preview_is_paused_and_can_never_go_live(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "run") as j:
        j.write_plan(meta(), iter_plan(2), rejects_count=0, intent=RunIntent.PREVIEW)
        j.decline(at(1))
        info = j.run_info()
        assert (info.intent, info.state, info.pause_reason) == (
            RunIntent.DECLINED,
            RunState.PAUSED,
            "declined",
        )
        with pytest.raises(JournalError, match="declined"):
            j.go_live(at(2), org_id=None)
        with pytest.raises(JournalError, match="declined"):
            j.record_intent("b00001", "d" * 64, at(3))


def test_cancel_ends_planned_batches_and_leaves_unknown_posts_to_reconcile(
    journal: Journal,
) -> None:
    journal.activate(at(0))
    journal.record_intent("b00001", "d" * 64, at(1))  # POST outcome unknown
    journal.record_intent("b00002", "d" * 64, at(2))
    jobs = {(f"uk-000000{i}", a): f"J{i}{a}" for i in (2, 3) for a in ("access", "delete")}
    journal.mark_submitted("b00002", "req-2", jobs, at(3))
    result = journal.cancel(at(4), stop_polling=False)
    assert result.batches_cancelled == 1  # b00003
    assert result.jobs_cancelled == 2  # its one subject's access and delete
    assert result.batches_unresolved == 1
    assert not result.finished
    counts = journal.counts()
    assert counts.batches["cancelled"] == 1
    assert counts.jobs["cancelled"] == 2
    assert journal.batches_to_submit() == []
    # a resume reconciles b00001: what the service made is adopted, the rest is not re-planned
    assert journal.recover_submitting(at(5)) == ["b00001"]
    outcome = journal.reconcile("b00001", {("uk-0000000", "access"): "J0a"}, at(6))
    assert outcome.adopted == 1
    assert journal.batches_to_submit() == []
    assert journal.counts().jobs["pending"] == 0
    assert journal.counts().jobs["cancelled"] == 2 + 3  # uk-0000000 delete, uk-0000001 both
    with pytest.raises(JournalError, match="cancelled"):
        journal.record_intent(str(outcome.child_batch_id), "d" * 64, at(7))


def test_cancel_with_stop_polling_finishes_a_run_with_nothing_to_reconcile(
    journal: Journal,
) -> None:
    journal.activate(at(0))
    journal.record_intent("b00001", "d" * 64, at(1))
    jobs = {("uk-0000000", "access"): "J0a", ("uk-0000000", "delete"): "J0d"}
    jobs |= {("uk-0000001", "access"): "J1a", ("uk-0000001", "delete"): "J1d"}
    journal.mark_submitted("b00001", "req-1", jobs, at(2))
    journal.pause("no_wait", at(3))
    result = journal.cancel(at(4), stop_polling=True)
    assert result.jobs_in_flight == 4
    assert result.finished
    info = journal.run_info()
    assert (info.state, info.intent, info.stop_polling) == (
        RunState.FINISHED,
        RunIntent.CANCELLED,
        True,
    )
    assert journal.counts().jobs["submitted"] == 4  # reported as last seen


def test_a_cancelled_run_with_jobs_to_follow_stays_paused_for_resume(journal: Journal) -> None:
    journal.activate(at(0))
    journal.record_intent("b00001", "d" * 64, at(1))
    jobs = {("uk-0000000", "access"): "J0a", ("uk-0000000", "delete"): "J0d"}
    jobs |= {("uk-0000001", "access"): "J1a", ("uk-0000001", "delete"): "J1d"}
    journal.mark_submitted("b00001", "req-1", jobs, at(2))
    journal.pause("daily_cap", at(3))
    assert not journal.cancel(at(4), stop_polling=False).finished
    info = journal.run_info()
    assert (info.state, info.pause_reason) == (RunState.PAUSED, "cancelled")
    assert not journal.close_cancelled(at(5))  # polling was not stopped: resume follows them


def test_a_version_1_journal_migrates_with_its_rows_and_runs_live(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    conn = open_database(run_dir / JOURNAL_FILE, target=1)
    conn.executescript(
        """
        INSERT INTO run VALUES (1, 'old-run', 0, 'in.csv', 'ab', 1, 0, 'cd', '{}', '0.1.0',
            'ORG@AdobeOrg', 'paused', 'daily_cap', NULL, 0);
        INSERT INTO batch (seq, batch_id, regulation, options_json, state, updated_at)
            VALUES (1, 'b1', 'gdpr', '{}', 'planned', 0);
        INSERT INTO user VALUES (1, 'uk-1', 'S1', 0, 1, '[]', '[0]', NULL);
        INSERT INTO job (jid, uid, action, state) VALUES (1, 1, 'delete', 'pending');
        """
    )
    conn.close()
    with Journal.open(run_dir) as j:
        assert j._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 10
        info = j.run_info()
        assert (info.intent, info.stop_polling, info.pause_reason) == (
            RunIntent.LIVE,
            False,
            "daily_cap",
        )
        assert j.batches_to_submit() == ["b1"]
        assert j.cancel(at(1), stop_polling=False).jobs_cancelled == 1
        assert j.counts().jobs["cancelled"] == 1
        indexes = {r[0] for r in j._conn.execute("SELECT name FROM sqlite_master")}
        assert {"job_needs_details", "job_needs_download", "batch_by_state"} <= indexes


@pytest.mark.parametrize(
    ("reason", "intent"), [("dry_run", RunIntent.PREVIEW), ("not_confirmed", RunIntent.DECLINED)]
)
def test_an_older_dsars_dry_run_or_declined_run_is_not_live_after_the_migration(
    tmp_path: Path, reason: str, intent: RunIntent
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    conn = open_database(run_dir / JOURNAL_FILE, target=1)
    conn.execute(
        "INSERT INTO run VALUES (1, 'old', 0, 'in.csv', 'ab', 1, 0, 'cd', '{}', '0.1.0', NULL,"
        " 'paused', ?, NULL, 0)",
        (reason,),
    )
    conn.close()
    with Journal.open(run_dir) as j:
        assert j.run_info().intent == intent
