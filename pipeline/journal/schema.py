"""The run journal's storage: schema constants, versioned migrations, and the connection.

SQLite in WAL mode with ``synchronous=FULL``: a commit returns only after the WAL is on disk,
so an intent recorded before a POST survives a crash or power loss. ``PRAGMA user_version``
holds the schema version; :func:`migrate` walks a fresh file (version 0) or an older one up to
:data:`SCHEMA_VERSION` and refuses a newer one. Files are created 0600 in a 0700 directory:
the journal holds identity values (needed to resubmit after a crash), never tokens.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import DamagedJournal, JournalError
from ..files import Closing
from .models import NEEDS_DETAILS_SQL, NEEDS_DOWNLOAD_SQL

SCHEMA_VERSION = 10
JOURNAL_FILE = "journal.sqlite"
BUSY_TIMEOUT_MS = 30_000
# Page cache, negative = KiB: 16 MiB in use; 64 MiB while a plan of 200,000 jobs is written.
CACHE_KIB = -16_384
PLAN_CACHE_KIB = -65_536
# Page size of a new journal: 8 KiB pages write a plan of 2M users (B-tree appends, the WAL,
# the checkpoint) about 1.4 times as fast as SQLite's default 4 KiB; an existing file keeps its
# own (SQLite reads it from the file's header).
JOURNAL_PAGE_SIZE = 8192

_SCHEMA_V1: tuple[str, ...] = (
    """CREATE TABLE run (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        run_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        input_path TEXT NOT NULL,
        input_sha256 TEXT NOT NULL,
        input_rows INTEGER NOT NULL,
        rejects_count INTEGER NOT NULL,
        config_digest TEXT NOT NULL,
        settings_json TEXT NOT NULL,
        tool_version TEXT NOT NULL,
        org_id TEXT,
        state TEXT NOT NULL CHECK (state IN ('planned', 'active', 'paused', 'finished')),
        pause_reason TEXT,
        resume_after INTEGER,
        updated_at INTEGER NOT NULL
    )""",
    """CREATE TABLE batch (
        seq INTEGER PRIMARY KEY,
        batch_id TEXT NOT NULL UNIQUE,
        parent_batch_id TEXT,
        regulation TEXT NOT NULL,
        options_json TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN
            ('planned', 'submitting', 'submitted', 'ambiguous', 'reconciled', 'failed')),
        payload_digest TEXT,
        intent_at INTEGER,
        submitted_at INTEGER,
        request_id TEXT,
        error_code TEXT,
        error_message TEXT,
        updated_at INTEGER NOT NULL
    )""",
    "CREATE INDEX batch_by_state ON batch (state, seq)",
    # identities: JSON [[namespace, value, type], ...]; needed to resubmit, never logged
    """CREATE TABLE user (
        uid INTEGER PRIMARY KEY,
        user_key TEXT NOT NULL UNIQUE,
        subject_key TEXT NOT NULL,
        part INTEGER NOT NULL,
        batch_seq INTEGER NOT NULL REFERENCES batch (seq),
        identities TEXT NOT NULL,
        input_rows TEXT NOT NULL,
        received_at TEXT
    )""",
    "CREATE INDEX user_by_batch ON user (batch_seq)",
    """CREATE TABLE job (
        jid INTEGER PRIMARY KEY,
        uid INTEGER NOT NULL REFERENCES user (uid),
        action TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 1,
        parent_jid INTEGER REFERENCES job (jid),
        job_id TEXT,
        state TEXT NOT NULL CHECK (state IN ('pending', 'submitted', 'processing',
            'complete', 'error', 'downloaded', 'failed', 'accepted')),
        submitted_at INTEGER,
        updated_at INTEGER,
        completed_at INTEGER,
        details_at INTEGER,
        has_result INTEGER NOT NULL DEFAULT 0,
        products_total INTEGER NOT NULL DEFAULT 0,
        products_complete INTEGER NOT NULL DEFAULT 0,
        products_error INTEGER NOT NULL DEFAULT 0,
        result_path TEXT,
        result_sha256 TEXT,
        error_code TEXT,
        error_message TEXT,
        UNIQUE (uid, action)
    )""",
    # partial: the 200,000 pending jobs of a fresh plan have no id and cost no index entry
    "CREATE UNIQUE INDEX job_by_id ON job (job_id) WHERE job_id IS NOT NULL",
    "CREATE INDEX job_by_state ON job (state)",
    "CREATE INDEX job_by_parent ON job (parent_jid) WHERE parent_jid IS NOT NULL",
    # the poller's two work queues, each round: small partial indexes, not table scans
    f"CREATE INDEX job_needs_details ON job (completed_at, jid) WHERE {NEEDS_DETAILS_SQL}",
    f"CREATE INDEX job_needs_download ON job (jid) WHERE {NEEDS_DOWNLOAD_SQL}",
    """CREATE TABLE product (
        job_id TEXT NOT NULL,
        product TEXT NOT NULL,
        status TEXT NOT NULL,
        response_code TEXT,
        message TEXT,
        processed_date INTEGER,
        retry_count INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (job_id, product)
    ) WITHOUT ROWID""",
    """CREATE TABLE api_call (
        endpoint TEXT NOT NULL,
        status TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (endpoint, status)
    ) WITHOUT ROWID""",
)


def _rebuilt(table: str, create: str, old: str, new: str, indexes: Sequence[str]) -> list[str]:
    """The steps that rebuild ``table`` with ``old`` in its definition replaced by ``new`` (a
    wider CHECK, a constraint moved to an index: SQLite cannot alter either): create the new
    table, copy the rows, drop the old one (and its indexes), rename, re-index."""
    if old not in create:
        raise AssertionError(f"{table}: the text to replace is not in its schema")
    wide = create.replace(old, new).replace(f"CREATE TABLE {table} (", f"CREATE TABLE {table}_v2 (")
    return [
        wide,
        f"INSERT INTO {table}_v2 SELECT * FROM {table}",
        f"DROP TABLE {table}",
        f"ALTER TABLE {table}_v2 RENAME TO {table}",
        *indexes,
    ]


# v2: the run's intent (a dry run is a preview, a declined prompt is declined, dsar cancel
# cancels) and the `cancelled` end of batches and jobs that will never be submitted.
_SCHEMA_V2: tuple[str, ...] = (
    """ALTER TABLE run ADD COLUMN intent TEXT NOT NULL DEFAULT 'live'
        CHECK (intent IN ('live', 'preview', 'declined', 'cancelled'))""",
    "ALTER TABLE run ADD COLUMN stop_polling INTEGER NOT NULL DEFAULT 0",
    # a run left by an older dsar's dry run or declined prompt must not be submitted now either
    "UPDATE run SET intent = 'preview' WHERE pause_reason = 'dry_run'",
    "UPDATE run SET intent = 'declined', pause_reason = 'declined'"
    " WHERE pause_reason = 'not_confirmed'",
    *_rebuilt("batch", _SCHEMA_V1[1], "'failed')", "'failed', 'cancelled')", _SCHEMA_V1[2:3]),
    *_rebuilt(
        "job",
        _SCHEMA_V1[5],
        "'failed', 'accepted')",
        "'failed', 'accepted', 'cancelled')",
        _SCHEMA_V1[6:11],
    ),
)
# v3: what a planning needs to start again after a kill (the plan itself is one transaction)
_PLANNING_V3: tuple[str, ...] = (
    """CREATE TABLE planning (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        run_id TEXT NOT NULL,
        input_path TEXT NOT NULL,
        input_sha256 TEXT NOT NULL,
        settings_json TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        dry_run INTEGER NOT NULL DEFAULT 0,
        asks INTEGER NOT NULL DEFAULT 1
    )""",
)

# v4: the canary's verdict (see pipeline.journal.canary); no row while no canary has been sent
_CANARY_V4: tuple[str, ...] = (
    """CREATE TABLE canary (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        users INTEGER NOT NULL,
        max_error REAL NOT NULL,
        wait_s REAL NOT NULL,
        state TEXT NOT NULL CHECK (state IN
            ('waiting', 'passed', 'failed', 'timed_out', 'released')),
        started_at INTEGER NOT NULL,
        decided_at INTEGER,
        released_at INTEGER,
        jobs INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        still_open INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
    )""",
)

# v5: dedupe across runs. The jobs planning left out because an earlier run of the workspace
# submitted or will submit them (status `skipped`, reason DUPLICATE, with that run's id and
# its job's id, none while that run has not sent the job yet), and
# whether the planning deduped at all (`dsar run --no-dedupe`), for a planning done again.
_SKIPPED_V5: tuple[str, ...] = (
    """CREATE TABLE skipped (
        sid INTEGER PRIMARY KEY,
        subject_key TEXT NOT NULL,
        user_key TEXT,
        part INTEGER NOT NULL,
        action TEXT NOT NULL,
        regulation TEXT NOT NULL,
        received_at TEXT,
        input_rows TEXT NOT NULL,
        previous_run_id TEXT NOT NULL,
        previous_job_id TEXT
    )""",
    "ALTER TABLE planning ADD COLUMN dedupe INTEGER NOT NULL DEFAULT 1",
)

# v6: data minimisation (dsar purge): when the identities were scrubbed, when each result ZIP
# was removed, and one record per purge with the sha256 and size of every file it removed;
# and the plaintext sha256 of a result stored encrypted ([results] encrypt_to)
_PURGE_V6: tuple[str, ...] = (
    "ALTER TABLE run ADD COLUMN identities_purged_at INTEGER",
    "ALTER TABLE job ADD COLUMN result_purged_at INTEGER",
    "ALTER TABLE job ADD COLUMN result_plain_sha256 TEXT",
    """CREATE TABLE purge (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        what TEXT NOT NULL CHECK (what IN ('results', 'identities')),
        files TEXT NOT NULL
    )""",
)

# v7: several orgs in one run ([[orgs]]): the org whose client sends each batch (the name of
# its [[orgs]] table; 'default' for a single-org run and every batch planned before v7)
_ORG_V7: tuple[str, ...] = ("ALTER TABLE batch ADD COLUMN org TEXT NOT NULL DEFAULT 'default'",)

# v8: how many jobs each settled POST created (the ledger's reservations are settled from it):
# set with the transition that settles the batch (submitted, reconciled, deferred, failed);
# NULL on batches settled before v8, which hold no named reservation
_CREATED_V8: tuple[str, ...] = ("ALTER TABLE batch ADD COLUMN jobs_created INTEGER",)

# v9: the user key's uniqueness is a named index (it was the table's UNIQUE constraint, whose
# index SQLite cannot drop): a plan drops it while it writes its rows, in random key order,
# and builds it again by one sort at the end (pipeline.journal.planning)
_USER_KEY_V9: tuple[str, ...] = tuple(
    _rebuilt(
        "user",
        _SCHEMA_V1[3],
        "user_key TEXT NOT NULL UNIQUE",
        "user_key TEXT NOT NULL",
        [_SCHEMA_V1[4], "CREATE UNIQUE INDEX user_by_key ON user (user_key)"],
    )
)

# v10: deferred rows (pipeline.journal.blobs): a columnar plan stores each batch's users as one
# compressed record, with the uid and jid ranges reserved for them, instead of its user and job
# rows; a writer that touches the batch materialises the rows first. Older journals hold rows
# only: the table starts empty.
_PLAN_USERS_V10: tuple[str, ...] = (
    """CREATE TABLE plan_users (
        seq INTEGER PRIMARY KEY REFERENCES batch (seq),
        users INTEGER NOT NULL,
        jobs INTEGER NOT NULL,
        uid_first INTEGER NOT NULL,
        jid_first INTEGER NOT NULL,
        data BLOB NOT NULL
    )""",
)

# MIGRATIONS[n] takes a file from version n to n + 1; version 0 is an empty file.
MIGRATIONS: Mapping[int, Sequence[str]] = {
    0: _SCHEMA_V1,
    1: _SCHEMA_V2,
    2: _PLANNING_V3,
    3: _CANARY_V4,
    4: _SKIPPED_V5,
    5: _PURGE_V6,
    6: _ORG_V7,
    7: _CREATED_V8,
    8: _USER_KEY_V9,
    9: _PLAN_USERS_V10,
}


def migrate(
    conn: sqlite3.Connection,
    *,
    target: int = SCHEMA_VERSION,
    migrations: Mapping[int, Sequence[str]] = MIGRATIONS,
) -> int:
    """Bring the file up to ``target``, one version per transaction; returns the old version.

    Safe when several processes open the same file at once: the version is read inside the
    write transaction, so only one of them applies each step. A file newer than ``target``
    raises :class:`JournalError` (written by a newer dsar).
    """
    start: int | None = None
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            start = current if start is None else start
            if current > target:
                raise JournalError(f"schema version {current} is newer than this dsar ({target})")
            if current == target:
                conn.execute("COMMIT")
                return start
            steps = migrations.get(current)
            if steps is None:
                raise JournalError(f"no migration from schema version {current}")
            for statement in steps:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {current + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if needed and make it 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def open_database(
    path: Path,
    *,
    target: int = SCHEMA_VERSION,
    migrations: Mapping[int, Sequence[str]] = MIGRATIONS,
    page_size: int | None = None,
) -> sqlite3.Connection:
    """Open the SQLite file at ``path`` at schema version ``target``, creating it if absent
    (with pages of ``page_size`` bytes, default SQLite's).

    A new file is built beside ``path`` (0600, WAL, schema) and linked into place, so two
    processes creating the same file at once never see, or fight over, a half-made one.
    """
    try:
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
            conn = connect(tmp, page_size=page_size)
            try:
                migrate(conn, target=target, migrations=migrations)
            finally:
                conn.close()
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
            finally:
                tmp.unlink()
        conn = connect(path)
    except OSError as exc:
        raise JournalError(f"{path.name}: cannot create ({exc.strerror})") from None
    try:
        migrate(conn, target=target, migrations=migrations)
    except sqlite3.Error as exc:
        conn.close()
        raise _open_error(path, "cannot migrate", exc) from None
    except JournalError:
        conn.close()
        raise
    return conn


def connect(path: Path, *, page_size: int | None = None) -> sqlite3.Connection:
    """Open (creating 0600 if absent) the SQLite file at ``path`` with the journal's pragmas.

    Autocommit mode: transactions are explicit (``BEGIN IMMEDIATE`` ... ``COMMIT``).
    ``page_size`` applies to a new, empty file only.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        if page_size is not None:
            conn.execute(f"PRAGMA page_size = {int(page_size)}")  # before WAL and any table
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise JournalError(f"{path.name}: cannot switch to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute(f"PRAGMA cache_size = {CACHE_KIB}")
    except (OSError, sqlite3.Error) as exc:
        raise _open_error(path, "cannot open", exc) from None
    return conn


def _open_error(path: Path, doing: str, exc: BaseException) -> JournalError:
    """:class:`DamagedJournal` when SQLite finds the file damaged (not a database, malformed);
    a plain :class:`JournalError` otherwise (locked, no permission: the file may be sound)."""
    if type(exc) is sqlite3.DatabaseError:
        return DamagedJournal(str(path), str(exc))
    return JournalError(f"{path}: {doing} ({exc})")


class JournalStore(Closing):
    """A journal connection with one lock and explicit short write transactions.

    Thread-safe: every public call holds the lock for its whole transaction, so the runner may
    call from worker threads (``asyncio.to_thread``) as well as from the event loop.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self.path = path

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE, COMMIT on success, ROLLBACK on any error."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise JournalError(f"journal is not writable ({exc})") from None
            try:
                yield self._conn
            except sqlite3.IntegrityError as exc:
                self._conn.execute("ROLLBACK")
                # the constraint name only: values may be user keys
                raise JournalError(f"journal constraint failed: {_constraint(exc)}") from None
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read (one snapshot) under the lock."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read-only second connection on one WAL snapshot, for long streaming reads.

        Writers are not blocked while a report streams 200,000 rows out of it.
        """
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("BEGIN")
            yield conn
        finally:
            conn.close()

    def close(self) -> None:
        """Close the connection; later calls raise ``sqlite3.ProgrammingError``."""
        with self._lock:
            self._conn.close()


def _constraint(exc: sqlite3.IntegrityError) -> str:
    text = str(exc)
    # "UNIQUE constraint failed: user.user_key" names columns, never values
    return text if "constraint failed" in text else "integrity"
