"""A run paused at its daily cap keeps its unsent batches as deferred records (journal v10):
its reports read them as the rows they will become."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.journal.blobs import materialise_all
from pipeline.journal.store import Journal
from pipeline.reports.writers import write_status
from tests.helpers.run import run_cli, write_config, write_subjects

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _status(journal: Journal, out: Path) -> list[dict[str, Any]]:
    out.mkdir()
    write_status(journal, out, chunk_rows=7, now=NOW)
    return pq.read_table(out / "status.parquet").to_pylist()


def test_a_run_paused_at_its_cap_reports_the_same_rows_before_and_after_materialising(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(limits={"daily_job_cap": 100})
    write_subjects(tmp_path / "in.csv", 300, actions=("access",))
    limits = {"daily_job_cap": 100, "users_per_request": 20}
    cfg = write_config(tmp_path / "c.toml", limits=limits)
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli(argv, emu.env, monkeypatch) == 4
    (run_dir,) = [p for p in ws.iterdir() if p.is_dir() and p.name != "dataset"]
    written = pq.read_table(run_dir / "status.parquet").to_pylist()
    with Journal.open(run_dir) as journal:
        (records,) = journal._conn.execute("SELECT count(*) FROM plan_users").fetchone()
        assert records >= 5  # most of the 10 unsent requests of 20 users are still records
        before = (_status(journal, tmp_path / "a"), journal.counts(), journal.states_by_org())
        with journal._tx() as c:
            materialise_all(c)
        after = (_status(journal, tmp_path / "b"), journal.counts(), journal.states_by_org())
    assert after == before
    assert [(r["user_key"], r["status"]) for r in written] == [
        (r["user_key"], r["status"]) for r in before[0]
    ]
    assert sum(r["status"] == "pending" for r in written) == 200
