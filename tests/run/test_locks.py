"""One driver per run and per workspace: a second exits 7 naming the holder; a dead one's lock
is taken over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.run.lock import LOCK_FILE, hold_lock, lock_holder
from tests.helpers.run import Emu, run_cli, write_config, write_subjects

REPO = Path(__file__).resolve().parents[2]
# the emulator's clock stands still: a driver polls until it is killed or the test advances it
FROZEN = {"clock_frozen": True, "simulation": {"product_error_rate": 0.0}}


def _paused_run(
    tmp_path: Path, emu: Emu, monkeypatch: pytest.MonkeyPatch, n: int = 20
) -> tuple[Path, Path]:
    write_subjects(tmp_path / "in.csv", n, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli([*argv, "--no-wait"], emu.env, monkeypatch) == 4
    (run_dir,) = [p for p in ws.iterdir() if p.is_dir() and p.name != "dataset"]
    return ws, run_dir


def test_a_held_run_lock_makes_resume_exit_7_and_resume_all_skip_it(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(simulation={"product_error_rate": 0.0})
    ws, run_dir = _paused_run(tmp_path, emu, monkeypatch)
    assert oct((run_dir / LOCK_FILE).stat().st_mode & 0o777) == "0o600"
    capsys.readouterr()
    with hold_lock(run_dir, "run x") as me:
        for argv in (["resume", str(run_dir)], ["retry", str(run_dir)], ["cancel", str(run_dir)]):
            assert run_cli(argv, emu.env, monkeypatch) == 7
            err = capsys.readouterr().err.strip().splitlines()
            assert err == [
                f"dsar: run {run_dir.name} is being driven by pid {os.getpid()} since "
                f"{me.since}; try again when it ends"
            ]
        assert run_cli(["resume", "--all", str(ws)], emu.env, monkeypatch) == 4
        err = capsys.readouterr().err
        assert f"{run_dir.name}: skipped, run {run_dir.name} is being driven by pid" in err
        assert run_cli(["status", str(run_dir), "--json"], emu.env, monkeypatch) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["driven_by"] == {"pid": os.getpid(), "since": me.since}
        with hold_lock(ws, "workspace w"):
            assert run_cli(["resume", "--all", str(ws)], emu.env, monkeypatch) == 7
            assert f"workspace {ws} is being driven by pid" in capsys.readouterr().err
    assert lock_holder(run_dir) is None
    assert run_cli(["resume", str(run_dir)], emu.env, monkeypatch) == 0
    assert emu.stats()["duplicate_user_keys"] == []


def _dsar(argv: list[str], env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline", *argv],
            env={**os.environ, **env},
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def _until(condition: Any, what: str, timeout_s: float = 60.0) -> None:
    """Wait for an observable condition (a bounded poll; never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.timeout(240)
def test_two_resumes_started_together_one_drives_and_a_killed_ones_lock_is_taken_over(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(**FROZEN)
    _, run_dir = _paused_run(tmp_path, emu, monkeypatch)
    cfg_env = {k: v for k, v in emu.env.items()}
    procs = [_dsar(["resume", str(run_dir)], cfg_env, tmp_path / f"resume-{i}.log") for i in (1, 2)]
    try:
        _until(lambda: any(p.poll() is not None for p in procs), "one resume to give up")
        (loser,) = [p for p in procs if p.poll() is not None]
        (driver,) = [p for p in procs if p is not loser]
        assert loser.returncode == 7
        log = (tmp_path / f"resume-{procs.index(loser) + 1}.log").read_text()
        assert f"is being driven by pid {driver.pid}" in log
        assert driver.poll() is None  # still driving
        holder = lock_holder(run_dir)
        assert holder is not None
        assert holder.pid == driver.pid
        assert run_cli(["status", str(run_dir)], emu.env, monkeypatch) == 0
        assert f"driven by pid {driver.pid} since" in capsys.readouterr().out
        driver.kill()  # SIGKILL: no cleanup, the kernel drops the lock
        driver.wait(30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(30)
    assert lock_holder(run_dir) is None
    assert (run_dir / LOCK_FILE).read_text().startswith(f"pid={driver.pid} ")  # stale line
    emu.control("advance", {"days": 1})
    assert run_cli(["resume", str(run_dir)], emu.env, monkeypatch) == 0
    assert (run_dir / LOCK_FILE).read_text().startswith(f"pid={os.getpid()} ")
    assert emu.stats()["duplicate_user_keys"] == []
