"""Safe against production: a canary first (--canary), a ceiling on jobs (--max-jobs), and a
confirmation that names the input and the job count."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.journal.canary import CanaryState
from pipeline.journal.models import to_us
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

HEALTHY = {"product_error_rate": 0.0}


def _canary(run_dir: Path) -> Any:
    with Journal.open(run_dir) as journal:
        return journal.canary()


def _rest_sent_after_the_verdict(run_dir: Path) -> bool:
    """True when every job beyond the canary was submitted after the canary's verdict."""
    with Journal.open(run_dir) as journal:
        canary = journal.canary()
        assert canary is not None
        assert canary.decided_at is not None
        (first,) = journal._conn.execute(
            "SELECT min(submitted_at) FROM job WHERE uid > ?", (canary.users,)
        ).fetchone()
    return bool(first >= to_us(canary.decided_at))


def _start(
    tmp_path: Path,
    emulator_factory: Any,
    *flags: str,
    n: int = 100,
    simulation: dict[str, Any] = HEALTHY,
) -> tuple[Emu, list[str], Path]:
    """An emulator, ``n`` subjects to delete, and the ``dsar run`` argv with ``flags``."""
    emu = emulator_factory(simulation=simulation)
    write_subjects(tmp_path / "in.csv", n, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws), *flags]
    return emu, argv, ws


def test_a_failing_canary_pauses_the_run_before_the_rest_is_submitted(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # the emulator fails the canary's 10 jobs (every product in error) and nothing else
    emu, argv, ws = _start(
        tmp_path, emulator_factory, "--canary", "10", "--yes",
        simulation={**HEALTHY, "error_first_jobs": 10},
    )  # fmt: skip
    assert run_cli(argv, emu.env, monkeypatch) == 4
    err = capsys.readouterr().err
    assert "canary failed: 10 of 10 canary jobs in error (100.0%)" in err
    assert "threshold of 5.0%" in err
    run_dir = only_run(ws)
    assert f"dsar submit {run_dir}" in err
    assert emu.stats()["jobs_created"] == 10
    assert posts(emu) == 1  # the canary's own request, nothing more
    assert _canary(run_dir).state == CanaryState.FAILED
    # nothing acts behind the user's back: resume and resume --all follow, submit nothing
    assert run_cli(["resume", str(run_dir)], emu.env, monkeypatch) == 4
    assert "canary failed" in capsys.readouterr().err
    assert run_cli(["resume", "--all", str(ws)], emu.env, monkeypatch) == 4
    assert "canary failed" in capsys.readouterr().err
    assert (emu.stats()["jobs_created"], posts(emu)) == (10, 1)
    assert run_cli(["status", str(run_dir), "--json"], emu.env, monkeypatch) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["pause_reason"] == "canary"
    assert status["canary"]["state"] == "failed"
    assert (status["canary"]["jobs"], status["canary"]["errors"]) == (10, 10)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["canary"] == status["canary"]  # the hand-off carries the verdict too
    assert summary["canary"]["held"] is True
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    canary = page[page.index('<section id="canary">') :].split("</section>")[0]
    assert "The rest of the run is held" in canary
    assert "<td>failed</td>" in canary
    assert "10 of 10 (100.0%)" in canary
    assert run_cli(["status", str(run_dir)], emu.env, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "failed: 10 users, 10 of 10 jobs in error (100.0%); at most 5.0% passes" in out
    assert f"dsar submit {run_dir}" in status["next"]
    assert run_cli(["retry", str(run_dir)], emu.env, monkeypatch) == 2
    assert "held by its canary" in capsys.readouterr().err
    # the explicit act releases it, after the prompt (about the rest alone): a no keeps it held
    asked = fake_terminal(monkeypatch, "no", "y")
    assert run_cli(["submit", str(run_dir)], emu.env, monkeypatch) == 4
    assert "stays held by its canary" in capsys.readouterr().err
    assert _canary(run_dir).state == CanaryState.FAILED
    assert run_cli(["submit", str(run_dir)], emu.env, monkeypatch) == 1
    sha = hashlib.sha256((tmp_path / "in.csv").read_bytes()).hexdigest()
    assert asked == 2 * [f"Submit 90 jobs (input sha256 {sha[:12]}) to the Privacy Service? [y/N] "]
    assert emu.stats()["jobs_created"] == 100
    assert _canary(run_dir).state == CanaryState.RELEASED
    assert emu.stats()["duplicate_user_keys"] == []
    assert_every_row_once(run_dir, 100)


def test_a_canary_set_in_the_config_holds_a_dry_run_submitted_later(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(simulation={**HEALTHY, "error_first_jobs": 1})
    write_subjects(tmp_path / "in.csv", 40, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml", job={"canary_users": 10, "canary_max_error": 0.1})
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli([*argv, "--dry-run"], emu.env, monkeypatch) == 4
    run_dir = only_run(ws)
    # 1 of 10 in error is at most 10%: the canary passes and the rest goes
    assert run_cli(["submit", str(run_dir), "--yes"], emu.env, monkeypatch) == 1
    canary = _canary(run_dir)
    assert (canary.state, canary.jobs, canary.errors) == (CanaryState.PASSED, 10, 1)
    assert emu.stats()["jobs_created"] == 40
    assert posts(emu) == 2
    assert_every_row_once(run_dir, 40)


def test_a_healthy_canary_lets_the_rest_go_in_the_same_command(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu, argv, ws = _start(tmp_path, emulator_factory, "--canary", "30", "--yes", n=120)
    assert run_cli(argv, emu.env, monkeypatch) == 0
    run_dir = only_run(ws)
    canary = _canary(run_dir)
    assert (canary.state, canary.users, canary.jobs, canary.errors) == (
        CanaryState.PASSED, 30, 30, 0,
    )  # fmt: skip
    assert emu.stats()["jobs_created"] == 120
    assert posts(emu) == 2  # the canary's request of exactly 30 users, then the rest
    with Journal.open(run_dir) as journal:
        sizes = journal._conn.execute(
            "SELECT count(*) FROM user GROUP BY batch_seq ORDER BY batch_seq"
        ).fetchall()
    assert sizes == [(30,), (90,)]
    assert _rest_sent_after_the_verdict(run_dir)
    assert "canary passed" in capsys.readouterr().err
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    section = page[page.index('<section id="canary">') :].split("</section>")[0]
    assert "<td>passed</td>" in section
    assert "held" not in section
    assert_every_row_once(run_dir, 120)


def test_a_canary_whose_jobs_outlast_the_wait_pauses_the_run(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    slow = {
        **HEALTHY,
        "time_scale": 1.0,
        "ack_delay_s": [1.0, 2.0],
        "processing_s": [86400.0, 90000.0],
    }
    emu = emulator_factory(simulation=slow)
    write_subjects(tmp_path / "in.csv", 40, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml", poll={"interval_s": 300})
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace",
            str(tmp_path / "ws"), "--canary", "5", "--canary-wait", "1h", "--yes"]  # fmt: skip
    assert run_cli(argv, emu.env, monkeypatch) == 4
    err = capsys.readouterr().err
    assert "canary timed out: 5 of 5 canary jobs still open after 1h" in err
    assert emu.stats()["jobs_created"] == 5
    run_dir = only_run(tmp_path / "ws")
    assert _canary(run_dir).state == CanaryState.TIMED_OUT
    # the canary's jobs finish cleanly later: resume follows them, and still holds the rest
    emu.control("advance", {"days": 2})
    assert run_cli(["resume", str(run_dir)], emu.env, monkeypatch) == 4
    assert "canary timed out" in capsys.readouterr().err
    with Journal.open(run_dir) as journal:
        assert journal.counts().jobs["complete"] == 5
        assert journal.canary_progress(5).open == 0
    assert (emu.stats()["jobs_created"], _canary(run_dir).state) == (5, CanaryState.TIMED_OUT)


def test_max_jobs_refuses_a_bigger_run_before_any_api_call(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu, argv, ws = _start(tmp_path, emulator_factory, "--yes", n=60)
    dry = [*argv, "--dry-run", "--max-jobs", "5", "--workspace", str(tmp_path / "dry")]
    assert run_cli(dry, emu.env, monkeypatch) == 4  # a dry run sends nothing, and says so
    assert "the plan would create 60 jobs, more than --max-jobs 5" in capsys.readouterr().err
    assert run_cli([*argv, "--max-jobs", "59"], emu.env, monkeypatch) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("dsar: --max-jobs 59: the plan")
    assert "would create 60 jobs; nothing was sent" in err[-1]
    assert emu.stats()["requests"] == {}
    run_dir = only_run(ws)
    # the plan is kept as a preview: `dsar submit` honours the ceiling too, then sends it
    assert run_cli(["submit", str(run_dir), "--yes", "--max-jobs", "10"], emu.env, monkeypatch) == 2
    assert "submitting" in capsys.readouterr().err
    assert emu.stats()["requests"] == {}
    assert run_cli(["submit", str(run_dir), "--yes", "--max-jobs", "60"], emu.env, monkeypatch) == 0
    assert emu.stats()["jobs_created"] == 60


def test_max_jobs_refuses_a_resume_that_could_create_more(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(limits={"daily_job_cap": 100}, simulation=HEALTHY)
    write_subjects(tmp_path / "in.csv", 150, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml", limits={"daily_job_cap": 100})
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli([*argv, "--no-wait", "--max-jobs", "150"], emu.env, monkeypatch) == 4
    emu.control("advance", {"days": 1})
    before = emu.stats()["requests"]
    run_dir = only_run(ws)
    assert run_cli(["resume", str(run_dir), "--max-jobs", "49"], emu.env, monkeypatch) == 2
    assert "would create 50 jobs" in capsys.readouterr().err
    assert run_cli(["resume", "--all", str(ws), "--max-jobs", "49"], emu.env, monkeypatch) == 2
    assert "skipped, --max-jobs 49" in capsys.readouterr().err
    assert emu.stats()["requests"] == before
    assert run_cli(["resume", str(run_dir), "--max-jobs", "50"], emu.env, monkeypatch) == 0
    assert emu.stats()["jobs_created"] == 150


def test_the_prompt_names_the_inputs_sha256_the_job_count_and_the_canary(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, argv, _ws = _start(tmp_path, emulator_factory, "--canary", "5", n=20)
    asked = fake_terminal(monkeypatch, "n")
    assert run_cli(argv, emu.env, monkeypatch) == 4
    sha = hashlib.sha256((tmp_path / "in.csv").read_bytes()).hexdigest()
    assert asked == [
        f"Submit 20 jobs (input sha256 {sha[:12]}; a canary of 5 users first, the rest only"
        " if at most 5.0% of its jobs end in error within 2h) to the Privacy Service? [y/N] "
    ]
    assert emu.stats()["requests"] == {}


def test_a_canary_sent_with_no_wait_is_judged_by_the_next_resume(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu, argv, ws = _start(tmp_path, emulator_factory, "--canary", "8", "--no-wait", n=20)
    assert run_cli(argv, emu.env, monkeypatch) == 4
    assert "the first 8 users go alone; the other 12 wait for it" in capsys.readouterr().err
    run_dir = only_run(ws)
    assert (emu.stats()["jobs_created"], _canary(run_dir).state) == (8, CanaryState.WAITING)
    assert run_cli(["resume", str(run_dir)], emu.env, monkeypatch) == 0
    assert (emu.stats()["jobs_created"], _canary(run_dir).state) == (20, CanaryState.PASSED)
    assert_every_row_once(run_dir, 20)


def test_a_failed_canary_of_every_user_holds_nothing_back_and_the_run_finishes(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu, argv, ws = _start(
        tmp_path, emulator_factory, "--canary", "50", "--yes", n=6,
        simulation={**HEALTHY, "error_first_jobs": 6},
    )  # fmt: skip
    assert run_cli(argv, emu.env, monkeypatch) == 1  # finished, its jobs in error
    err = capsys.readouterr().err
    assert "the canary of 50 users holds every user of the plan (6)" in err
    assert "canary failed: it held every user of the run" in err
    assert _canary(only_run(ws)).errors == 6
    assert emu.stats()["jobs_created"] == 6
    assert_every_row_once(only_run(ws), 6)


def test_a_canary_whose_posts_are_ambiguous_is_reconciled_then_judged(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every POST creates its jobs and then answers 500: the canary is found by listing
    emu = emulator_factory(simulation=HEALTHY, faults={"ambiguous_post_rate": 1.0})
    write_subjects(tmp_path / "in.csv", 30, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml", limits={"users_per_request": 4})
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws),
            "--canary", "10", "--yes"]  # fmt: skip
    assert run_cli(argv, emu.env, monkeypatch) == 0
    run_dir = only_run(ws)
    canary = _canary(run_dir)
    assert (canary.state, canary.jobs, canary.errors) == (CanaryState.PASSED, 10, 0)
    stats = emu.stats()
    assert (stats["jobs_created"], stats["duplicate_user_keys"]) == (30, [])
    assert _rest_sent_after_the_verdict(run_dir)
    assert_every_row_once(run_dir, 30)
