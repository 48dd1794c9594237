"""Nothing is submitted behind the user's back: dry runs, declined prompts, dsar cancel."""

from __future__ import annotations

import builtins
import hashlib
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.journal.ledger import Ledger
from pipeline.journal.store import Journal
from tests.helpers.run import (
    Emu,
    assert_every_row_once,
    fake_terminal,
    only_run,
    posts,
    run_cli,
    write_config,
    write_subjects,
)

NO_ERRORS = {"product_error_rate": 0.0}


def _statuses(run_dir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in pq.read_table(run_dir / "status.parquet", columns=["status"]).to_pylist():
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def test_a_dry_run_is_never_submitted_by_resume_only_by_submit(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(simulation=NO_ERRORS)
    write_subjects(tmp_path / "in.csv", 30, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli([*argv, "--dry-run"], emu.env, monkeypatch) == 4
    run_dir = only_run(ws)
    assert "dsar submit" in capsys.readouterr().err
    assert run_cli(["resume", "--all", str(ws)], emu.env, monkeypatch) == 0
    assert "a preview, skipped (nothing sent)" in capsys.readouterr().err
    assert run_cli(["resume", str(run_dir)], emu.env, monkeypatch) == 2
    assert "is a preview" in capsys.readouterr().err
    assert run_cli(["retry", str(run_dir)], emu.env, monkeypatch) == 2
    assert posts(emu) == 0
    assert emu.stats()["jobs_created"] == 0
    assert run_cli(["status", str(run_dir), "--json"], emu.env, monkeypatch) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["intent"], status["driven_by"]) == ("preview", None)
    assert "dsar submit" in status["next"]
    assert run_cli(["status", str(run_dir)], emu.env, monkeypatch) == 0
    assert "paused (dry_run), preview" in capsys.readouterr().out
    # the explicit act
    assert run_cli(["submit", str(run_dir), "--yes"], emu.env, monkeypatch) == 0
    assert emu.stats()["jobs_created"] == 30
    assert run_cli(["resume", "--all", str(ws)], emu.env, monkeypatch) == 0
    assert emu.stats()["jobs_created"] == 30
    assert run_cli(["submit", str(run_dir), "--yes"], emu.env, monkeypatch) == 2
    assert "not a preview" in capsys.readouterr().err
    assert_every_row_once(run_dir, 30)


def test_a_declined_prompt_leaves_nothing_to_resume(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(simulation=NO_ERRORS)
    write_subjects(tmp_path / "in.csv", 20, actions=("access",))
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    asked = fake_terminal(monkeypatch, "n")
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli(argv, emu.env, monkeypatch) == 4
    sha = hashlib.sha256((tmp_path / "in.csv").read_bytes()).hexdigest()
    assert asked == [f"Submit 20 jobs (input sha256 {sha[:12]}) to the Privacy Service? [y/N] "]
    assert "declined: nothing was submitted" in capsys.readouterr().err
    run_dir = only_run(ws)
    assert run_cli(["resume", "--all", str(ws)], emu.env, monkeypatch) == 0
    assert "declined at the prompt, skipped" in capsys.readouterr().err
    assert run_cli(["resume", str(run_dir)], emu.env, monkeypatch) == 2
    assert "declined" in capsys.readouterr().err
    assert run_cli(["submit", str(run_dir), "--yes"], emu.env, monkeypatch) == 2
    assert posts(emu) == 0
    assert emu.stats()["jobs_created"] == 0
    assert _statuses(run_dir) == {"pending": 20}


def test_submit_asks_first_and_a_no_keeps_the_preview(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(simulation=NO_ERRORS)
    write_subjects(tmp_path / "in.csv", 10, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli([*argv, "--dry-run"], emu.env, monkeypatch) == 4
    run_dir = only_run(ws)
    fake_terminal(monkeypatch, "no", "y")
    assert run_cli(["submit", str(run_dir)], emu.env, monkeypatch) == 4
    assert "stays a preview" in capsys.readouterr().err
    assert posts(emu) == 0
    assert run_cli(["submit", str(run_dir)], emu.env, monkeypatch) == 0
    assert emu.stats()["jobs_created"] == 10


def _cancellable_run(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[Emu, Path, Path]:
    """A run paused at a daily cap of 100 jobs: 100 jobs submitted, 50 still planned."""
    emu = emulator_factory(limits={"daily_job_cap": 100}, simulation=NO_ERRORS)
    write_subjects(tmp_path / "in.csv", 150, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml", limits={"daily_job_cap": 100})
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli([*argv, "--no-wait"], emu.env, monkeypatch) == 4
    assert emu.stats()["jobs_created"] == 100
    return emu, ws, only_run(ws)


def test_a_cancelled_run_submits_nothing_more_and_polls_what_is_sent(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu, ws, run_dir = _cancellable_run(tmp_path, emulator_factory, monkeypatch)
    sent = posts(emu)
    capsys.readouterr()
    assert run_cli(["cancel", str(run_dir)], emu.env, monkeypatch) == 0
    assert "50 jobs will never be submitted" in capsys.readouterr().err
    assert _statuses(run_dir) == {"cancelled": 50, "submitted": 100}
    assert run_cli(["status", str(run_dir)], emu.env, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "paused (cancelled)" in out
    assert "100 / 100 jobs (this workspace)" in out
    emu.control("advance", {"days": 1})  # a new day's budget: still nothing is sent
    assert run_cli(["resume", "--all", str(ws)], emu.env, monkeypatch) == 1
    assert posts(emu) == sent
    assert emu.stats()["jobs_created"] == 100
    assert _statuses(run_dir) == {"cancelled": 50, "complete": 100}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["state"] == "finished"
    assert summary["counts"]["status"]["cancelled"] == 50
    assert_every_row_once(run_dir, 150)
    assert run_cli(["retry", str(run_dir)], emu.env, monkeypatch) == 2
    assert run_cli(["resume", "--all", str(ws)], emu.env, monkeypatch) == 0
    assert posts(emu) == sent


def test_cancel_with_stop_polling_makes_no_call_at_all_afterwards(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu, ws, run_dir = _cancellable_run(tmp_path, emulator_factory, monkeypatch)
    before = emu.stats()["requests"]
    assert run_cli(["cancel", str(run_dir), "--stop-polling"], emu.env, monkeypatch) == 0
    assert "reported as last seen" in capsys.readouterr().err
    emu.control("advance", {"days": 1})
    assert run_cli(["resume", "--all", str(ws)], emu.env, monkeypatch) == 0
    assert "no unfinished run" in capsys.readouterr().err
    assert run_cli(["resume", str(run_dir)], emu.env, monkeypatch) == 1
    assert emu.stats()["requests"] == before
    assert _statuses(run_dir) == {"cancelled": 50, "submitted": 100}
    assert_every_row_once(run_dir, 150)


def test_a_post_of_unknown_outcome_in_a_cancelled_run_is_reconciled_never_resent(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, ws, run_dir = _cancellable_run(tmp_path, emulator_factory, monkeypatch)
    sent = posts(emu)
    with Journal.open(run_dir) as journal:  # as if killed between the intent and the POST
        (batch_id,) = journal.batches_to_submit()
        journal.record_intent(batch_id, "0" * 64, journal.run_info().updated_at)
    assert run_cli(["cancel", str(run_dir), "--stop-polling"], emu.env, monkeypatch) == 0
    with Journal.open(run_dir) as journal:
        assert journal.run_info().state == "paused"  # the unknown POST is still to reconcile
    emu.control("advance", {"days": 1})
    assert run_cli(["resume", "--all", str(ws)], emu.env, monkeypatch) == 1
    assert posts(emu) == sent
    with Journal.open(run_dir) as journal:
        info = journal.run_info()
        assert (info.state, journal.counts().batches["ambiguous"]) == ("finished", 0)
    assert _statuses(run_dir) == {"cancelled": 50, "submitted": 100}
    assert_every_row_once(run_dir, 150)


def test_a_sibling_workspace_booking_the_same_org_is_warned_about(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(simulation=NO_ERRORS)
    org = emu.env["ADOBE_ORG_ID"]
    with Ledger.open(tmp_path / "other") as ledger:
        ledger.reserve(org, date(2026, 12, 1), 1, cap=10, run_id="r", batch_id="b")
    with Ledger.open(tmp_path / "third") as ledger:
        ledger.reserve(
            "SOMEONEELSE@AdobeOrg", date(2026, 12, 1), 1, cap=10, run_id="r", batch_id="b"
        )
    write_subjects(tmp_path / "in.csv", 5, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli(argv, emu.env, monkeypatch) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "same org" in line]
    assert len(warned) == 1
    assert f"{tmp_path / 'other'} books the same org" in warned[0]
    assert org not in warned[0]
    assert run_cli(["resume", "--all", str(ws)], emu.env, monkeypatch) == 0
    assert "books the same org" in capsys.readouterr().err


def test_a_run_interrupted_at_the_prompt_is_a_preview_nothing_submits_behind_it(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(simulation=NO_ERRORS)
    write_subjects(tmp_path / "in.csv", 10, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"

    def interrupted(_prompt: str) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(builtins, "input", interrupted)
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli(argv, emu.env, monkeypatch) == 4
    run_dir = only_run(ws)
    assert run_cli(["resume", "--all", str(ws)], emu.env, monkeypatch) == 0
    assert "a preview, skipped (nothing sent)" in capsys.readouterr().err
    assert posts(emu) == 0
    other_org = {**emu.env, "ADOBE_ORG_ID": "ANOTHERORG0000000000000@AdobeOrg"}
    assert run_cli(["submit", str(run_dir), "--yes"], other_org, monkeypatch) == 2
    assert "another org" in capsys.readouterr().err
    assert run_cli(["submit", str(run_dir), "--yes"], emu.env, monkeypatch) == 0
    assert emu.stats()["jobs_created"] == 10


def test_cancel_gives_back_the_budget_a_killed_process_reserved_for_a_batch_never_sent(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, ws, run_dir = _cancellable_run(tmp_path, emulator_factory, monkeypatch)
    org, day = emu.env["ADOBE_ORG_ID"], date(2026, 12, 1)
    with Journal.open(run_dir) as journal, Ledger.open(ws) as ledger:
        run_id = journal.run_info().meta.run_id
        (batch_id,) = journal.batches_to_submit()  # killed between the reserve and the intent
        assert ledger.reserve(org, day, 50, cap=100, run_id=run_id, batch_id=batch_id)
    assert run_cli(["cancel", str(run_dir), "--stop-polling"], emu.env, monkeypatch) == 0
    with Ledger.open(ws) as ledger:
        assert (ledger.reservations(run_id), ledger.usage(org, day).reserved) == ([], 0)
