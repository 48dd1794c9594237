"""SIGINT stops ``dsar run`` promptly wherever it lands, and the run resumes losing nothing.

Each test starts a separate ``python -m pipeline run`` against an emulator process, waits until
observed state shows the run in one phase (the child's mapped libraries, the run directory's
files, the journal's rows read from this process, the emulator's stats), sends SIGINT, and
measures the time from the signal to the child's exit: exit 4 within ``STOP_BOUND_S``, one
``dsar:`` line or the paused summary, no traceback. The run is then resumed (or, when the
signal came before a plan existed, started again) to the end: every input row once, no user
key posted twice.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipeline.bench.emuproc import EmulatorProcess
from tests.helpers.run import FAST_SIMULATION, write_config, write_subjects
from tests.privacy import scan as privacy
from tests.reliability.chaos import REPO, _child_env
from tests.reliability.checks import NO_PRODUCT_ERRORS, assert_run_lost_nothing, summary

STOP_BOUND_S = 2.0
PHASE_TIMEOUT_S = 60.0  # the phase must be reached by then (a bound, not a wait)
FINAL_TIMEOUT_S = 120.0


def _planned(run_dir: Path) -> bool:
    """Whether the journal of ``run_dir`` holds a plan (read while no dsar process writes it)."""
    db = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        (count,) = db.execute("SELECT COUNT(*) FROM run").fetchone()
    except sqlite3.Error:
        return False
    finally:
        db.close()
    return bool(count)


@dataclass
class Child:
    """One dsar process with its output in its own file."""

    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@dataclass
class SignalRun:
    """An emulator process, a workspace and an input, and the dsar children started on them."""

    tmp: Path
    emu: EmulatorProcess
    n: int
    config: Path
    run_dir: Path
    children: list[Child] = field(default_factory=list)

    @property
    def base(self) -> list[str]:
        return ["--config", str(self.config), "--workspace", str(self.tmp / "ws")]

    def start(self, *args: str) -> Child:
        log = self.tmp / f"dsar-{len(self.children)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline", *args],
                env=_child_env(self.emu.env, reconcile=True),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        child = Child(proc, log)
        self.children.append(child)
        return child

    def start_run(self) -> Child:
        args = ["run", str(self.tmp / "in.csv"), *self.base, "--yes", "--progress-every", "1s"]
        return self.start(*args, "--run-dir", str(self.run_dir))

    def wait_for(self, child: Child, reached: Callable[[], bool], what: str) -> None:
        """Poll observed state (every 20 ms) until ``reached()``; fail if the child ends first."""
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        while not reached():
            code = child.proc.poll()
            assert code is None, f"dsar ended ({code}) before {what}:\n{child.output[-2000:]}"
            assert time.monotonic() < deadline, f"never reached: {what}"
            time.sleep(0.02)

    def interrupt(self, child: Child) -> tuple[int, float]:
        """SIGINT ``child``; (its exit code, seconds from the signal to its exit)."""
        sent = time.monotonic()
        child.proc.send_signal(signal.SIGINT)
        code = child.proc.wait(30)
        seconds = time.monotonic() - sent
        print(f"SIGINT to exit: {seconds:.2f} s (exit {code})")  # the figure, shown with -s
        return code, seconds

    def finish(self) -> int:
        """Resume the run (start it again if no plan was written) and wait for the end."""
        self.emu.control("config", {"faults": {"latency_s": [0.0, 0.0]}})  # quick to the end
        if (self.run_dir / "journal.sqlite").exists() and _planned(self.run_dir):
            child = self.start("resume", str(self.run_dir), *self.base[:2])
        else:
            child = self.start_run()
        return child.proc.wait(FINAL_TIMEOUT_S)

    def record_outputs(self) -> str:
        text = "\n".join(c.output for c in self.children)
        privacy.record_text("the dsar processes' output", text)
        return text


def _signal_run(
    tmp: Path,
    emu: EmulatorProcess,
    n: int,
    *,
    actions: tuple[str, ...] = ("delete",),
    **config: dict[str, Any],
) -> SignalRun:
    write_subjects(tmp / "in.csv", n, seed=5, actions=actions)
    cfg = write_config(tmp / "c.toml", **config)
    return SignalRun(tmp=tmp, emu=emu, n=n, config=cfg, run_dir=tmp / "ws" / "run")


def _emulator(latency_s: tuple[float, float], **simulation: Any) -> dict[str, Any]:
    return {
        "seed": 5,
        "limits": {"requests_per_second": 0},
        "simulation": {**FAST_SIMULATION, **NO_PRODUCT_ERRORS, **simulation},
        "faults": {"latency_s": list(latency_s)},
    }


def _journal_value(run_dir: Path, sql: str) -> int:
    """One number from the journal of a running dsar (read-only; 0 while it is unreadable)."""
    path = run_dir / "journal.sqlite"
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            row = db.execute(sql).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row and row[0] is not None else 0


def _requests(emu: EmulatorProcess, endpoint: str) -> int:
    counts: dict[str, int] = emu.control("stats")["requests"].get(endpoint, {})
    return sum(counts.values())


def _assert_stopped_promptly(code: int, seconds: float, output: str, phase: str) -> None:
    assert "Traceback" not in output, output[-3000:]
    assert code == 4, f"SIGINT {phase}: exit {code}\n{output[-2000:]}"
    assert seconds < STOP_BOUND_S, f"SIGINT {phase}: {seconds:.2f} s to stop"


def _assert_finished(run: SignalRun, code: int) -> None:
    output = run.record_outputs()
    assert "Traceback" not in output
    assert code == 0, output[-3000:]
    assert_run_lost_nothing(run.run_dir, run.n, run.emu.control("stats"))


def _imports_dsar(pid: int) -> bool:
    """Whether the process has loaded a compiled library of an installed package: it is past
    the interpreter's own start and importing dsar's dependencies."""
    try:
        return "site-packages" in Path(f"/proc/{pid}/maps").read_text(encoding="utf-8")
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
def test_sigint_while_dsar_starts_exits_4_in_one_line_and_a_new_run_finishes(
    tmp_path: Path,
) -> None:
    with EmulatorProcess(_emulator((0.0, 0.0))) as emu:
        run = _signal_run(tmp_path, emu, 300)
        child = run.start_run()
        run.wait_for(child, lambda: _imports_dsar(child.proc.pid), "dsar imports its libraries")
        code, seconds = run.interrupt(child)
        _assert_stopped_promptly(code, seconds, child.output, "at start-up")
        assert child.output.strip().splitlines() == ["dsar: interrupted"]
        assert not run.run_dir.exists()
        _assert_finished(run, run.finish())


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sigint_while_planning_removes_the_unplanned_run_and_a_new_run_finishes(
    tmp_path: Path,
) -> None:
    with EmulatorProcess(_emulator((0.0, 0.0))) as emu:
        run = _signal_run(tmp_path, emu, 6000, limits={"users_per_request": 100})
        child = run.start_run()
        # the journal is created right before planning starts; the plan is written at its end
        run.wait_for(child, lambda: (run.run_dir / "journal.sqlite").exists(), "planning")
        assert not _planned(run.run_dir)
        code, seconds = run.interrupt(child)
        _assert_stopped_promptly(code, seconds, child.output, "while planning")
        assert "before the plan was written" in child.output
        assert not run.run_dir.exists(), "an unplanned run directory was left behind"
        assert emu.control("health")["jobs"] == 0
        _assert_finished(run, run.finish())


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sigint_while_posts_are_in_flight_stops_within_2s_and_resume_reconciles_them(
    tmp_path: Path,
) -> None:
    """POSTs slower than the stop's grace are abandoned: their batches are reconciled."""
    with EmulatorProcess(_emulator((0.3, 1.2))) as emu:
        run = _signal_run(tmp_path, emu, 1000, limits={"users_per_request": 20})
        child = run.start_run()
        run.wait_for(child, lambda: emu.control("health")["jobs"] >= 200, "jobs being created")
        code, seconds = run.interrupt(child)
        _assert_stopped_promptly(code, seconds, child.output, "while submitting")
        assert "paused (interrupted)" in child.output
        assert emu.control("health")["jobs"] < run.n, "the run was not stopped mid-submission"
        assert _journal_value(run.run_dir, "SELECT COUNT(*) FROM batch WHERE state = 'planned'")
        _assert_finished(run, run.finish())


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sigint_in_the_middle_of_a_sweep_stops_within_2s_and_resume_finishes(
    tmp_path: Path,
) -> None:
    # jobs stay in processing for 3-6 s, and a sweep reads 10 jobs a page: ~150 pages
    with EmulatorProcess(_emulator((0.01, 0.02), processing_s=[259_200, 518_400])) as emu:
        run = _signal_run(
            tmp_path, emu, 1500, limits={"users_per_request": 100}, poll={"page_size": 10}
        )
        child = run.start_run()
        unsent = "SELECT COUNT(*) FROM batch WHERE state IN ('planned', 'submitting')"
        run.wait_for(
            child,
            lambda: (
                emu.control("health")["jobs"] == run.n
                and not _journal_value(run.run_dir, unsent)
                and _requests(emu, "GET jobs") >= 20
            ),
            "a sweep under way",
        )
        code, seconds = run.interrupt(child)
        _assert_stopped_promptly(code, seconds, child.output, "mid-sweep")
        polling = summary(run.run_dir)["polling"]
        assert polling["sweeps_total"] == len(polling["sweeps"])
        swept = sum(s["list_calls"] for s in polling["sweeps"])
        # the list calls of the sweep that was cut short are in no finished sweep
        assert _requests(emu, "GET jobs") > swept + 1, "no sweep was cut short"
        _assert_finished(run, run.finish())


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sigint_while_downloading_stops_within_2s_leaves_no_partial_file_and_resume_finishes(
    tmp_path: Path,
) -> None:
    with EmulatorProcess(_emulator((0.02, 0.05))) as emu:
        run = _signal_run(
            tmp_path, emu, 1200, actions=("access",), limits={"users_per_request": 100}
        )
        child = run.start_run()
        results = run.run_dir / "results"
        run.wait_for(
            child,
            lambda: results.is_dir() and len(list(results.glob("*.zip"))) >= 20,
            "results being downloaded",
        )
        code, seconds = run.interrupt(child)
        _assert_stopped_promptly(code, seconds, child.output, "while downloading")
        assert len(list(results.glob("*.zip"))) < run.n, "the downloads were not interrupted"
        assert not list(results.glob(".*.part")), "a partial download was left behind"
        _assert_finished(run, run.finish())


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sigint_during_resume_all_stops_the_command_before_the_next_run(tmp_path: Path) -> None:
    run_state = "SELECT state = 'active' FROM run"
    with EmulatorProcess(_emulator((0.01, 0.02), processing_s=[259_200, 518_400])) as emu:
        run = _signal_run(tmp_path, emu, 300, limits={"users_per_request": 100})
        first, second = tmp_path / "ws" / "a", tmp_path / "ws" / "b"
        for run_dir in (first, second):
            # the same input twice: --no-dedupe, or the second run would skip every job
            args = ["run", str(tmp_path / "in.csv"), *run.base, "--yes", "--no-wait", "--no-dedupe"]
            assert run.start(*args, "--run-dir", str(run_dir)).proc.wait(FINAL_TIMEOUT_S) == 4
        child = run.start("resume", "--all", str(tmp_path / "ws"), *run.base[:2])
        run.wait_for(child, lambda: bool(_journal_value(first, run_state)), "the first run")
        code, seconds = run.interrupt(child)
        _assert_stopped_promptly(code, seconds, child.output, "during resume --all")
        reasons = [_pause_reason(d) for d in (first, second)]
        assert reasons == ["interrupted", "no_wait"], "the second run was started after SIGINT"
        finish = run.start("resume", "--all", str(tmp_path / "ws"), *run.base[:2])
        assert finish.proc.wait(FINAL_TIMEOUT_S) == 0, finish.output[-3000:]
        stats = emu.control("stats")
        assert "Traceback" not in run.record_outputs()
        for run_dir in (first, second):
            assert_run_lost_nothing(run_dir, run.n, stats)


def _pause_reason(run_dir: Path) -> str:
    db = sqlite3.connect(f"file:{run_dir / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        (reason,) = db.execute("SELECT pause_reason FROM run").fetchone()
    finally:
        db.close()
    return str(reason)
