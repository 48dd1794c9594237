"""Dedupe at planning: a blocklist cuts a columnar user table into users to submit and
skipped jobs, action by action, with the earlier run and job that answer them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pipeline.input.batching import USER_SCHEMA
from pipeline.input.dedupe import BlockingChunk, Blocklist
from pipeline.input.rules import CANONICAL_ACTIONS, REGULATION_LIST
from pipeline.keys import fingerprints

SECRET = b"test-secret"
GDPR, CCPA = REGULATION_LIST.index("gdpr"), REGULATION_LIST.index("ccpa")


def _users(rows: list[tuple[str, str, int]]) -> pa.Table:
    """Users of (subject key, action, regulation code), one identity-less part each."""
    n = len(rows)
    return pa.table(
        {
            "subject_key": [r[0] for r in rows],
            "part": pa.array(np.zeros(n, np.int64)),
            "user_key": [f"run-{r[0]}" for r in rows],
            "action": pa.array([CANONICAL_ACTIONS.index(r[1]) for r in rows], pa.int8()),
            "regulation": pa.array([r[2] for r in rows], pa.int16()),
            "received_at": pa.nulls(n, pa.string()),
            "input_rows": pa.array([[i] for i in range(n)], pa.list_(pa.int64())),
            "identities": pa.array([[] for _ in range(n)], USER_SCHEMA.field("identities").type),
        },
        schema=USER_SCHEMA,
    )


def _chunk(action: str, regulation: str, run: str, keys: list[str]) -> BlockingChunk:
    return BlockingChunk(
        action=action,
        regulation=regulation,
        run_id=run,
        fingerprints=fingerprints(pa.array(keys), SECRET),
        job_ids=pa.array([f"{run}-{k}-{action}" for k in keys]),
    )


def test_blocked_actions_are_skipped_and_an_access_delete_user_keeps_the_other_one() -> None:
    blocklist = Blocklist.build(
        [
            _chunk("access", "gdpr", "r1", ["a", "b"]),
            _chunk("delete", "gdpr", "r2", ["b", "c"]),
            _chunk("opt-out-of-sale", "ccpa", "r1", ["d"]),
        ],
        secret=SECRET,
    )
    users = _users(
        [
            ("a", "access+delete", GDPR),  # access blocked: delete only
            ("b", "access+delete", GDPR),  # both blocked: skipped whole
            ("c", "access", GDPR),  # its earlier job was a delete: the access is submitted
            ("a", "access", CCPA),  # another regulation: not blocked
            ("d", "opt-out-of-sale", CCPA),  # blocked
            ("e", "delete", GDPR),  # never seen
        ]
    )
    kept, skipped = blocklist.split(users)
    assert kept.column("subject_key").to_pylist() == ["a", "c", "a", "e"]
    actions = [CANONICAL_ACTIONS[c] for c in kept.column("action").to_pylist()]
    assert actions == ["delete", "access", "access", "delete"]
    got = {
        (r["subject_key"], r["action"]): (r["previous_run_id"], r["previous_job_id"])
        for r in skipped.to_pylist()
    }
    assert got == {
        ("a", "access"): ("r1", "r1-a-access"),
        ("b", "access"): ("r1", "r1-b-access"),
        ("b", "delete"): ("r2", "r2-b-delete"),
        ("d", "opt-out-of-sale"): ("r1", "r1-d-opt-out-of-sale"),
    }
    assert {r["regulation"] for r in skipped.to_pylist()} == {"gdpr", "ccpa"}


def test_another_secret_recognises_nothing() -> None:
    blocklist = Blocklist.build([_chunk("access", "gdpr", "r1", ["a"])], secret=b"other")
    kept, skipped = blocklist.split(_users([("a", "access", GDPR)]))
    assert (kept.num_rows, skipped.num_rows) == (1, 0)


def test_an_empty_blocklist_keeps_every_user() -> None:
    users = _users([("a", "access", GDPR)])
    kept, skipped = Blocklist.build([], secret=SECRET).split(users)
    assert kept.equals(users)
    assert skipped.num_rows == 0


def test_a_job_blocks_only_the_users_of_its_own_org() -> None:
    from pipeline.input.batching import ORG_FIELD

    chunk = _chunk("access", "gdpr", "r1", ["a", "b"])
    blocklist = Blocklist.build(
        [BlockingChunk(**{**chunk.__dict__, "org": "EU@AdobeOrg"})],
        secret=SECRET,
        plan_orgs=("EU@AdobeOrg", "US@AdobeOrg"),
    )
    users = _users([("a", "access", GDPR), ("b", "access", GDPR)])
    users = users.append_column(ORG_FIELD, pa.array([0, 1], pa.int16()))  # a in eu, b in us
    kept, skipped = blocklist.split(users)
    assert kept.column("subject_key").to_pylist() == ["b"]  # other data: submitted
    assert skipped.column("subject_key").to_pylist() == ["a"]
    anywhere = Blocklist.build([BlockingChunk(**{**chunk.__dict__, "org": "EU@AdobeOrg"})],
                               secret=SECRET)  # fmt: skip
    assert anywhere.split(users)[0].num_rows == 0  # no org known: any org's job blocks
