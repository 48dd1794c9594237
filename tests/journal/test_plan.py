"""The plan: one transaction, durable across reopen and SIGKILL, whole at scale, private files."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import JournalError
from pipeline.journal.models import RunMeta
from pipeline.journal.schema import JOURNAL_FILE, SCHEMA_VERSION, connect, migrate
from pipeline.journal.store import Journal
from pipeline.models import PlannedBatch
from tests.helpers.plans import T0, iter_plan, meta


def test_the_plan_and_run_metadata_survive_a_reopen(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as j:
        assert not j.has_plan
        assert j.write_plan(meta(rows=7), iter_plan(7, per_batch=3), rejects_count=2) == 14
    with Journal.open(tmp_path) as j:
        info = j.run_info()
        assert info.meta == meta(rows=7)
        assert info.rejects_count == 2
        batch = j.load_batch("b00003")
        assert batch == next(b for b in iter_plan(7, per_batch=3) if b.batch_id == "b00003")


def test_the_rejects_count_is_recorded_once_planning_has_counted_them(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as j:
        j.write_plan(meta(), iter_plan(2), rejects_count=0)
        j.set_rejects_count(17)
        assert j.run_info().rejects_count == 17


def test_a_second_plan_is_refused(journal: Journal) -> None:
    with pytest.raises(JournalError, match="already holds a plan"):
        journal.write_plan(meta(), iter_plan(1), rejects_count=0)


def test_a_plan_that_fails_half_way_leaves_no_plan(tmp_path: Path) -> None:
    def broken() -> Iterator[PlannedBatch]:
        yield from iter_plan(50, per_batch=10)
        raise OSError("input vanished")

    with Journal.open(tmp_path) as j:
        with pytest.raises(OSError, match="vanished"):
            j.write_plan(meta(), broken(), rejects_count=0)
        assert not j.has_plan
        assert j.counts().users == 0
        assert j.write_plan(meta(), iter_plan(50, per_batch=10), rejects_count=0) == 100


def test_a_repeated_user_key_is_refused_without_naming_it(tmp_path: Path) -> None:
    plan = [*iter_plan(2, per_batch=1)]
    dup = PlannedBatch(batch_id="b00003", options=plan[0].options, users=plan[0].users)
    with Journal.open(tmp_path) as j:
        with pytest.raises(JournalError, match=r"UNIQUE constraint failed: user\.user_key") as e:
            j.write_plan(meta(), [*plan, dup], rejects_count=0)
        assert "uk-0000000" not in str(e.value)
        assert not j.has_plan


def test_a_settings_snapshot_with_a_secret_is_refused(tmp_path: Path) -> None:
    bad = RunMeta(**{**meta().__dict__, "settings": {"credentials": {"client_secret": "s3"}}})
    with Journal.open(tmp_path) as j, pytest.raises(JournalError, match="secret-named key"):
        j.write_plan(bad, iter_plan(1), rejects_count=0)


def test_run_dir_is_0700_and_journal_files_0600(tmp_path: Path) -> None:
    run_dir = tmp_path / "ws" / "run-1"
    with Journal.open(run_dir) as j:
        j.write_plan(meta(), iter_plan(3), rejects_count=0)
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        for path in run_dir.iterdir():  # journal.sqlite, -wal, -shm
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_the_schema_is_versioned_and_a_newer_file_is_refused(tmp_path: Path) -> None:
    with Journal.open(tmp_path):
        pass
    conn = sqlite3.connect(tmp_path / JOURNAL_FILE)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JournalError, match="newer than this dsar"):
        Journal.open(tmp_path)


def test_migrations_walk_an_old_file_up_one_version_at_a_time(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as j:
        j.write_plan(meta(), iter_plan(2), rejects_count=0)
    conn = connect(tmp_path / JOURNAL_FILE)
    step = {SCHEMA_VERSION: ["ALTER TABLE run ADD COLUMN note TEXT DEFAULT 'v2'"]}
    migrations = {**step, 0: []}
    assert migrate(conn, target=SCHEMA_VERSION + 1, migrations=migrations) == SCHEMA_VERSION
    assert conn.execute("SELECT note, run_id FROM run").fetchone() == ("v2", "run-1")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    with pytest.raises(JournalError, match="no migration from schema version"):
        migrate(conn, target=SCHEMA_VERSION + 2, migrations=migrations)
    conn.close()


def test_journal_connections_use_wal_and_full_sync(tmp_path: Path) -> None:
    conn = connect(tmp_path / JOURNAL_FILE)
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    conn.close()


def test_an_intent_survives_closing_the_connection_before_the_answer(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as j:
        j.write_plan(meta(), iter_plan(4, per_batch=2), rejects_count=0)
        j.record_intent("b00001", "d", T0)
    # the process "crashed" here: reopen, and the batch is found mid-POST
    with Journal.open(tmp_path) as j:
        assert [b.batch_id for b in j.unresolved_batches()] == ["b00001"]
        assert j.recover_submitting(T0) == ["b00001"]
        assert j.batches_to_submit() == ["b00002"]


_KILL_CHILD = """
import sys
from pipeline.journal.store import Journal
from tests.helpers.plans import iter_plan, meta

def plan():
    for n, batch in enumerate(iter_plan(20_000, per_batch=500)):
        if n == 20:
            print("half", flush=True)
            sys.stdin.readline()  # blocks until the parent kills us
        yield batch

Journal.open(__import__("pathlib").Path(sys.argv[1])).write_plan(meta(), plan(), rejects_count=0)
"""


def test_sigkill_during_write_plan_leaves_no_partial_plan(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_CHILD, str(tmp_path)],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"half\n"
        proc.kill()
        assert proc.wait(timeout=30) == -9
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
    with Journal.open(tmp_path) as j:
        assert not j.has_plan
        assert j.counts().users == 0
        assert j.write_plan(meta(), iter_plan(10), rejects_count=0) == 20


@pytest.mark.slow
@pytest.mark.timeout(600)  # a safety net only: its speed is `dsar bench`'s to measure
def test_a_plan_of_100000_subjects_is_written_whole_and_survives_a_reopen(
    tmp_path: Path,
) -> None:
    with Journal.open(tmp_path) as j:
        jobs = j.write_plan(meta(rows=100_000), iter_plan(100_000), rejects_count=0)
        assert jobs == 200_000
    with Journal.open(tmp_path) as j:
        assert j.has_plan
        counts = j.counts()
        assert counts.users == 100_000
        assert counts.jobs["pending"] == 200_000
        assert sum(counts.jobs.values()) == 200_000
        assert counts.batches["planned"] == 100
        assert sum(counts.batches.values()) == 100
        last = j.load_batch("b00100")
        assert last == next(b for b in iter_plan(100_000) if b.batch_id == "b00100")
