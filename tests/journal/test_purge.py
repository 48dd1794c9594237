"""The journal's purge: identity values scrubbed from the rows, then from the file's bytes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pipeline.errors import JournalError
from pipeline.journal.models import PurgedFile
from pipeline.journal.purge import purge_temp_path, rewrite_journal
from pipeline.journal.schema import JOURNAL_FILE, SCHEMA_VERSION, open_database
from pipeline.journal.store import Journal
from tests.helpers.plans import at, email


def _bytes_hold(run_dir: Path, value: str) -> list[str]:
    return [p.name for p in run_dir.iterdir() if p.is_file() and value.encode() in p.read_bytes()]


def test_a_scrubbed_and_rewritten_journal_holds_no_identity_byte(journal: Journal) -> None:
    run_dir = journal.path.parent
    assert _bytes_hold(run_dir, email(1))  # the journal (or its WAL) holds it
    assert journal.scrub_identities(at(10)) is True
    assert journal.identities_left() == 0
    assert _bytes_hold(run_dir, email(1))  # an UPDATE alone leaves the old bytes behind
    journal.close()
    (run_dir / f".{JOURNAL_FILE}.purge.99999999.tmp").write_bytes(b"a killed purge's copy")
    rewrite_journal(run_dir)
    assert _bytes_hold(run_dir, email(1)) == []
    assert sorted(p.name for p in run_dir.iterdir()) == [JOURNAL_FILE]
    with Journal.open(run_dir) as again:
        assert again.run_info().identities_purged_at == at(10)
        assert again.counts().users == 5
        assert [p.what for p in again.purges()] == ["identities"]
        assert again.scrub_identities(at(20)) is False  # done: no second record


def test_results_are_recorded_once_even_when_a_purge_runs_twice(journal: Journal) -> None:
    files = [PurgedFile(path="results/a.zip", sha256="ab" * 32, bytes=10)]
    assert journal.record_results_purged(files, at(1)) == 1
    assert journal.record_results_purged(files, at(2)) == 0
    (record,) = journal.purges()
    assert (record.what, record.at, record.files) == ("results", at(1), tuple(files))


def test_the_rewrite_waits_for_no_reader_and_says_so(journal: Journal) -> None:
    run_dir = journal.path.parent
    journal.scrub_identities(at(1))
    reader = sqlite3.connect(run_dir / JOURNAL_FILE, timeout=0)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM user").fetchone()  # holds a WAL snapshot
    journal.close()
    try:
        with pytest.raises(JournalError, match="another process is reading"):
            rewrite_journal(run_dir, wait_ms=50)
    finally:
        reader.close()
    assert not purge_temp_path(run_dir).exists()


def test_a_version_3_journal_gains_the_purge_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    open_database(path, target=3).close()
    conn = open_database(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 10
    assert "result_purged_at" in {r[1] for r in conn.execute("PRAGMA table_info(job)")}
    assert "identities_purged_at" in {r[1] for r in conn.execute("PRAGMA table_info(run)")}
    assert conn.execute("SELECT * FROM purge").fetchall() == []
    conn.close()


def test_the_scrub_masks_a_stored_message_that_echoes_an_identity(journal: Journal) -> None:
    # as an older dsar might have stored it: the service's message with the value in clear
    journal._conn.execute(
        "UPDATE batch SET error_message = ? WHERE seq = 1", (f"bad user {email(1)}",)
    )
    journal._conn.execute(
        "UPDATE job SET error_message = ? WHERE uid = 2", (f"no data for {email(1)}",)
    )
    journal.scrub_identities(at(1))
    messages = journal._conn.execute(
        "SELECT error_message FROM batch WHERE seq = 1 UNION ALL"
        " SELECT error_message FROM job WHERE uid = 2"
    ).fetchall()
    assert messages
    assert all(email(1) not in m for (m,) in messages)
