"""Stage 3: requests of equal options, size limits, payloads and user keys."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson

from pipeline import constants
from pipeline.input.batching import user_key
from pipeline.input.planning import plan_input
from tests.helpers.input import plan_file, settings_with

Write = Callable[..., Path]


def _subjects(n: int, action: str = "access", regulation: str = "gdpr") -> str:
    return "".join(f"s{i},u{i}@example.com,{action},{regulation}\n" for i in range(n))


def test_requests_hold_at_most_the_configured_number_of_users(write: Write) -> None:
    path = write("subject_key,email,action,regulation\n" + _subjects(25))
    planned = plan_file(path, settings_with(limits={"users_per_request": 10}))
    assert [len(b.users) for b in planned.batches] == [10, 10, 5]
    assert planned.summary.requests == 3


def test_opt_out_and_each_regulation_travel_in_requests_of_their_own(write: Write) -> None:
    rows = (
        "a,a@example.com,access,gdpr\n"
        "b,b@example.com,opt-out-of-sale,ccpa\n"
        "c,c@example.com,access+delete,ccpa\n"
        "d,d@example.com,delete,gdpr\n"
    )
    planned = plan_file(write("subject_key,email,action,regulation\n" + rows))
    groups = sorted(
        (b.options.regulation, sorted(u.subject_key for u in b.users)) for b in planned.batches
    )
    assert groups == [("ccpa", ["b"]), ("ccpa", ["c"]), ("gdpr", ["a", "d"])]
    for batch in planned.batches:
        batch.to_request()  # the model refuses mixed opt-out requests
    assert planned.summary.jobs == 5  # access+delete is two jobs


def test_the_wire_form_keeps_quotes_and_the_request_options(write: Write) -> None:
    rows = 'k1,"quote "" and \\ backslash@example.com",123\nk2,b@example.com,\n'
    path = write("subject_key,email,ecid\n" + rows)
    settings = settings_with(job={"include": ["analytics"], "merge_policy_id": "mp1"})
    with plan_input(
        path, settings, run_id='r"1', rejects_path=path.parent / "r.parquet", env={}
    ) as plan:
        frames = list(plan.frames())
    wires = [f.to_planned().to_request().to_wire("ORG@AdobeOrg") for f in frames]
    for wire in wires:
        assert orjson.loads(orjson.dumps(wire)) == wire
        assert wire["include"] == ["analytics"]
        assert wire["mergePolicyId"] == "mp1"
    users = [u for w in wires for u in w["users"]]  # type: ignore[attr-defined]
    assert all(u["key"].startswith('r"1-') for u in users)
    values = {i["value"] for u in users for i in u["userIDs"]}
    assert values == {"b@example.com"}  # k1: not an email, rejected


def test_the_same_input_and_run_give_the_same_batches(write: Write) -> None:
    path = write("subject_key,email,action,regulation\n" + _subjects(30, "delete"))
    settings = settings_with(limits={"users_per_request": 7})
    assert plan_file(path, settings).batches == plan_file(path, settings).batches


def test_user_keys_are_deterministic_unique_per_run_and_free_of_the_subject_key() -> None:
    key = user_key("run-a", "alice@example.com")
    assert key == user_key("run-a", "alice@example.com")
    assert key != user_key("run-b", "alice@example.com")
    assert key != user_key("run-a", "bob@example.com")
    assert key.startswith("run-a-")
    assert "alice" not in key
    assert user_key("run-a", "alice@example.com", 2) == key + "-p2"


def test_planned_user_keys_match_the_user_key_function(write: Write) -> None:
    planned = plan_file(write("subject_key,email\nk1,a@example.com\n"), run_id="r9")
    assert planned.users[0].user_key == user_key("r9", "k1")


def test_limits_of_the_service_hold(write: Write) -> None:
    path = write("subject_key,email,action,regulation\n" + _subjects(2500))
    planned = plan_file(path)
    assert max(len(b.users) for b in planned.batches) == constants.MAX_USERS_PER_REQUEST
    assert planned.summary.days == 1
    settings = settings_with(limits={"daily_job_cap": 1000})
    assert plan_file(path, settings).summary.days == 3
