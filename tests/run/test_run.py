"""dsar run / resume / status / retry against a real emulator over real HTTP."""

from __future__ import annotations

import json
import math
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.journal.ledger import Ledger
from pipeline.run.poller import Poller
from tests.helpers.run import (
    assert_every_row_once,
    run_cli,
    write_config,
    write_subjects,
)


def _run_dir(workspace: Path) -> Path:
    (run_dir,) = [p for p in workspace.iterdir() if p.is_dir() and p.name != "dataset"]
    return run_dir


def test_a_run_finishes_every_job_and_writes_the_run_directory(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory()
    write_subjects(tmp_path / "in.csv", 300, bad_every=50)
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    code = run_cli(
        ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)],
        emu.env,
        monkeypatch,
    )
    assert code == 1  # rows were rejected (and some jobs may have ended in error)
    run_dir = _run_dir(ws)
    out = capsys.readouterr()
    assert "dsar run summary" in out.out
    for name in ("journal.sqlite", "status.parquet", "products.parquet", "rejects.parquet"):
        assert (run_dir / name).is_file(), name
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    status = pq.read_table(run_dir / "status.parquet").to_pylist()
    assert {r["status"] for r in status} <= {"complete", "error"}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["api_calls"]["POST jobs"] == {"202": 1}
    results = list((run_dir / "results").iterdir())
    assert results
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in results)
    assert stat.S_IMODE((run_dir / "results").stat().st_mode) == 0o700
    assert_every_row_once(run_dir, 300)
    stats = emu.stats()
    assert stats["duplicate_user_keys"] == []


@pytest.mark.slow
def test_ambiguous_posts_lose_nothing_and_duplicate_nothing(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(faults={"ambiguous_post_rate": 0.1}, seed=11)
    n = 3000
    write_subjects(tmp_path / "in.csv", n, actions=("access", "delete"))
    cfg = write_config(tmp_path / "c.toml", limits={"users_per_request": 50})
    ws = tmp_path / "ws"
    first_day = datetime.now(UTC).date()
    code = run_cli(
        ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)],
        emu.env,
        monkeypatch,
    )
    assert code in (0, 1)
    run_dir = _run_dir(ws)
    assert_every_row_once(run_dir, n)
    stats = emu.stats()
    assert stats["duplicate_user_keys"] == []
    assert stats["jobs_created"] == n
    # reconciliation settled every ambiguous POST's reservation: the budget books what exists
    # (on the day or days the run spanned: a run may cross midnight)
    days = (first_day, datetime.now(UTC).date())
    with Ledger.open(ws) as ledger:
        usages = [ledger.usage(emu.env["ADOBE_ORG_ID"], day) for day in sorted(set(days))]
    assert (sum(u.used for u in usages), sum(u.reserved for u in usages)) == (n, 0)
    summary = json.loads((run_dir / "summary.json").read_text())
    post = summary["api_calls"]["POST jobs"]
    assert sum(v for k, v in post.items() if k != "202") > 0, "no ambiguous POST was exercised"
    status = pq.read_table(run_dir / "status.parquet", columns=["status"]).column(0).to_pylist()
    assert set(status) <= {"complete", "error"}
    assert len(status) == n


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_daily_cap_pauses_and_resume_continues_on_the_next_days(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(limits={"daily_job_cap": 500})
    n = 1_200
    write_subjects(tmp_path / "in.csv", n, actions=("access",))
    cfg = write_config(tmp_path / "c.toml", limits={"daily_job_cap": 500})
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli(argv, emu.env, monkeypatch) == 4
    run_dir = _run_dir(ws)
    assert emu.stats()["jobs_created"] == 500
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["counts"]["status"]["pending"] == 700
    # the same day, resuming submits nothing more
    assert run_cli(["resume", str(run_dir)], emu.env, monkeypatch) == 4
    assert emu.stats()["jobs_created"] == 500
    days = 0
    code = 4
    while code == 4:
        emu.control("advance", {"days": 1})
        days += 1
        code = run_cli(["resume", str(run_dir)], emu.env, monkeypatch)
        assert days <= 3
    assert code in (0, 1)
    assert days == math.ceil(n / 500) - 1
    assert emu.stats()["jobs_created"] == n
    assert emu.stats()["duplicate_user_keys"] == []
    assert_every_row_once(run_dir, n)


@pytest.mark.slow
@pytest.mark.timeout(600)  # a safety net for a loaded machine, not a speed claim
def test_polling_uses_list_sweeps_and_one_get_per_job(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A held clock: jobs take 1 to 5 emulator seconds, and the emulator's time moves one
    # second after each polling round, so the jobs finish over at least five rounds however
    # slowly this machine submits them or sweeps.
    emu = emulator_factory(
        clock_frozen=True,
        clock_start="2026-03-02T09:00:00",
        simulation={"processing_s": [86_400.0, 432_000.0]},
    )
    original_round = Poller.round

    async def round_then_tick(self: Poller) -> Any:
        result = await original_round(self)
        emu.control("advance", {"seconds": 1})
        return result

    monkeypatch.setattr(Poller, "round", round_then_tick)
    # delete jobs: a sweep pages through 3,000 open jobs, and no result download slows the run
    n = 3_000
    write_subjects(tmp_path / "in.csv", n, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml", poll={"interval_s": 0.3})
    ws = tmp_path / "ws"
    code = run_cli(
        ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)],
        emu.env,
        monkeypatch,
    )
    assert code in (0, 1)
    run_dir = _run_dir(ws)
    summary = json.loads((run_dir / "summary.json").read_text())
    jobs = sum(summary["counts"]["status"][s] for s in ("complete", "error"))
    assert jobs == emu.stats()["jobs_created"]
    gets = sum(summary["api_calls"]["GET jobs/{id}"].values())
    assert gets == jobs  # one GET a job, once it has left progress
    polling = summary["polling"]
    assert polling["sweeps_total"] >= 5  # jobs took several rounds to finish
    assert polling["sweeps_over_bound"] == 0
    assert max(s["list_calls"] for s in polling["sweeps"]) >= 2  # sweeps of several pages
    for sweep in polling["sweeps"]:
        assert sweep["list_calls"] <= max(1, math.ceil(sweep["open_jobs"] / 1000)), sweep
    # every list call is a sweep's, or the one that learned the service's clock
    lists = sum(summary["api_calls"]["GET jobs"].values())
    if polling["sweeps_total"] == len(polling["sweeps"]):
        assert lists <= sum(s["list_calls"] for s in polling["sweeps"]) + 1
