"""Data minimisation in the journal: scrub the identity values, record the removed results.

The journal holds each subject's identity values (``user.identities``) so that a crashed run
can resubmit; once a run is finished they have served their purpose. ``dsar purge``:

- :meth:`PurgeJournal.scrub_identities` replaces every user's identities with an empty list,
  stamps ``run.identities_purged_at`` and adds a ``purge`` record, in one transaction;
- :func:`rewrite_journal` then makes the bytes go: an UPDATE leaves the old values in free
  pages and in the WAL, so the file is copied with ``VACUUM INTO`` to a temporary file in the
  run directory (0600), fsynced, renamed over ``journal.sqlite`` (the directory fsynced) and
  the old ``-wal``/``-shm`` removed; the new file is reopened and checked. The WAL is
  checkpointed and truncated to zero bytes *before* the rename, so an old WAL can never be
  replayed onto the new file; at every instant ``journal.sqlite`` is the old file or the new
  one. A temporary file left by a killed purge is removed by the next one;
- :meth:`PurgeJournal.record_results_purged` stamps ``job.result_purged_at`` and records the
  sha256 and size of every result file removed, before the files are removed.

Keys, statuses, product outcomes, checksums and times are kept: the reports and the hand-off
are rebuilt from them. Mixed into :class:`pipeline.journal.store.Journal`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import orjson

from ..errors import DamagedJournal, JournalError
from ..files import fsync_dir
from .blobs import materialise_all
from .jobs import identity_values, redact
from .models import PurgedFile, to_us
from .schema import BUSY_TIMEOUT_MS, JOURNAL_FILE, JournalStore, connect

SCRUBBED = "[]"  # what a user's identities read once purged
_TEMP_PREFIX = f".{JOURNAL_FILE}.purge."
# users holding identity values: rows not scrubbed, and every user of a deferred record
_IDENTITIES_LEFT_SQL = (
    "SELECT (SELECT count(*) FROM user WHERE identities != ?)"
    " + (SELECT coalesce(sum(users), 0) FROM plan_users)"
)


def purge_temp_path(run_dir: Path) -> Path:
    """The temporary file this process rewrites the journal into (``.NAME.purge.PID.tmp``)."""
    return run_dir / f"{_TEMP_PREFIX}{os.getpid()}.tmp"


def remove_purge_leftovers(run_dir: Path) -> int:
    """Remove the temporary journal copies of killed purges (the caller holds the run lock,
    so no live purge owns one); returns how many."""
    removed = 0
    for path in run_dir.glob(f"{_TEMP_PREFIX}*.tmp"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


class PurgeJournal(JournalStore):
    """The journal's purge records and the identity scrub."""

    def scrub_identities(self, at: datetime) -> bool:
        """Replace every user's identity values with an empty list, in one transaction.

        Messages stored from the service (job, batch and product) are masked against their
        users' identity values once more first, though they were masked when stored. Stamps
        ``run.identities_purged_at`` and records the purge the first time; returns True when
        this call scrubbed anything or stamped the run (False: already done, no change).
        """
        with self._tx() as c:
            materialise_all(c)  # deferred records hold identities too: rows, then scrubbed
            _mask_messages(c)
            cur = c.execute("UPDATE user SET identities = ? WHERE identities != ?", (SCRUBBED,) * 2)
            changed = cur.rowcount > 0
            stamped = c.execute(
                "UPDATE run SET identities_purged_at = ? WHERE identities_purged_at IS NULL",
                (to_us(at),),
            ).rowcount
            if changed or stamped:
                c.execute(
                    "INSERT INTO purge (at, what, files) VALUES (?, 'identities', '[]')",
                    (to_us(at),),
                )
        return changed or bool(stamped)

    def identities_left(self) -> int:
        """How many users still hold identity values."""
        with self._lock:
            (n,) = self._conn.execute(_IDENTITIES_LEFT_SQL, (SCRUBBED,)).fetchone()
        return int(n)

    def record_results_purged(self, files: Sequence[PurgedFile], at: datetime) -> int:
        """Before result files are removed: stamp their jobs' ``result_purged_at`` and record
        the files (sha256, size), in one transaction. A file a killed purge recorded already
        (same path and sha256) is not recorded twice; returns how many were newly recorded."""
        with self._tx() as c:
            known = {
                (f["path"], f["sha256"])
                for (blob,) in c.execute("SELECT files FROM purge WHERE what = 'results'")
                for f in orjson.loads(blob)
            }
            new = [f for f in files if (f.path, f.sha256) not in known]
            # one pass over the jobs (result_path has no index: one UPDATE per file would scan
            # the table once per file)
            c.execute(
                "UPDATE job SET result_purged_at = ? WHERE result_purged_at IS NULL"
                " AND result_path IN (SELECT value FROM json_each(?))",
                (to_us(at), orjson.dumps([f.path for f in files]).decode()),
            )
            if new:
                blob = orjson.dumps(
                    [{"path": f.path, "sha256": f.sha256, "bytes": f.bytes} for f in new]
                )
                c.execute(
                    "INSERT INTO purge (at, what, files) VALUES (?, 'results', ?)",
                    (to_us(at), blob.decode()),
                )
        return len(new)


# (table, key column, message column, the users whose identities its message may echo)
_MESSAGES = (
    ("job", "jid", "error_message", "WHERE uid = (SELECT uid FROM job WHERE jid = ?)"),
    ("batch", "seq", "error_message", "WHERE batch_seq = ?"),
)


def _mask_messages(c: sqlite3.Connection) -> None:
    """Mask, in every stored message, the identity values of the users it is about."""
    for table, key, column, users in _MESSAGES:
        rows = c.execute(f"SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL")
        for row_key, text in rows.fetchall():
            clean = redact(text, identity_values(c, users, (row_key,)))
            if clean != text:
                c.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (clean, row_key))
    rows = c.execute(
        "SELECT p.job_id, p.product, p.message, j.uid FROM product p"
        " JOIN job j ON j.job_id = p.job_id WHERE p.message IS NOT NULL"
    )
    for job_id, product, text, uid in rows.fetchall():
        clean = redact(text, identity_values(c, "WHERE uid = ?", (uid,)))
        if clean != text:
            c.execute(
                "UPDATE product SET message = ? WHERE job_id = ? AND product = ?",
                (clean, job_id, product),
            )


def rewrite_journal(
    run_dir: Path, *, step: Callable[[str], None] = lambda _: None, wait_ms: int = BUSY_TIMEOUT_MS
) -> None:
    """Rewrite ``RUN_DIR/journal.sqlite`` so that deleted values leave no bytes behind.

    The caller holds the run lock and has closed its own connection. ``step`` is called with
    ``"copied"`` (the new file is written and fsynced, the old one untouched) and
    ``"renamed"`` (the new file is in place, the old WAL not yet removed). Raises
    :class:`JournalError` when another process keeps the WAL busy, :class:`DamagedJournal`
    when the new file does not check out. A reader of the old file is waited for up to
    ``wait_ms``.
    """
    path = run_dir / JOURNAL_FILE
    remove_purge_leftovers(run_dir)
    tmp = purge_temp_path(run_dir)
    os.close(
        os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    )  # VACUUM INTO an empty 0600 file
    try:
        conn = connect(path)
        try:
            conn.execute("VACUUM INTO ?", (str(tmp),))
            conn.execute(f"PRAGMA busy_timeout = {int(wait_ms)}")
            # the WAL must hold no frame when the new file takes its name: an old WAL beside a
            # new database would be replayed onto it
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                raise JournalError(
                    f"{path}: another process is reading the journal; run the purge again"
                )
        finally:
            conn.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        step("copied")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(run_dir)
    step("renamed")
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    fsync_dir(run_dir)
    check_rewritten(path)


def check_rewritten(path: Path) -> None:
    """Reopen the journal and check it: SQLite's quick check, and no identity value left."""
    try:
        conn = connect(path)
        try:
            (verdict,) = conn.execute("PRAGMA quick_check").fetchone()
            (left,) = conn.execute(_IDENTITIES_LEFT_SQL, (SCRUBBED,)).fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise DamagedJournal(str(path), f"after the purge's rewrite: {exc}") from None
    if verdict != "ok":
        raise DamagedJournal(str(path), f"after the purge's rewrite: {verdict}")
    if left:
        raise JournalError(f"{path}: {left} users still hold identity values after the purge")
