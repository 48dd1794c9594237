"""A real daily cap below the configured one: probed, used to the job, carried to the next day.

The emulator's cap is lower than the one dsar is configured with (the service does not
publish its own); each test advances the emulator by whole days and reads, per day, the jobs
the service created and the POSTs it refused at its daily limit.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from pipeline.journal.ledger import Ledger
from tests.helpers.run import (
    assert_every_row_once,
    only_run,
    run_cli,
    write_config,
    write_subjects,
)


def _days(
    emu: Any,
    argv: list[str],
    ws: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    max_days: int,
    total_jobs: int,
    flags: tuple[str, ...] = (),
) -> tuple[list[int], list[int], int]:
    """Run (with ``flags``), then resume one emulator day later until the run ends or the
    service holds ``total_jobs``; returns the jobs created and the daily-limit refusals of
    each day, and the last exit code."""
    created: list[int] = []
    refused: list[int] = []
    code = run_cli([*argv, *flags], monkeypatch=monkeypatch, env=emu.env)
    while True:
        stats = emu.stats()
        created.append(stats["jobs_created"] - sum(created))
        refused.append(stats["daily_cap_refusals"] - sum(refused))
        if code != 4 or stats["jobs_created"] == total_jobs:
            return created, refused, code
        assert len(created) < max_days, f"still paused after {max_days} days: {created}"
        emu.control("advance", {"days": 1})
        resume = ["resume", str(only_run(ws)), *flags]
        code = run_cli(resume, monkeypatch=monkeypatch, env=emu.env)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_real_cap_below_the_configured_one_is_used_to_the_job_every_day(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(limits={"daily_job_cap": 7000})
    n = 7400  # 14,800 jobs of 2 per subject, in requests of 2,000 jobs
    write_subjects(tmp_path / "in.csv", n, actions=("access+delete",))
    cfg = write_config(tmp_path / "c.toml")  # dsar believes the default 20,000
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    # --no-wait: each day submits what the cap allows without polling (the submission is
    # what is measured; the other tests of this file poll their runs to the end)
    created, refused, code = _days(
        emu, argv, ws, monkeypatch, max_days=3, total_jobs=2 * n, flags=("--no-wait",)
    )
    assert code == 4  # paused by --no-wait with everything submitted
    # the first day probes down to the cap; the next starts at it and probes one user above
    assert created == [7000, 7000, 800]
    assert 1 <= refused[0] <= 24  # about log2(2,000) probes, half of them refused
    assert refused[1] == 1
    assert emu.stats()["duplicate_user_keys"] == []
    run_dir = only_run(ws)
    assert_every_row_once(run_dir, n)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["counts"]["status"]["pending"] == 0
    capsys.readouterr()
    assert run_cli(["status", str(run_dir), "--json"], emu.env, monkeypatch) == 0
    budget = json.loads(capsys.readouterr().out)["daily_budget"]
    assert (budget["cap"], budget["observed_cap"]) == (20_000, 7000)


def test_a_request_larger_than_the_real_cap_no_longer_stalls_the_run(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(limits={"daily_job_cap": 150})
    write_subjects(tmp_path / "in.csv", 400, actions=("access",))
    cfg = write_config(tmp_path / "c.toml")  # one request of 400 jobs: never accepted whole
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli([*argv, "--no-wait"], emu.env, monkeypatch) == 4
    assert emu.stats()["jobs_created"] == 150
    run_dir = only_run(ws)
    capsys.readouterr()
    assert run_cli(["status", str(run_dir)], emu.env, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "daily cap" in out
    assert "20,000 configured, 150 observed on" in out
    # resuming the same day sends nothing: the day is known to be full
    posts = emu.stats()["daily_cap_refusals"]
    assert run_cli(["resume", str(run_dir), "--no-wait"], emu.env, monkeypatch) == 4
    assert emu.stats()["jobs_created"] == 150
    assert emu.stats()["daily_cap_refusals"] == posts
    for _ in range(2):
        emu.control("advance", {"days": 1})
        code = run_cli(["resume", str(run_dir)], emu.env, monkeypatch)
    assert code in (0, 1)
    assert emu.stats()["jobs_created"] == 400
    assert emu.stats()["duplicate_user_keys"] == []
    assert_every_row_once(run_dir, 400)
    # every refused POST closed its batch and re-queued its users; nothing is left open
    with closing(sqlite3.connect(run_dir / "journal.sqlite")) as db:
        states = dict(db.execute("SELECT state, count(*) FROM batch GROUP BY state").fetchall())
        closed = db.execute(
            "SELECT count(*) FROM batch WHERE state = 'reconciled' AND error_code = 'daily_cap'"
        ).fetchone()[0]
    assert closed == emu.stats()["daily_cap_refusals"]
    assert set(states) == {"submitted", "reconciled"}


@pytest.mark.slow
def test_ambiguous_posts_while_probing_lose_and_duplicate_nothing(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # POSTs that create their jobs but fail, and POSTs that fail before creating anything:
    # both hold a reservation until reconciled, which must not end a day early
    faults = {"ambiguous_post_rate": 0.2, "error_5xx_rate": 0.2}
    emu = emulator_factory(limits={"daily_job_cap": 300}, faults=faults, seed=1)
    n = 700
    write_subjects(tmp_path / "in.csv", n, actions=("access",))
    # many requests per round, so that the day's last probes share a round with failed POSTs
    cfg = write_config(tmp_path / "c.toml", limits={"users_per_request": 16})
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    created, _, code = _days(emu, argv, ws, monkeypatch, max_days=3, total_jobs=n)
    assert code in (0, 1)
    assert created[:2] == [300, 300]  # reconciled reservations went back to the day
    assert sum(created) == n
    stats = emu.stats()
    assert stats["duplicate_user_keys"] == []
    assert sum(v for k, v in stats["faults"].items() if k.startswith("ambiguous")) > 0
    run_dir = only_run(ws)
    assert_every_row_once(run_dir, n)
    with Ledger.open(ws) as ledger:
        observed = ledger.observed_cap(emu.env["ADOBE_ORG_ID"])
    assert observed is not None
    assert observed.accepted == 300


def test_a_run_stopped_between_its_journal_and_the_ledger_books_what_exists_on_resume(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash window: every POST's batch is marked submitted in the journal but its ledger
    commit never runs (as when the process dies in between), so the day's reservations are all
    left behind. The resume settles them from the journal before reserving anything: the day
    books exactly the jobs the service created, and nothing stays reserved."""
    emu = emulator_factory()
    n = 120
    write_subjects(tmp_path / "in.csv", n, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml", limits={"users_per_request": 20})
    ws = tmp_path / "ws"
    org = emu.env["ADOBE_ORG_ID"]
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    with monkeypatch.context() as crash:
        crash.setattr(Ledger, "commit", lambda self, run_id, batch_id, created: False)
        assert run_cli([*argv, "--no-wait"], emu.env, monkeypatch) == 4
    assert emu.stats()["jobs_created"] == n
    with Ledger.open(ws) as ledger:
        (day,) = {r.day for r in ledger.reservations(_run_id(ws))}
        left = ledger.usage(org, day)
        assert (left.used, left.reserved) == (0, n)  # the window the fix closes
    code = run_cli(["resume", str(only_run(ws)), "--no-wait"], emu.env, monkeypatch)
    assert code in (0, 4)
    with Ledger.open(ws) as ledger:
        u = ledger.usage(org, day)
        assert (u.used, u.reserved) == (emu.stats()["jobs_created"], 0) == (n, 0)
        assert ledger.reservations(_run_id(ws)) == []
    assert emu.stats()["duplicate_user_keys"] == []
    assert_every_row_once(only_run(ws), n)


def _run_id(ws: Path) -> str:
    with closing(sqlite3.connect(only_run(ws) / "journal.sqlite")) as conn:
        return str(conn.execute("SELECT run_id FROM run").fetchone()[0])
