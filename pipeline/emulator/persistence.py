"""Optional SQLite persistence: jobs, tokens and the clock offset survive an emulator restart.

Jobs never change after creation (their status is derived from the clock), so persistence is
append-only: one row per job, written in the same call that creates them. A request row is
keyed by the seq of its first job, not by its ``requestId``: callers may supply their own
``requestId`` and reuse it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from .backend import PrivacyBackend
from .simulation import Simulator
from .store import Identity, Job, Request, User

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    rkey INTEGER PRIMARY KEY, request_id TEXT NOT NULL, org_id TEXT NOT NULL,
    regulation TEXT NOT NULL, submitted_by TEXT NOT NULL, products TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY, job_id TEXT NOT NULL UNIQUE, rkey INTEGER NOT NULL,
    user_key TEXT NOT NULL, user_ids TEXT NOT NULL, action TEXT NOT NULL, packed BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, client_id TEXT, expires_at REAL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
"""
# Version 1 keyed requests by requestId, which the service always generated then.
_FROM_V1 = """
ALTER TABLE requests RENAME TO requests_v1;
ALTER TABLE jobs RENAME TO jobs_v1;
"""
_COPY_V1 = """
INSERT INTO requests SELECT (SELECT min(seq) FROM jobs_v1 j WHERE j.request_id = r.request_id),
    r.* FROM requests_v1 r WHERE EXISTS (SELECT 1 FROM jobs_v1 j WHERE j.request_id = r.request_id);
INSERT INTO jobs SELECT j.seq, j.job_id,
    (SELECT min(seq) FROM jobs_v1 k WHERE k.request_id = j.request_id),
    j.user_key, j.user_ids, j.action, j.packed FROM jobs_v1 j;
DROP TABLE jobs_v1;
DROP TABLE requests_v1;
"""


class SqlitePersistence:
    """Writes every change of a backend to SQLite and restores a backend from it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version == 1:
            self.db.executescript(f"BEGIN; {_FROM_V1} {_SCHEMA} {_COPY_V1} COMMIT;")
        self.db.executescript(_SCHEMA)
        self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def jobs_added(self, jobs: list[Job]) -> None:
        """Record one POST's jobs (and their shared request) in one transaction."""
        if not jobs:
            return
        req = jobs[0].request
        rkey = jobs[0].seq
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    rkey,
                    req.request_id,
                    req.org_id,
                    req.regulation,
                    req.submitted_by,
                    json.dumps(req.products),
                    req.created_at,
                ),
            )
            self.db.executemany(
                "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (j.seq, j.job_id, rkey, j.user.key, json.dumps(j.user.ids),
                     j.action, j.packed)
                    for j in jobs
                ],
            )  # fmt: skip

    def token_issued(self, token: str, client_id: str, expires_at: float) -> None:
        """Record a bearer token so that it stays valid across a restart."""
        self.db.execute(
            "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?)", (token, client_id, expires_at)
        )

    def clock_moved(self, offset_s: float) -> None:
        """Record the clock offset."""
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('clock_offset_s', ?)", (offset_s,))

    def cleared(self) -> None:
        """Forget all jobs (on reset); tokens stay."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM jobs")
            self.db.execute("DELETE FROM requests")
            self.db.execute("DELETE FROM meta")

    def restore(self, backend: PrivacyBackend) -> int:
        """Load jobs, tokens and the clock offset into ``backend``; returns the job count."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'clock_offset_s'").fetchone()
        if row is not None and row[0] > backend.clock.offset_s:
            backend.clock.advance(row[0] - backend.clock.offset_s)
        for token, client_id, expires_at in self.db.execute("SELECT * FROM tokens"):
            if client_id in backend.tokens.clients:
                backend.tokens.restore(token, client_id, expires_at)
        requests: dict[int, Request] = {}
        for rkey, rid, org, regulation, by, products, created in self.db.execute(
            "SELECT * FROM requests"
        ):
            requests[rkey] = Request(rid, org, regulation, by, tuple(json.loads(products)), created)
        count = 0
        for seq, job_id, rkey, key, ids, action, packed in self.db.execute(
            "SELECT * FROM jobs ORDER BY seq"
        ):
            user = User(key, tuple(_identity(i) for i in json.loads(ids)))
            backend.store.add(Job(seq, job_id, requests[rkey], user, action, bytes(packed)))
            count += 1
        return count

    def close(self) -> None:
        """Close the database."""
        self.db.close()


def _identity(raw: list[object]) -> Identity:
    ns, value, id_type, ns_id, deleted = raw
    return (
        str(ns),
        str(value),
        str(id_type),
        ns_id if isinstance(ns_id, int) else None,
        bool(deleted),
    )


def attach_persistence(backend: PrivacyBackend, path: Path) -> SqlitePersistence:
    """Restore ``backend`` from ``path`` and make it record every later change there."""
    persistence = SqlitePersistence(path)
    restored = persistence.restore(backend)
    if restored:
        # Draw new ids from a different stream than the one that made the restored jobs.
        cfg = backend.config
        backend.simulator = Simulator(cfg.simulation, hash((cfg.seed, restored)))
    backend.persistence = persistence
    return persistence
