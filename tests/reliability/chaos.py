"""The chaos driver: ``python -m pipeline run`` SIGKILLed at seeded random moments, resumed.

:func:`chaos_run` starts an emulator process, writes an input, starts ``dsar run`` in a child
process and, for each kill point, lets it run for a seeded random time before a SIGKILL, then
continues with ``dsar resume RUN_DIR`` (or a fresh ``dsar run`` when the kill landed before the
plan was written, since such a run is started again). A last resume runs to the end.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.emuproc import EmulatorProcess
from tests.reliability.checks import NO_PRODUCT_ERRORS
from tests.run.conftest import FAST_SIMULATION, write_config, write_subjects

REPO = Path(__file__).resolve().parents[2]
FINAL_TIMEOUT_S = 90.0
# One access job in ten: downloads are killed too, without making the run slow.
CHAOS_ACTIONS = ("delete",) * 9 + ("access",)
# Reconciliation settles the reservation of every POST a kill interrupted, so the budget
# leaks only for a kill in the instant between the ledger's reserve and the journal's intent
# (or between the journal's record and the ledger's commit). A small margin over the input
# covers those; before the settling, ten kills left ~700 jobs booked and the run short.
DAILY_CAP = 20_500


@dataclass
class ChaosResult:
    """What a chaos run did and left behind."""

    run_dir: Path
    n_rows: int
    exit_code: int
    kills: int = 0
    finished_early: int = 0
    jobs_at_kill: list[int] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    stderr: str = ""
    identities: list[str] = field(default_factory=list)


def _child_env(emu_env: Mapping[str, str], reconcile: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSAR_", "ADOBE_"))}
    env.update(emu_env)
    env["PYTHONPATH"] = str(REPO)
    if not reconcile:
        env["DSAR_UNSAFE_NO_RECONCILE"] = "1"
    return env


class _Segments:
    """Starts dsar children one after the other, their output appended to one log."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log

    def start(self, args: list[str]) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "pipeline", *args],
                env=self.env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )


def chaos_run(
    tmp_path: Path,
    *,
    n: int,
    kills: int,
    seed: int,
    reconcile: bool = True,
    ambiguous_post_rate: float = 0.0,
    kill_window_s: tuple[float, float] = (0.6, 2.5),
) -> ChaosResult:
    """Run ``n`` subjects to the end through ``kills`` SIGKILLs; see the module docstring."""
    rng = random.Random(seed)
    emulator = {
        "seed": seed,
        "limits": {"requests_per_second": 0, "daily_job_cap": DAILY_CAP},
        "simulation": {**FAST_SIMULATION, **NO_PRODUCT_ERRORS},
        # a little latency, so that kills land while requests are in flight
        "faults": {"latency_s": [0.0, 0.005], "ambiguous_post_rate": ambiguous_post_rate},
    }
    identities = write_subjects(tmp_path / "in.csv", n, seed=seed, actions=CHAOS_ACTIONS)
    cfg = write_config(
        tmp_path / "c.toml",
        limits={"users_per_request": 100, "max_in_flight": 16, "daily_job_cap": DAILY_CAP},
        api={"backoff_cap_s": 1.0},
    )
    ws = tmp_path / "ws"
    log = tmp_path / "dsar.log"
    with EmulatorProcess(emulator, tmp_path) as emu:
        segments = _Segments(_child_env(emu.env, reconcile), log)
        attempt = 0
        run_dir = ws / f"run-{attempt}"
        base = ["--config", str(cfg), "--workspace", str(ws)]
        run_args = ["run", str(tmp_path / "in.csv"), *base, "--yes"]
        result = ChaosResult(run_dir=run_dir, n_rows=n, exit_code=-1, identities=identities)
        proc = segments.start([*run_args, "--run-dir", str(run_dir)])
        while result.kills + result.finished_early < kills:
            try:
                code = proc.wait(timeout=rng.uniform(*kill_window_s))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
                result.kills += 1
                result.jobs_at_kill.append(int(emu.control("health")["jobs"]))
            else:
                result.finished_early += 1
                if code == 0:
                    break
            if (run_dir / "journal.sqlite").exists() and _planned(run_dir):
                proc = segments.start(["resume", str(run_dir), *base[:2]])
            else:  # killed before the plan was written: such a run is started again
                attempt += 1
                run_dir = ws / f"run-{attempt}"
                proc = segments.start([*run_args, "--run-dir", str(run_dir)])
        result.exit_code = proc.wait(FINAL_TIMEOUT_S)
        for _ in range(3):
            if result.exit_code != 4:  # 4: paused with work pending, e.g. by a kill's lease
                break
            proc = segments.start(["resume", str(run_dir), *base[:2]])
            result.exit_code = proc.wait(FINAL_TIMEOUT_S)
        result.run_dir = run_dir
        result.stats = emu.control("stats")
    result.stderr = log.read_text(encoding="utf-8", errors="replace")
    return result


def _planned(run_dir: Path) -> bool:
    """Whether the journal of ``run_dir`` holds a plan (no dsar process is running now)."""
    db = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        (count,) = db.execute("SELECT COUNT(*) FROM run").fetchone()
    except sqlite3.Error:
        return False
    finally:
        db.close()
    return bool(count)
