"""Job transitions, details, downloads, retries, run state and counters."""

from __future__ import annotations

import pytest

from pipeline.errors import JournalError
from pipeline.journal.models import JobObservation, RunState
from pipeline.journal.store import Journal
from pipeline.models import Action, ProductResponse
from tests.helpers.plans import at, email

A, D = Action.ACCESS, Action.DELETE


def _submit_first(journal: Journal) -> None:
    journal.record_intent("b00001", "d", at(1))
    jobs = {(k, a): f"{k}-{a.value}" for k in ("uk-0000000", "uk-0000001") for a in (A, D)}
    journal.mark_submitted("b00001", "req-1", jobs, at(2))


def _obs(job_id: str, status: str, t: float = 10) -> JobObservation:
    return JobObservation(job_id=job_id, status=status, updated_at=at(t))


def test_a_sweep_moves_jobs_forward_and_reports_the_newly_terminal(journal: Journal) -> None:
    _submit_first(journal)
    sweep = [
        _obs("uk-0000000-access", "processing"),
        _obs("uk-0000000-delete", "complete"),
        _obs("uk-0000001-access", "error"),
        _obs("uk-0000001-delete", "submitted"),
        _obs("someone-elses-job", "complete"),
    ]
    assert journal.observe(sweep, at(11)) == ["uk-0000000-delete", "uk-0000001-access"]
    jobs = journal.counts().jobs
    assert (jobs["processing"], jobs["complete"], jobs["error"], jobs["submitted"]) == (1, 1, 1, 1)


def test_a_stale_or_repeated_status_in_a_sweep_is_ignored(journal: Journal) -> None:
    _submit_first(journal)
    journal.observe([_obs("uk-0000000-access", "complete")], at(11))
    assert journal.observe([_obs("uk-0000000-access", "processing")], at(12)) == []
    assert journal.observe([_obs("uk-0000000-access", "complete")], at(13)) == []
    assert journal.counts().jobs["complete"] == 1


def test_terminal_jobs_wait_for_details_then_for_their_download(journal: Journal) -> None:
    _submit_first(journal)
    journal.observe([_obs("uk-0000000-access", "complete", 20)], at(21))
    assert journal.jobs_needing_details() == ["uk-0000000-access"]
    products = [
        ProductResponse(product="Profile", status="complete", response_code="PRVCY-6000-200",
                       message=f"done for {email(0)}", processed_at=at(19)),
        ProductResponse(product="AEPDataLake", status="error", response_code="PRVCY-1022-400",
                       retry_count=2),
    ]  # fmt: skip
    journal.record_details("uk-0000000-access", products, at(22), has_result=True)
    assert journal.jobs_needing_details() == []
    assert journal.jobs_needing_download() == ["uk-0000000-access"]
    journal.mark_downloaded("uk-0000000-access", "results/uk-0000000-access.zip", "f" * 64, at(23))
    assert journal.jobs_needing_download() == []
    rows = [r for chunk in journal.iter_product_rows() for r in chunk]
    assert [(r.product, r.status, r.retry_count) for r in rows] == [
        ("AEPDataLake", "error", 2),
        ("Profile", "complete", 0),
    ]
    assert rows[1].message == "done for ***"
    (status,) = [r for c in journal.iter_status_rows() for r in c if r.job_id == rows[0].job_id]
    assert (status.state, status.products_total, status.products_complete) == ("downloaded", 2, 1)
    assert status.result_sha256 == "f" * 64


def test_details_of_an_open_job_and_downloads_without_result_are_refused(
    journal: Journal,
) -> None:
    _submit_first(journal)
    with pytest.raises(JournalError, match="details need a terminal job"):
        journal.record_details("uk-0000000-delete", [], at(3), has_result=False)
    journal.observe([_obs("uk-0000000-delete", "complete")], at(11))
    journal.record_details("uk-0000000-delete", [], at(12), has_result=False)
    with pytest.raises(JournalError, match="has no result to download"):
        journal.mark_downloaded("uk-0000000-delete", "x", "y", at(13))


def test_retry_plans_new_attempts_linked_to_the_errored_jobs(journal: Journal) -> None:
    _submit_first(journal)
    journal.observe(
        [_obs("uk-0000000-access", "error"), _obs("uk-0000000-delete", "complete"),
         _obs("uk-0000001-delete", "error")],
        at(11),
    )  # fmt: skip
    assert journal.plan_retry(at(12)) == ["retry1-00001"]
    retry = journal.load_batch("retry1-00001")
    assert [(u.user_key, u.request.actions) for u in retry.users] == [
        ("uk-0000000.r1", (A,)),
        ("uk-0000001.r1", (D,)),
    ]
    assert retry.users[0].request.identities[0].value == email(0)
    assert journal.plan_retry(at(13)) == []  # nothing new has failed
    rows = [r for c in journal.iter_status_rows() for r in c if r.subject_key == "subj-0000000"]
    assert sorted((r.action, r.attempt, r.state) for r in rows) == [
        ("access", 2, "pending"),
        ("delete", 1, "complete"),
    ]


def test_a_second_retry_round_keys_attempts_from_the_first_key(journal: Journal) -> None:
    _submit_first(journal)
    journal.observe([_obs("uk-0000000-access", "error")], at(11))
    journal.plan_retry(at(12))
    journal.record_intent("retry1-00001", "d", at(13))
    journal.mark_submitted("retry1-00001", "r2", {("uk-0000000.r1", A): "again"}, at(14))
    # round 2: the retried access and the first delete both fail: one new user carries both
    journal.observe([_obs("again", "error"), _obs("uk-0000000-delete", "error")], at(15))
    assert journal.plan_retry(at(16)) == ["retry2-00001"]
    (again,) = journal.load_batch("retry2-00001").users
    assert (again.user_key, again.request.actions) == ("uk-0000000.r2", (A, D))
    rows = [r for c in journal.iter_status_rows() for r in c if r.subject_key == "subj-0000000"]
    assert sorted((r.action, r.attempt, r.user_key) for r in rows) == [
        ("access", 3, "uk-0000000.r2"),
        ("delete", 2, "uk-0000000.r2"),
    ]


def test_run_state_moves_and_refuses_illegal_moves(journal: Journal) -> None:
    assert journal.run_info().state is RunState.PLANNED
    with pytest.raises(JournalError, match="planned -> finished"):
        journal.finish(at(1))
    journal.activate(at(1))
    journal.pause("daily cap reached", at(2), resume_after=at(3600))
    info = journal.run_info()
    assert (info.state, info.pause_reason, info.resume_after) == (
        RunState.PAUSED, "daily cap reached", at(3600),
    )  # fmt: skip
    journal.activate(at(3601))
    journal.activate(at(3602))  # a resume after a crash finds it active
    journal.finish(at(3700))
    assert journal.run_info().state is RunState.FINISHED
    with pytest.raises(JournalError, match="finished -> paused"):
        journal.pause("x", at(3701))


def test_api_call_counters_merge_per_checkpoint(journal: Journal) -> None:
    journal.add_api_calls({("POST jobs", 200): 3, ("GET jobs", 200): 10, ("GET jobs", 429): 0})
    journal.add_api_calls({("POST jobs", 200): 2, ("POST jobs", 503): 1})
    assert journal.api_calls() == {
        "GET jobs": {"200": 10},
        "POST jobs": {"200": 5, "503": 1},
    }


def test_open_windows_per_regulation_start_at_the_oldest_submit(journal: Journal) -> None:
    _submit_first(journal)
    journal.record_intent("b00002", "d", at(30))
    jobs = {(k, a): f"{k}-{a.value}" for k in ("uk-0000002", "uk-0000003") for a in (A, D)}
    journal.mark_submitted("b00002", "req-2", jobs, at(31))
    journal.observe([_obs("uk-0000000-access", "complete")], at(40))
    (window,) = journal.open_windows()
    assert (window.regulation, window.open_jobs, window.oldest_submitted_at) == ("gdpr", 7, at(2))


def test_unacknowledged_times_name_the_batches_with_jobs_never_seen_past_submitted(
    journal: Journal,
) -> None:
    _submit_first(journal)
    journal.record_intent("b00002", "d", at(30))
    jobs = {(k, a): f"{k}-{a.value}" for k in ("uk-0000002", "uk-0000003") for a in (A, D)}
    journal.mark_submitted("b00002", "req-2", jobs, at(31))
    assert sorted(journal.unacknowledged_times("gdpr")) == [at(2), at(31)]
    journal.observe(
        [_obs(f"uk-000000{i}-{a.value}", "processing") for i in (0, 1) for a in (A, D)], at(40)
    )
    assert journal.unacknowledged_times("gdpr") == [at(31)]
    journal.observe(
        [_obs(f"uk-000000{i}-{a.value}", "complete") for i in (2, 3) for a in (A, D)], at(41)
    )
    assert journal.unacknowledged_times("gdpr") == []
    assert journal.unacknowledged_times("ccpa") == []
