"""The workspace registry: every job any run of the workspace submitted, for dedupe across runs.

``WORKSPACE/registry.sqlite`` (WAL, ``synchronous=FULL``, schema versioned with
``PRAGMA user_version`` like the journal and the ledger) holds one row per submitted job: the
subject's *fingerprint* (a keyed 64-bit hash of its subject key under ``DSAR_KEY_SECRET``,
:func:`pipeline.keys.fingerprints`; a key derived from the identities stands for the identity
set; never a raw value), the action, the regulation, the org, the run id and job id, when it
was submitted and finished, and its status (``open``, ``complete``, ``error``).

SQLite cannot commit two WAL databases atomically (with WAL, a transaction over attached
databases is atomic per database, not across them: sqlite.org/lang_attach.html). So each run's
journal stays the source of truth and the registry is a *derived index*: a row is written only
after the journal commit that recorded the job (:meth:`Registry.sync_run` reads committed
journal state), and :meth:`Registry.catch_up`, at the start of every run and resume (before
dedupe), brings it level with every run journal of the workspace (idempotent upserts keyed by
run id and job id). Each run keeps a high-water mark (its journal's count of jobs with an id
and of finished ones; both only grow) so that an unchanged journal costs one aggregate query.
After any crash the registry therefore never holds a job its journal lacks, and the next start
makes them equal.

Every sync that changed rows also writes ``WORKSPACE/registry.blocking.arrow``: the jobs that
may block (not in error) as an Arrow file stamped with the registry's write generation, so that
the next planning reads columns instead of a million SQLite rows (a stale, missing or damaged
file is rebuilt from SQLite). :meth:`Registry.blocklist` loads what blocks a new submission
(an earlier job still open, or complete within ``job.cooldown_days`` of the injected clock's
now; ``error`` never blocks; any one of several blocking jobs may be named as the previous
one) as the columnar :class:`~pipeline.input.dedupe.Blocklist` that planning applies.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc

from ..errors import DamagedJournal, JournalError
from ..files import Closing, publish, temp_path
from ..input.dedupe import BlockingChunk, Blocklist
from ..keys import fingerprints
from .blobs import has_blobs_table, records
from .models import to_us
from .schema import JOURNAL_FILE, make_private_dir, open_database

log = logging.getLogger("dsar.registry")

# (job id or pending:<row>, subject key, action, regulation, state, submitted, completed,
# the batch's org name)
JobRow = tuple[str, str, str, str, str, int, int | None, str]

REGISTRY_FILE = "registry.sqlite"
REGISTRY_VERSION = 2

_MIGRATIONS = {
    0: (
        """CREATE TABLE submission (
            run_id TEXT NOT NULL,
            job_id TEXT NOT NULL,
            fingerprint INTEGER NOT NULL,
            action TEXT NOT NULL,
            regulation TEXT NOT NULL,
            org TEXT NOT NULL,
            submitted_at INTEGER NOT NULL,
            finished_at INTEGER,
            status TEXT NOT NULL CHECK (status IN ('open', 'complete', 'error')),
            -- clustered by what dedupe groups by: loading the blocklist needs no sort
            PRIMARY KEY (action, regulation, run_id, job_id)
        ) WITHOUT ROWID""",
        "CREATE UNIQUE INDEX submission_by_job ON submission (run_id, job_id)",
        # the per-run high-water mark at the last sync: jobs with an id, finished ones, and
        # jobs a live run has planned but not sent yet
        """CREATE TABLE synced (
            run_id TEXT PRIMARY KEY,
            run_dir TEXT NOT NULL,
            submitted INTEGER NOT NULL,
            finished INTEGER NOT NULL,
            pending INTEGER NOT NULL
        ) WITHOUT ROWID""",
        # bumped by every write: the blocking snapshot file says which generation it holds
        """CREATE TABLE generation (
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            n INTEGER NOT NULL
        )""",
        "INSERT INTO generation VALUES (1, 0)",
    ),
    # v2: each job's own org (its batch's org's IMS org id), no longer its run's: the rows
    # are derived, so they go and every run's next sync (its mark reset) records them again
    1: (
        "DELETE FROM submission",
        "UPDATE synced SET submitted = -1",
        "UPDATE generation SET n = n + 1",
    ),
}
SNAPSHOT_FILE = "registry.blocking.arrow"
_OPEN_UNTIL = 2**63 - 1  # an open job blocks whatever the cooldown

# A job a live run planned and has not sent yet (paused at the daily cap, held by its canary,
# stopped by --max-runtime) is registered too, as open, under this prefix and its journal row
# number: it will be submitted by that run's next resume, so a later run must not plan it
# again. Its row goes when the job is sent (then it has a job id) or cancelled. A preview (dry
# run) or a declined run registers nothing: only an explicit act would ever send it.
PENDING_PREFIX = "pending:"

# journal job state -> registry status
_STATUS = {
    "pending": "open",
    "submitted": "open",
    "processing": "open",
    "complete": "complete",
    "downloaded": "complete",
    "error": "error",
}
_FINISHED = "('complete', 'downloaded', 'error')"
_LIVE_PENDING = "j.job_id IS NULL AND j.state = 'pending' AND (SELECT intent FROM run) = 'live'"
_SIGNATURE_SQL = (
    "SELECT count(j.job_id),"
    f" count(CASE WHEN j.job_id IS NOT NULL AND j.state IN {_FINISHED} THEN 1 END),"
    f" count(CASE WHEN {_LIVE_PENDING} THEN 1 END) FROM job j"
)
_JOBS_SQL = (
    f"SELECT coalesce(j.job_id, '{PENDING_PREFIX}' || j.jid), u.subject_key, j.action,"
    " b.regulation, j.state, coalesce(j.submitted_at, (SELECT created_at FROM run)),"
    " j.completed_at, b.org FROM job j JOIN user u ON u.uid = j.uid"
    " JOIN batch b ON b.seq = u.batch_seq"
    f" WHERE j.job_id IS NOT NULL OR ({_LIVE_PENDING})"
)

# deferred records (pipeline.journal.blobs) of a live run's planned batches: their jobs are
# registered as `pending:<jid>` exactly as their rows will be once materialised
_LIVE_RECORDS = "WHERE b.state = 'planned' AND (SELECT intent FROM run) = 'live'"
_BLOB_PENDING_SQL = (
    "SELECT coalesce(sum(p.jobs), 0) FROM plan_users p JOIN batch b ON b.seq = p.seq"
    f" {_LIVE_RECORDS}"
)


def _pending_of_records(journal: sqlite3.Connection) -> Iterator[JobRow]:
    """The ``pending:<jid>`` registry rows of the live deferred records' jobs."""
    (created,) = journal.execute("SELECT created_at FROM run").fetchone()
    for record in records(journal, _LIVE_RECORDS, (), "b.regulation, b.org"):
        regulation, org = record.batch
        owner, actions = record.jobs()
        subjects = record.users.column("subject_key").take(pa.array(owner)).to_pylist()
        for i, (subject, action) in enumerate(zip(subjects, actions.tolist(), strict=True)):
            jid = record.jid_first + i
            yield (
                f"{PENDING_PREFIX}{jid}",
                subject,
                action,
                regulation,
                "pending",
                created,
                None,
                org,
            )


class Registry(Closing):
    """The registry of one workspace; safe to share between processes (short transactions).

    Open with :meth:`open`; use as a context manager or call :meth:`close`.
    """

    def __init__(self, conn: sqlite3.Connection, workspace: Path) -> None:
        self._conn = conn
        self.workspace = workspace

    @classmethod
    def open(cls, workspace: Path) -> Registry:
        """Open (creating it 0600 in a 0700 workspace) the registry of ``workspace``."""
        make_private_dir(workspace)
        conn = open_database(
            workspace / REGISTRY_FILE, target=REGISTRY_VERSION, migrations=_MIGRATIONS
        )
        return cls(conn, workspace)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    # -- catching up with the journals ------------------------------------------------------

    def catch_up(self, secret: bytes) -> int:
        """Sync every run journal of the workspace; returns the rows added or changed. A
        journal that cannot be read is skipped with a warning (its run's own commands say
        why)."""
        changed = 0
        dirs = {p.parent.resolve() for p in self.workspace.glob(f"*/{JOURNAL_FILE}")}
        for (known,) in self._conn.execute("SELECT run_dir FROM synced").fetchall():
            if (Path(known) / JOURNAL_FILE).exists():
                dirs.add(Path(known))  # a run directory outside the workspace (--run-dir)
        for run_dir in sorted(dirs):
            try:
                changed += self.sync_run(run_dir, secret)
            except (DamagedJournal, JournalError, sqlite3.Error) as exc:
                log.warning("registry: %s skipped (%s)", run_dir.name, _short(exc))
        return changed

    def sync_run(self, run_dir: Path, secret: bytes) -> int:
        """Bring the registry level with the committed state of ``run_dir``'s journal;
        returns the rows added or changed (0 when its high-water mark did not move)."""
        journal = _read_only(run_dir / JOURNAL_FILE)
        try:
            journal.execute("BEGIN")  # one snapshot for the mark and the rows
            run = journal.execute("SELECT run_id, org_id, settings_json FROM run").fetchone()
            if run is None:
                return 0  # killed while planning: nothing submitted
            run_id, orgs = str(run[0]), _org_ids(run[2], run[1])
            blobs = has_blobs_table(journal)
            mark = tuple(journal.execute(_SIGNATURE_SQL).fetchone())
            if blobs:  # the live pending jobs of deferred records count as their rows would
                (deferred,) = journal.execute(_BLOB_PENDING_SQL).fetchone()
                mark = (*mark[:2], mark[2] + deferred)
            seen = self._conn.execute(
                "SELECT submitted, finished, pending FROM synced WHERE run_id = ?", (run_id,)
            ).fetchone()
            if seen is not None and tuple(seen) == mark:
                return 0
            rows = journal.execute(_JOBS_SQL).fetchall()
            if blobs:
                rows.extend(_pending_of_records(journal))
        finally:
            journal.close()
        return self._apply(run_id, str(run_dir.resolve()), orgs, mark, rows, secret)

    def _apply(
        self,
        run_id: str,
        run_dir: str,
        orgs: Callable[[str], str],
        mark: tuple[int, int, int],
        rows: list[JobRow],
        secret: bytes,
    ) -> int:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            known = dict(
                c.execute("SELECT job_id, status FROM submission WHERE run_id = ?", (run_id,))
            )
            fresh = [r for r in rows if r[0] not in known]
            current = {r[0] for r in rows}
            gone = [(run_id, j) for j in known if j.startswith(PENDING_PREFIX) and j not in current]
            moved = [
                (_STATUS[r[4]], r[6], run_id, r[0])
                for r in rows
                if r[0] in known and known[r[0]] != _STATUS[r[4]]
            ]
            if fresh:
                keys = pa.array([r[1] for r in fresh], pa.string())
                fps = fingerprints(keys, secret).tolist()
                c.executemany(
                    "INSERT INTO submission VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (run_id, job_id) DO UPDATE SET status = excluded.status,"
                    " finished_at = excluded.finished_at",
                    [
                        (run_id, r[0], fp, r[2], r[3], orgs(r[7]), r[5], _finished(r), status)
                        for r, fp in zip(fresh, fps, strict=True)
                        for status in (_STATUS[r[4]],)
                    ],
                )
            c.executemany(
                "UPDATE submission SET status = ?, finished_at = ? WHERE run_id = ? AND job_id = ?",
                moved,
            )
            c.executemany("DELETE FROM submission WHERE run_id = ? AND job_id = ?", gone)
            c.execute(
                "INSERT OR REPLACE INTO synced VALUES (?, ?, ?, ?, ?)", (run_id, run_dir, *mark)
            )
            if fresh or moved or gone:
                c.execute("UPDATE generation SET n = n + 1")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        if fresh or moved or gone:
            self.write_snapshot()
        return len(fresh) + len(moved) + len(gone)

    # -- what blocks a new submission -------------------------------------------------------

    def blocklist(
        self,
        *,
        org: str | None = None,
        now: datetime,
        cooldown_days: int,
        secret: bytes,
        plan_orgs: Sequence[str | None] | None = None,
    ) -> Blocklist:
        """The earlier jobs that block a new one: still open, or complete at or after
        ``now - cooldown_days``, each blocking only the plan's users of its own org.
        ``plan_orgs`` is the IMS org id of each org code of the plan (None: any org, a dry run
        without credentials); ``org`` stands for ``plan_orgs=(org,)``, a single-org plan."""
        wanted = tuple(plan_orgs) if plan_orgs else (org,)
        table = self._blocking()
        cutoff = to_us(now - timedelta(days=cooldown_days))
        keep = table.column("until").to_numpy() >= cutoff
        if None not in wanted:  # the jobs of other orgs block nothing of this plan
            orgs = table.column("org").combine_chunks()
            names = np.asarray(orgs.dictionary.to_pylist(), dtype=object)
            keep &= np.isin(
                orgs.indices.to_numpy(),
                np.flatnonzero(np.isin(names, [o for o in wanted if o is not None])),
            )
        if not keep.all():  # most often every job still blocks: no copy
            table = table.filter(pa.array(keep))
        chunks = []
        group = table.column("group").to_numpy()
        starts = np.flatnonzero(np.diff(group, prepend=-1))
        for start, stop in zip(starts, [*starts[1:], len(group)][: len(starts)], strict=True):
            row = table.slice(int(start), 1)
            chunks.append(
                BlockingChunk(
                    action=str(row.column("action")[0].as_py()),
                    regulation=str(row.column("regulation")[0].as_py()),
                    run_id=str(row.column("run_id")[0].as_py()),
                    fingerprints=table.column("fingerprint")[start:stop].to_numpy(),
                    job_ids=table.column("job_id")[start:stop].combine_chunks(),
                    org=str(row.column("org")[0].as_py()),
                )
            )
        return Blocklist.build(chunks, secret=secret, plan_orgs=wanted)

    def _blocking(self) -> pa.Table:
        """Every job that may block (not in error), one row each, grouped by (action,
        regulation, run id, org): from the snapshot file when it holds the registry's current
        generation, else from SQLite (and the snapshot is written again)."""
        path = self.workspace / SNAPSHOT_FILE
        (generation,) = self._conn.execute("SELECT n FROM generation").fetchone()
        try:
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_file(source).read_all()
            meta = table.schema.metadata or {}
            if int(meta.get(b"generation", b"-1")) == generation:
                return table
        except (OSError, pa.ArrowException, ValueError):
            pass  # absent or unreadable: rebuilt below
        return self.write_snapshot()

    def write_snapshot(self) -> pa.Table:
        """Write ``registry.blocking.arrow`` (atomically) from the registry and return it.
        Called after every sync that changed something, so that the next planning reads a
        columnar file instead of a million SQLite rows."""
        # The table is clustered by (action, regulation, run id), so the groups cost little
        # sorting (a run of several orgs splits into one group per org);
        # each group's columns are concatenated inside SQLite and split by Arrow: a million
        # rows cost no Python object each.
        self._conn.execute("BEGIN")
        try:
            (generation,) = self._conn.execute("SELECT n FROM generation").fetchone()
            rows = self._conn.execute(
                "SELECT action, regulation, run_id, org, count(*),"
                " group_concat(fingerprint, char(31)), group_concat(job_id, char(31)),"
                f" group_concat(CASE status WHEN 'open' THEN {_OPEN_UNTIL}"
                " ELSE coalesce(finished_at, 0) END, char(31))"
                " FROM submission WHERE status != 'error'"
                " GROUP BY action, regulation, run_id, org"
            ).fetchall()
        finally:
            self._conn.execute("COMMIT")
        sizes = [int(r[4]) for r in rows]

        def repeated(i: int) -> pa.Array:
            values = pa.array([r[i] for r in rows], pa.string())
            return pa.DictionaryArray.from_arrays(
                pa.array(np.repeat(np.arange(len(rows), dtype=np.int32), sizes)), values
            )

        table = pa.table(
            {
                "group": pa.array(np.repeat(np.arange(len(rows), dtype=np.int32), sizes)),
                "action": repeated(0),
                "regulation": repeated(1),
                "run_id": repeated(2),
                "org": repeated(3),
                "fingerprint": _joined(rows, 5).cast(pa.int64()),
                # a job not sent yet has no id to name: null (its run is named)
                "job_id": _no_pending_ids(_joined(rows, 6)),
                "until": _joined(rows, 7).cast(pa.int64()),
            }
        ).replace_schema_metadata({"generation": str(generation)})
        path = self.workspace / SNAPSHOT_FILE
        tmp = temp_path(path)
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.chmod(tmp, 0o600)
        publish(tmp, path)
        return table

    def jobs(self) -> set[tuple[str, str]]:
        """Every registered (run id, job id) of a submitted job: what a consistency check
        compares with the journals (jobs not sent yet: :meth:`pending`)."""
        rows = self._conn.execute(
            "SELECT run_id, job_id FROM submission WHERE job_id NOT LIKE ?", (f"{PENDING_PREFIX}%",)
        )
        return {(r, j) for r, j in rows}

    def pending(self) -> set[tuple[str, str]]:
        """Every registered (run id, ``pending:<row>``) of a job a live run has not sent yet."""
        rows = self._conn.execute(
            "SELECT run_id, job_id FROM submission WHERE job_id LIKE ?", (f"{PENDING_PREFIX}%",)
        )
        return {(r, j) for r, j in rows}


def journal_jobs(run_dir: Path) -> set[tuple[str, str]]:
    """Every (run id, job id) the journal of ``run_dir`` recorded (committed state)."""
    conn = _read_only(run_dir / JOURNAL_FILE)
    try:
        run = conn.execute("SELECT run_id FROM run").fetchone()
        if run is None:
            return set()
        ids = conn.execute("SELECT job_id FROM job WHERE job_id IS NOT NULL").fetchall()
        return {(str(run[0]), str(j)) for (j,) in ids}
    finally:
        conn.close()


def _no_pending_ids(job_ids: pa.Array) -> pa.Array:
    pending = pc.starts_with(job_ids, PENDING_PREFIX)
    return pc.if_else(pending, pa.scalar(None, pa.string()), job_ids)


def _joined(rows: list[Any], column: int) -> pa.Array:
    parts = [_split(r[column]) for r in rows]
    return pa.concat_arrays(parts) if parts else pa.array([], pa.string())


def _split(text: str | None) -> pa.Array:
    if text is None:
        return pa.array([], pa.string())
    return pc.split_pattern(pa.array([text], pa.string()), "\x1f").flatten()


def _org_ids(settings_json: str | None, run_org: str | None) -> Callable[[str], str]:
    """The IMS org id of a batch's org name in a run: its ``[[orgs]]`` table's, or the run's
    org (a single-org run: ``default``)."""
    tables = (orjson.loads(settings_json) if settings_json else {}).get("orgs") or []
    ids = {str(t["name"]): str(t["org_id"]) for t in tables}
    fallback = str(run_org or "")
    return lambda name: ids.get(name, fallback)


def _finished(row: JobRow) -> int | None:
    return row[6] if _STATUS[row[4]] != "open" else None


def _read_only(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
    except sqlite3.DatabaseError as exc:
        raise DamagedJournal(str(path), str(exc)) from None
    return conn


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
