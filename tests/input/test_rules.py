"""Stage 2: row rules, reason codes, and the subject rules (merge, conflicts, split)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.input.planning import plan_input
from pipeline.input.rules import MAX_VALUE_CHARS, Reason
from tests.helpers.input import plan_file, settings_with

Write = Callable[..., Path]
LONG = settings_with(input={"layout": "long"})


WIDE = "subject_key,email,ecid,action,regulation\nk1,ok@example.com,,access,gdpr\n"
LONG_HEAD = "subject_key,namespace,value,type\nk1,Email,a@example.com,\n"


# One fixture per row-level reason code: a valid first row, then the row that breaks the rule.
CASES = [
    (Reason.EMPTY_KEY, WIDE, ",x@example.com,,access,gdpr"),
    (Reason.UNKNOWN_ACTION, WIDE, "k2,x@example.com,,erase,gdpr"),
    (Reason.UNKNOWN_REGULATION, WIDE, "k3,x@example.com,,access,gdrp"),
    (Reason.MISSING_IDENTITY, WIDE, "k4,  ,,access,gdpr"),
    (Reason.BAD_EMAIL, WIDE, "k5,not-an-email,,access,gdpr"),
    (Reason.BAD_ECID, WIDE, "k6,,12AB,access,gdpr"),
    (Reason.VALUE_TOO_LONG, WIDE, "k7,," + "1" * (MAX_VALUE_CHARS + 1) + ",access,gdpr"),
    (Reason.UNKNOWN_NAMESPACE, LONG_HEAD, "k2,,x1,custom"),
    (Reason.UNKNOWN_TYPE, LONG_HEAD, "k3,crm,x1,weird"),
    (Reason.MISSING_IDENTITY, LONG_HEAD, "k4,email,,standard"),
]


@pytest.mark.parametrize(("reason", "head", "row"), CASES)
def test_each_row_rule_rejects_with_its_reason_code(
    write: Write, reason: Reason, head: str, row: str
) -> None:
    planned = plan_file(write(head + row + "\n"), LONG if head == LONG_HEAD else None)
    assert planned.reasons() == {1: reason.value}
    assert [u.subject_key for u in planned.users] == ["k1"]


def test_bad_received_at_is_rejected(write: Write) -> None:
    path = write(
        "subject_key,email,received_at\nk1,a@example.com,2026-02-30\nk2,b@example.com,x\n"
        "k3,c@example.com,2026-03-01 10:00:00+02:00\n"
    )
    planned = plan_file(path)
    assert planned.reasons() == {0: "BAD_RECEIVED_AT", 1: "BAD_RECEIVED_AT"}
    assert planned.user("k3").received_at == "2026-03-01T08:00:00Z"


def test_a_standard_type_needs_a_standard_namespace(write: Write) -> None:
    path = write("subject_key,namespace,value,type\nk1,email,a@example.com,\nk2,crm,7,standard\n")
    assert plan_file(path, LONG).reasons() == {1: "UNKNOWN_NAMESPACE"}


def test_rows_of_one_key_that_disagree_are_rejected_together(write: Write) -> None:
    path = write(
        "subject_key,email,action\nk1,a@example.com,access\nk2,b@example.com,access\n"
        "k1,c@example.com,delete\n"
    )
    planned = plan_file(path)
    assert planned.reasons() == {0: "CONFLICTING_ROWS", 2: "CONFLICTING_ROWS"}
    assert [u.subject_key for u in planned.users] == ["k2"]


def test_too_many_ids_is_rejected_when_splitting_is_off(write: Write) -> None:
    rows = "".join(f"k1,crm,id{i},custom\n" for i in range(10)) + "k2,crm,x,custom\n"
    path = write("subject_key,namespace,value,type\n" + rows)
    settings = settings_with(input={"layout": "long", "on_too_many_ids": "reject"})
    planned = plan_file(path, settings)
    assert planned.reasons() == {i: "TOO_MANY_IDS" for i in range(10)}
    assert [u.subject_key for u in planned.users] == ["k2"]


def test_a_subject_with_more_than_nine_ids_is_split_in_a_stable_order(write: Write) -> None:
    rows = "".join(f"k1,crm,id{i:02d},custom\n" for i in range(20))
    path = write("subject_key,namespace,value,type\n" + rows)
    planned = plan_file(path, LONG)
    parts = [planned.user("k1", p) for p in range(3)]
    assert [len(p.request.identities) for p in parts] == [9, 9, 2]
    values = [i.value for p in parts for i in p.request.identities]
    assert values == [f"id{i:02d}" for i in range(20)]
    assert parts[0].input_rows == tuple(range(20))
    assert parts[1].input_rows == ()
    assert parts[2].input_rows == ()
    assert parts[1].user_key == parts[0].user_key + "-p1"


def test_identities_are_trimmed_lowercased_and_deduplicated(write: Write) -> None:
    path = write("subject_key,email,ecid\nk1,  Ann@Example.COM ,0123\nk1,ann@example.com,0123\n")
    planned = plan_file(path)
    user = planned.user("k1")
    assert [(i.namespace, i.value) for i in user.request.identities] == [
        ("email", "ann@example.com"),
        ("ECID", "0123"),
    ]
    assert user.input_rows == (0, 1)


def test_ten_identical_rows_are_one_subject_owning_all_ten_rows(write: Write) -> None:
    path = write("email,phone\n" + "a@example.com,+15550100\n" * 10)
    planned = plan_file(path)
    assert planned.rejects == []
    assert len(planned.users) == 1
    assert planned.users[0].input_rows == tuple(range(10))


def test_long_layout_rows_of_a_subject_merge_wherever_they_are(write: Write) -> None:
    path = write(
        "subject_key,namespace,value\nk1,email,a@example.com\nk2,email,b@example.com\nk1,ecid,42\n"
    )
    planned = plan_file(path, LONG)
    assert planned.user("k1").input_rows == (0, 2)
    assert [i.namespace for i in planned.user("k1").request.identities] == ["email", "ECID"]


def test_derived_keys_are_stable_keyed_hashes_not_identities(write: Write) -> None:
    path = write("email\na@example.com\n")
    first = plan_file(path).users[0].subject_key
    assert first == plan_file(path).users[0].subject_key
    assert "example" not in first
    assert first.startswith("h")
    settings = settings_with()
    with plan_input(
        path,
        settings,
        run_id="r",
        rejects_path=path.parent / "r.parquet",
        env={settings.input.key_secret_env: "another secret"},
    ) as plan:
        other = next(plan.batches()).users[0].subject_key
    assert other != first


def test_deprecated_regulations_are_mapped_to_their_current_value(write: Write) -> None:
    path = write("email,regulation\na@example.com,ucpa_usa\n")
    planned = plan_file(path)
    assert planned.batches[0].options.regulation == "ucpa_ut_usa"
    assert planned.summary.deprecated_regulations == {"ucpa_usa": 1}


def test_the_default_action_applies_to_empty_action_cells(write: Write) -> None:
    path = write("email,action\na@example.com,\nb@example.com, Delete \n")
    planned = plan_file(path, settings_with(job={"default_action": "delete"}))
    assert {u.request.actions[0].value for u in planned.users} == {"delete"}


def test_reject_messages_never_carry_identity_values(write: Write) -> None:
    path = write(
        "subject_key,email,ecid\nk1,secret.person@example.com,\nk2,,SECRETECID\n"
        "k3,not-an-email-SECRET,\n"
    )
    planned = plan_file(path)
    assert len(planned.rejects) == 2
    for reject in planned.rejects:
        assert "SECRET" not in reject["message"]
        assert "secret" not in reject["message"]


def test_an_input_where_every_row_fails_has_no_valid_row(write: Write) -> None:
    with pytest.raises(InputError, match="no valid row"):
        plan_file(write("email\nnope\n"))
