"""The journal's planning: the record of a planning in progress, so that a run killed while
planning can plan again from the start, and the writer of the plan itself.

:meth:`PlanningRecord.begin_planning` commits what the planning needs (the run id, the input's
path and sha256, the settings without credentials) and the planner's pid, in its own short
transaction, before the first input row is read; the plan itself is then written in one
transaction (:meth:`pipeline.journal.store.Journal.write_plan`). A kill in between leaves this
record and no plan: ``dsar resume`` reads it back with :meth:`PlanningRecord.planning` and plans
again. Mixed into :class:`pipeline.journal.store.Journal`.

:func:`write_plan_rows` writes the plan inside that transaction. A columnar
:class:`~pipeline.input.batching.BatchFrame` is written as its ``batch`` row and one deferred
record (:mod:`pipeline.journal.blobs`): the batch's user columns, compressed, with the uid and
jid ranges reserved for it; its user and job rows are written when a writer first touches the
batch. A typed :class:`~pipeline.models.PlannedBatch` (tests, small plans) is written user by
user; a record materialised gives the same rows, byte for byte. A user key repeated among the
records fails the plan (:func:`_check_unique_keys`), as the unique index fails a typed one."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from ..errors import JournalError
from ..input.batching import BatchFrame
from ..input.spill import pid_alive
from ..keys import fingerprints
from ..models import PlannedBatch, RequestOptions
from .blobs import records, write_blob
from .models import from_us_required, to_us
from .queries import options_json
from .schema import CACHE_KIB, PLAN_CACHE_KIB, JournalStore

_SECRET_KEYS = frozenset(
    {"client_id", "client_secret", "secret", "token", "access_token", "password"}
)


@dataclass(frozen=True, kw_only=True)
class PlanningInfo:
    """What a run's planning started from, and which process ran it."""

    run_id: str
    input_path: str
    input_sha256: str
    settings: dict[str, Any]
    pid: int
    started_at: datetime
    dry_run: bool = False  # a dry run's plan stays a preview when it is planned again
    asks: bool = True  # the command would have asked before submitting: nobody answered yet
    dedupe: bool = True  # False: `dsar run --no-dedupe`, kept when the run is planned again

    @property
    def planner_alive(self) -> bool:
        """Whether the planning process still exists (and is not this one).

        A pid reused by another process reads as alive: the safe side, nothing is discarded.
        """
        return self.pid != os.getpid() and pid_alive(self.pid)


class PlanningRecord(JournalStore):
    """The ``planning`` table: one row, replaced by each (re)start of the planning."""

    def begin_planning(
        self,
        *,
        run_id: str,
        input_path: str,
        input_sha256: str,
        settings: Mapping[str, Any],
        at: datetime,
        dry_run: bool = False,
        asks: bool = True,
        dedupe: bool = True,
    ) -> None:
        """Record, durably, that this process starts planning the run (replaces a dead one's)."""
        stored = settings_json(settings)
        with self._tx() as c:
            row = (run_id, input_path, input_sha256, stored, os.getpid(), to_us(at))
            c.execute(
                "INSERT OR REPLACE INTO planning VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*row, int(dry_run), int(asks), int(dedupe)),
            )

    def planning(self) -> PlanningInfo | None:
        """The planning record, or None when no planning was ever started in this journal."""
        with self._lock:
            row = self._conn.execute(
                "SELECT run_id, input_path, input_sha256, settings_json, pid, started_at,"
                " dry_run, asks, dedupe FROM planning"
            ).fetchone()
        if row is None:
            return None
        settings: Mapping[str, Any] = orjson.loads(row[3])
        return PlanningInfo(
            run_id=row[0], input_path=row[1], input_sha256=row[2], settings=dict(settings),
            pid=int(row[4]), started_at=from_us_required(row[5]), dry_run=bool(row[6]),
            asks=bool(row[7]), dedupe=bool(row[8]),
        )  # fmt: skip


def settings_json(settings: Mapping[str, Any]) -> str:
    """The settings snapshot as stored; :class:`JournalError` if it holds a secret-named key."""

    def check(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if str(key).lower() in _SECRET_KEYS and value is not None:
                    raise JournalError(f"settings snapshot holds a secret-named key {key!r}")
                check(value)
        elif isinstance(node, list | tuple):
            for item in node:
                check(item)

    check(settings)
    return orjson.dumps(settings, default=str).decode()


_KEY_HASH = b"dsar plan user keys"  # the hash of the plan-time repeated-key check (no secret)
SORT_THREADS = 2  # SQLite sorter threads while a plan's indexes are built (the machine's cores)
_BATCH_SQL = (
    "INSERT INTO batch (seq, batch_id, regulation, options_json, state, updated_at, org)"
    " VALUES (?, ?, ?, ?, 'planned', ?, ?)"
)
_USER_SQL = "INSERT INTO user VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_JOB_SQL = "INSERT INTO job (jid, uid, action, state) VALUES (?, ?, ?, 'pending')"
_SKIPPED_COLUMNS = (
    "subject_key", "user_key", "part", "action", "regulation", "received_at",
    "input_rows", "previous_run_id", "previous_job_id",
)  # fmt: skip


@contextmanager
def bulk_load(conn: sqlite3.Connection) -> Iterator[None]:
    """The connection's settings while a plan is written, restored after it.

    A bigger page cache; and CHECK constraints not evaluated: the plan's rows carry constant
    states ('planned', 'pending') that meet them, and SQLite rebuilds each state CHECK's
    ``IN (...)`` list on every row (half the cost of a job row); and helper threads for the
    sorts that build the indexes at the end (:func:`write_plan_rows`). Nothing else changes:
    the plan is still one transaction, written through the WAL, committed with
    ``synchronous=FULL``.
    """
    conn.execute(f"PRAGMA cache_size = {PLAN_CACHE_KIB}")
    conn.execute("PRAGMA ignore_check_constraints = ON")
    conn.execute(f"PRAGMA threads = {SORT_THREADS}")
    try:
        yield
    finally:
        conn.execute("PRAGMA threads = 0")
        conn.execute("PRAGMA ignore_check_constraints = OFF")
        conn.execute(f"PRAGMA cache_size = {CACHE_KIB}")
        conn.execute("PRAGMA shrink_memory")


def write_plan_rows(
    c: sqlite3.Connection,
    batches: Iterable[BatchFrame | PlannedBatch],
    created: int,
    skipped: Callable[[], pa.Table] | None,
) -> int:
    """Insert the batches (seq from 1, users and jobs numbered from 1 in plan order) and then
    the skipped jobs, in the caller's transaction; returns the job count.

    The named indexes of the (empty) user and job tables are dropped first and created again,
    from their own stored SQL, once the rows are in: one sort instead of a B-tree insert per
    row, and the same schema after the transaction as before it."""
    indexes = c.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        " AND tbl_name IN ('user', 'job') ORDER BY rowid"
    ).fetchall()
    for name, _ in indexes:
        c.execute(f'DROP INDEX "{name}"')
    jobs = _write_batches(c, batches, created)
    for _, sql in indexes:
        c.execute(sql)
    if skipped is not None:
        _write_skipped(c, skipped())
    return jobs


def _write_batches(
    c: sqlite3.Connection, batches: Iterable[BatchFrame | PlannedBatch], created: int
) -> int:
    uid = jid = 0
    hashes: list[np.ndarray] = []
    for seq, batch in enumerate(batches, start=1):
        if not len(batch.users):
            raise JournalError(f"batch {batch.batch_id} has no users")
        c.execute(_BATCH_SQL, _batch_row(seq, batch.batch_id, batch.options, created))
        if isinstance(batch, BatchFrame):
            hashes.append(fingerprints(batch.users.column("user_key"), _KEY_HASH))
            users, jobs = _frame_rows(c, batch, seq, uid, jid)
        else:
            users, jobs = _typed_rows(c, batch, seq, uid, jid)
        uid += users
        jid += jobs
    _check_unique_keys(c, hashes)
    return jid


def _check_unique_keys(c: sqlite3.Connection, hashes: list[np.ndarray]) -> None:
    """:class:`JournalError` if a user key repeats among the deferred records (their rows,
    and so the unique ``user_by_key`` index, come later): a 64-bit hash of every key, sorted;
    only when two hashes are equal are the keys themselves compared."""
    if not hashes:
        return
    flat = np.sort(np.concatenate(hashes))
    same = flat[1:][flat[1:] == flat[:-1]]
    if not len(same):
        return
    seen: set[str] = set()
    for record in records(c):
        keys = record.users.column("user_key")
        suspects = np.isin(fingerprints(keys, _KEY_HASH), same)
        for key in keys.filter(pa.array(suspects)).to_pylist():
            if key in seen:
                raise JournalError("plan: a user key repeats (each user is planned once)")
            seen.add(key)


def _batch_row(seq: int, batch_id: str, options: RequestOptions, created: int) -> tuple[Any, ...]:
    return (seq, batch_id, options.regulation, options_json(options), created, options.org)


def _frame_rows(
    c: sqlite3.Connection, frame: BatchFrame, seq: int, uid: int, jid: int
) -> tuple[int, int]:
    """One request's users as one deferred record (:mod:`pipeline.journal.blobs`), its uids
    and jids reserved; returns (users, jobs) reserved. No user or job row is written: the
    batch's first writer materialises them."""
    return write_blob(c, frame.users, seq, uid, jid)


def _typed_rows(
    c: sqlite3.Connection, batch: PlannedBatch, seq: int, uid: int, jid: int
) -> tuple[int, int]:
    """One request's users and jobs, user by user; returns (users, jobs) written."""
    users: list[tuple[Any, ...]] = []
    jobs: list[tuple[int, int, str]] = []
    for u in batch.users:
        uid += 1
        ids = [[i.namespace, i.value, i.type] for i in u.request.identities]
        users.append(
            (
                uid, u.user_key, u.subject_key, u.part, seq, orjson.dumps(ids).decode(),
                orjson.dumps(u.input_rows).decode(), u.received_at,
            )
        )  # fmt: skip
        for action in u.request.actions:
            jid += 1
            jobs.append((jid, uid, action.value))
    c.executemany(_USER_SQL, users)
    c.executemany(_JOB_SQL, jobs)
    return len(users), len(jobs)


def _write_skipped(c: sqlite3.Connection, table: pa.Table) -> None:
    if not table.num_rows:
        return
    columns = [table.column(n).to_pylist() for n in _SKIPPED_COLUMNS]
    columns[6] = [orjson.dumps(rows).decode() for rows in columns[6]]
    names = ", ".join(_SKIPPED_COLUMNS)
    c.executemany(
        f"INSERT INTO skipped ({names}) VALUES ({', '.join('?' * len(_SKIPPED_COLUMNS))})",
        zip(*columns, strict=True),
    )
