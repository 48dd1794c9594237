"""SQLite persistence of requests: a caller's requestId may repeat; version 1 files migrate."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pipeline.emulator.backend import PrivacyBackend
from pipeline.emulator.persistence import SCHEMA_VERSION, attach_persistence
from tests.helpers.emulator import frozen_config, payload


def _restored(path: Path) -> PrivacyBackend:
    backend = PrivacyBackend(frozen_config())
    attach_persistence(backend, path)
    return backend


def test_two_requests_sharing_a_callers_request_id_are_restored_apart(tmp_path: Path) -> None:
    path = tmp_path / "emu.sqlite"
    backend = _restored(path)
    client = backend.config.clients[0]
    for regulation in ("gdpr", "ccpa"):
        body = payload(regulation=regulation, prefix=regulation)
        body["requestId"] = "shared-id"
        backend.create_jobs(client, body)
    again = _restored(path)
    jobs = sorted(again.store, key=lambda j: j.seq)
    assert [(j.user.key, j.request.regulation, j.request.request_id) for j in jobs] == [
        ("gdpr0", "gdpr", "shared-id"),
        ("ccpa0", "ccpa", "shared-id"),
    ]


def test_a_version_1_file_is_migrated_with_its_jobs(tmp_path: Path) -> None:
    source = PrivacyBackend(frozen_config())
    created = source.create_jobs(source.config.clients[0], payload(users=2))
    path = tmp_path / "v1.sqlite"
    db = sqlite3.connect(path)
    # the version 1 layout: requests keyed by their (always generated) requestId
    db.executescript(
        "CREATE TABLE requests (request_id TEXT PRIMARY KEY, org_id TEXT NOT NULL,"
        " regulation TEXT NOT NULL, submitted_by TEXT NOT NULL, products TEXT NOT NULL,"
        " created_at REAL NOT NULL);"
        "CREATE TABLE jobs (seq INTEGER PRIMARY KEY, job_id TEXT NOT NULL UNIQUE,"
        " request_id TEXT NOT NULL, user_key TEXT NOT NULL, user_ids TEXT NOT NULL,"
        " action TEXT NOT NULL, packed BLOB NOT NULL);"
        "CREATE TABLE tokens (token TEXT PRIMARY KEY, client_id TEXT, expires_at REAL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value REAL NOT NULL);"
        "PRAGMA user_version = 1;"
    )
    req = next(iter(source.store)).request
    with db:
        db.execute(
            "INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?)",
            (req.request_id, req.org_id, req.regulation, req.submitted_by,
             '["Analytics", "AudienceManager", "Profile"]', req.created_at),
        )  # fmt: skip
        db.executemany(
            "INSERT INTO jobs VALUES (?, ?, ?, ?, '[]', ?, ?)",
            [
                (j.seq, j.job_id, req.request_id, j.user.key, j.action, j.packed)
                for j in source.store
            ],
        )
    db.close()
    migrated = _restored(path)
    assert {j.job_id for j in migrated.store} == {j["jobId"] for j in created["jobs"]}
    assert {j.request.request_id for j in migrated.store} == {created["requestId"]}
    check = sqlite3.connect(path)
    version = check.execute("PRAGMA user_version").fetchone()[0]
    check.close()
    assert version == SCHEMA_VERSION == 2
