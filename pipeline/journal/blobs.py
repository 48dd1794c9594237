"""Deferred rows: a planned batch's users and jobs kept as one compressed columnar record.

A plan written from columnar batches (:func:`pipeline.journal.planning.write_plan_rows`) stores,
per batch, its ``batch`` row and ONE ``plan_users`` row (journal v10): the batch's user columns
as an Arrow IPC stream with compressed buffers, and the uid and jid ranges reserved for it (users
numbered from ``uid_first``, jobs from ``jid_first``, in plan order, exactly as the typed writer
numbers its rows). No ``user`` or ``job`` row is written at plan time: 2M users cost a few MB of
blobs instead of 4M B-tree rows and their index sorts.

:func:`materialise` turns a batch's record into its ``user`` and ``job`` rows (byte for byte the
rows the typed writer stores) and deletes the record, inside the caller's transaction: a change
of representation, never of state. Every writer that touches a batch's users or jobs calls it
first (:meth:`pipeline.journal.store.Journal._move_batch`, ``split``, ``load_batch``, the
purge). Only a ``planned`` or ``cancelled`` batch (``dsar cancel`` leaves records: their jobs
read ``cancelled``, with the fields the cancel writes) ever holds a record.

Bulk readers read records without materialising them (a run paused at its cap with 1.9M unsent
users does not pay for their rows at every report): :func:`records` decodes them in jid order,
:meth:`Record.jobs` lays out their jobs as ``job JOIN user`` would list them (the status report,
the registry's ``pending:<jid>`` rows, the canary's counts), and :data:`BLOB_JOBS_BY_STATE`
counts them without decoding. User and job rows written later (retries) are numbered above
every reserved range (:func:`next_ids`).
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ..input.batching import stored_json
from ..input.rules import CANONICAL_ACTIONS

# the cancelled fields RunIntents._cancel_planned writes on a pending job
CANCELLED_CODE = "cancelled"
CANCELLED_MESSAGE = "the run was cancelled before this job was submitted"
_CODEC = pa.Codec("lz4")  # LZ4 frames: measured against zstd and none, see README (multiorg)
_SIZE = struct.Struct("<Q")  # a record's first 8 bytes: its uncompressed stream's size
_KEPT = (
    "subject_key", "part", "user_key", "action", "received_at",
    "identities_json", "input_rows_json", "identities", "input_rows",
)  # fmt: skip
# each action code's jobs, in the order the typed users list them: [first, second or None]
JOB_ACTIONS = np.array(
    [(*a.split("+"), None)[:2] for a in CANONICAL_ACTIONS], dtype=object
).reshape(len(CANONICAL_ACTIONS), 2)
JOBS_PER_CODE = np.array([len(a.split("+")) for a in CANONICAL_ACTIONS], dtype=np.int64)

# the state a record's jobs read in: pending while its batch is planned, else cancelled
BLOB_JOB_STATE = "CASE b.state WHEN 'planned' THEN 'pending' ELSE 'cancelled' END"
_USER_SQL = "INSERT INTO user VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_JOB_SQL = "INSERT INTO job (jid, uid, action, state) VALUES (?, ?, ?, 'pending')"
_CANCELLED_JOB_SQL = (
    "INSERT INTO job (jid, uid, action, state, updated_at, error_code, error_message)"
    " VALUES (?, ?, ?, 'cancelled', ?, ?, ?)"
)


def has_blobs_table(c: sqlite3.Connection) -> bool:
    """Whether the file has the v10 ``plan_users`` table (a read-only reader of an older
    journal, not migrated yet, finds none: every row of it is materialised)."""
    row = c.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'plan_users'"
    ).fetchone()
    return row is not None


def encode(users: pa.Table) -> bytes:
    """The stored record of a batch's users: its kept columns as an Arrow IPC stream,
    compressed whole (:data:`_CODEC`) after 8 bytes of its uncompressed size. One compression
    of the whole stream costs about half what Arrow's per-buffer IPC compression does on
    these small, many-buffered batches, for the same size."""
    present = set(users.column_names)
    names = [n for n in _KEPT if n in present]
    if "identities_json" in names:  # the JSON was built in the merge workers: keep that only
        names = [n for n in names if n not in ("identities", "input_rows")]
    table = users.select(names)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    stream = sink.getvalue()
    compressed: bytes = _CODEC.compress(stream, asbytes=True)
    return _SIZE.pack(stream.size) + compressed


def decode(data: bytes) -> pa.Table:
    """The users table of a stored record."""
    (size,) = _SIZE.unpack_from(data)
    stream = _CODEC.decompress(memoryview(data)[_SIZE.size :], decompressed_size=size)
    return pa.ipc.open_stream(stream).read_all()


def job_layout(actions: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """For each job of users with these action codes, in plan order: the user's index and the
    job's action name."""
    codes = np.asarray(actions.to_numpy(), dtype=np.intp)
    per_user = JOBS_PER_CODE[codes]
    total = int(per_user.sum())
    starts = np.cumsum(per_user) - per_user
    slot = np.arange(total) - np.repeat(starts, per_user)  # 0: first action, 1: second
    owner = np.repeat(np.arange(len(codes)), per_user)
    return owner, JOB_ACTIONS[codes[owner], slot]


def write_blob(
    c: sqlite3.Connection, users: pa.Table, seq: int, uid: int, jid: int
) -> tuple[int, int]:
    """Store batch ``seq``'s users as one record, reserving uids ``uid + 1..`` and jids
    ``jid + 1..``; returns (users, jobs) reserved."""
    n = users.num_rows
    codes = np.asarray(users.column("action").to_numpy(), dtype=np.intp)
    total = int(JOBS_PER_CODE[codes].sum())
    c.execute(
        "INSERT INTO plan_users VALUES (?, ?, ?, ?, ?, ?)",
        (seq, n, total, uid + 1, jid + 1, encode(users)),
    )
    return n, total


@dataclass(frozen=True)
class Record:
    """One stored record, decoded, with its batch's fields that its virtual jobs read."""

    seq: int
    uid_first: int
    jid_first: int
    users: pa.Table
    batch: tuple[Any, ...]  # the extra batch columns the reader asked for

    def jobs(self) -> tuple[np.ndarray, np.ndarray]:
        """(user index, action) of each job, in jid order."""
        return job_layout(self.users.column("action"))


def _records(
    c: sqlite3.Connection, where: str, params: tuple[Any, ...], cols: str
) -> Iterator[Record]:
    extra = f", {cols}" if cols else ""
    rows = c.execute(
        f"SELECT p.seq, p.uid_first, p.jid_first, p.data{extra} FROM plan_users p"
        f" JOIN batch b ON b.seq = p.seq {where} ORDER BY p.jid_first",
        params,
    )
    for row in rows:
        yield Record(int(row[0]), int(row[1]), int(row[2]), decode(row[3]), tuple(row[4:]))


def records(
    c: sqlite3.Connection, where: str = "", params: tuple[Any, ...] = (), cols: str = ""
) -> Iterator[Record]:
    """The stored records (of batches ``b`` matching ``where``), in jid order, with the batch
    columns ``cols``; none when the file has no ``plan_users`` table."""
    if not has_blobs_table(c):
        return iter(())
    return _records(c, where, params, cols)


def materialise(c: sqlite3.Connection, seq: int) -> bool:
    """Write batch ``seq``'s stored record as its ``user`` and ``job`` rows and delete the
    record, in the caller's transaction; False when it has none (already rows)."""
    found = list(_records(c, "WHERE p.seq = ?", (seq,), "b.state, b.updated_at"))
    if not found:
        return False
    _write_rows(c, found[0])
    c.execute("DELETE FROM plan_users WHERE seq = ?", (seq,))
    return True


def deferred_seq(c: sqlite3.Connection, batch_id: str) -> int | None:
    """The seq of batch ``batch_id`` while it is held as a deferred record, else None."""
    row = c.execute(
        "SELECT p.seq FROM plan_users p JOIN batch b ON b.seq = p.seq WHERE b.batch_id = ?",
        (batch_id,),
    ).fetchone()
    return None if row is None else int(row[0])


def materialise_all(c: sqlite3.Connection) -> int:
    """Materialise every stored record; returns how many."""
    seqs = [r[0] for r in c.execute("SELECT seq FROM plan_users ORDER BY seq").fetchall()]
    for seq in seqs:
        materialise(c, seq)
    return len(seqs)


def _write_rows(c: sqlite3.Connection, record: Record) -> None:
    users = record.users
    n = users.num_rows
    identities, input_rows = stored_json(users)
    uids = range(record.uid_first, record.uid_first + n)
    c.executemany(
        _USER_SQL,
        zip(
            uids,
            users.column("user_key").to_pylist(),
            users.column("subject_key").to_pylist(),
            users.column("part").to_pylist(),
            [record.seq] * n,
            identities.to_pylist(),
            input_rows.to_pylist(),
            users.column("received_at").to_pylist(),
            strict=True,
        ),
    )
    owner, actions = record.jobs()
    jids = range(record.jid_first, record.jid_first + len(owner))
    job_uids = (owner + record.uid_first).tolist()
    state, updated_at = record.batch
    if state == "planned":
        c.executemany(_JOB_SQL, zip(jids, job_uids, actions.tolist(), strict=True))
    else:
        c.executemany(
            _CANCELLED_JOB_SQL,
            (
                (jid, uid, action, updated_at, CANCELLED_CODE, CANCELLED_MESSAGE)
                for jid, uid, action in zip(jids, job_uids, actions.tolist(), strict=True)
            ),
        )


def next_ids(c: sqlite3.Connection) -> tuple[int, int]:
    """The highest uid and jid in use or reserved by a stored record (0 when none): new rows
    are numbered above both."""
    (uid, jid) = c.execute(
        "SELECT max(coalesce((SELECT max(uid) FROM user), 0),"
        " coalesce((SELECT max(uid_first + users - 1) FROM plan_users), 0)),"
        " max(coalesce((SELECT max(jid) FROM job), 0),"
        " coalesce((SELECT max(jid_first + jobs - 1) FROM plan_users), 0))"
    ).fetchone()
    return int(uid), int(jid)


# (batch state, org, stored jobs) of every record: counts by state without decoding anything
BLOB_JOBS_BY_STATE = (
    f"SELECT b.org, {BLOB_JOB_STATE}, p.jobs FROM plan_users p JOIN batch b ON b.seq = p.seq"
)
