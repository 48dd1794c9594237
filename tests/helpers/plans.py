"""Test data for journal and report tests: plans built from the request-side models."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.input.batching import USER_SCHEMA, BatchFrame
from pipeline.input.rules import CANONICAL_ACTIONS, REGULATION_LIST
from pipeline.journal.models import RunMeta
from pipeline.journal.schema import JOURNAL_FILE, open_database
from pipeline.journal.store import Journal
from pipeline.models import Action, Identity, PlannedBatch, PlannedUser, RequestOptions, UserRequest

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OPTIONS = RequestOptions(regulation="gdpr", include=("aepDataLake", "profileService"))


def at(seconds: float) -> datetime:
    """A test time ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def email(i: int) -> str:
    """The identity value of subject ``i``: unique, so a scan can look for it."""
    return f"person{i:07d}@example.org"


def user(i: int, actions: tuple[Action, ...] = (Action.ACCESS, Action.DELETE)) -> PlannedUser:
    """Subject ``i`` as one planned user with an email and an ECID."""
    request = UserRequest(
        key=f"uk-{i:07d}",
        actions=actions,
        identities=(Identity("email", email(i)), Identity("ECID", f"{i:038d}")),
    )
    return PlannedUser(f"subj-{i:07d}", 0, request, (i,), None)


def iter_plan(
    subjects: int,
    *,
    per_batch: int = 1000,
    actions: tuple[Action, ...] = (Action.ACCESS, Action.DELETE),
    options: RequestOptions = OPTIONS,
) -> Iterator[PlannedBatch]:
    """``subjects`` users in batches of ``per_batch``, ids ``b00001``..., streamed."""
    for n, start in enumerate(range(0, subjects, per_batch), start=1):
        users = tuple(user(i, actions) for i in range(start, min(start + per_batch, subjects)))
        yield PlannedBatch(batch_id=f"b{n:05d}", options=options, users=users)


def as_frame(batch: PlannedBatch) -> BatchFrame:
    """The columnar form of a typed batch (what ``Plan.frames()`` gives a real run): written
    into a journal, its users become one deferred record (pipeline.journal.blobs)."""
    users = batch.users
    codes = [CANONICAL_ACTIONS.index("+".join(a.value for a in u.request.actions)) for u in users]
    columns = {
        "subject_key": [u.subject_key for u in users],
        "part": [u.part for u in users],
        "user_key": [u.request.key for u in users],
        "action": codes,
        "regulation": [REGULATION_LIST.index(batch.options.regulation)] * len(users),
        "received_at": [u.received_at for u in users],
        "input_rows": [list(u.input_rows) for u in users],
        "identities": [
            [
                {"namespace": i.namespace, "value": i.value, "type": i.type}
                for i in u.request.identities
            ]
            for u in users
        ],
    }
    table = pa.Table.from_pydict(columns, schema=USER_SCHEMA)
    return BatchFrame(batch_id=batch.batch_id, options=batch.options, users=table)


def iter_frames(subjects: int, **kwargs: Any) -> Iterator[BatchFrame]:
    """:func:`iter_plan` in columnar form."""
    return (as_frame(b) for b in iter_plan(subjects, **kwargs))


def old_plan(directory: Path, version: int, subjects: int, table: str) -> list[tuple[Any, ...]]:
    """Write a typed plan of ``subjects`` (batches of 2) into a new journal of schema
    ``version`` in ``directory``; returns the rows of ``table`` it holds, before any
    migration."""
    path = directory / JOURNAL_FILE
    with Journal(open_database(path, target=version), path) as old:
        old.write_plan(meta(), iter_plan(subjects, per_batch=2), rejects_count=0)
        return list(old._conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall())


def meta(run_id: str = "run-1", rows: int = 0) -> RunMeta:
    """Run metadata for tests."""
    return RunMeta(
        run_id=run_id,
        created_at=T0,
        input_path="subjects.csv",
        input_sha256="ab" * 32,
        input_rows=rows,
        config_digest="cd" * 32,
        tool_version="0.1.0",
        settings={"job": {"regulation": "gdpr"}, "credentials": {"client_secret": None}},
        org_id="ORG@AdobeOrg",
    )
