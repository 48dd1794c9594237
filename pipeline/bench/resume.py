"""Bench section ``resume``: from ``dsar resume`` of a fully submitted run to its first poll.

A real ``dsar run --no-wait`` submits every job of 100,000 access+delete subjects to the
emulator (its own process, limits off) and pauses. Then ``dsar resume RUN_DIR`` starts as a
child; the emulator reports, over a pipe, the moment the first ``GET jobs`` (list) call arrives.
The figure is the time from starting the child to that call: interpreter start, journal open,
settings, token, and the poller's first step. The baseline is ``dsar status RUN_DIR`` in the
same run: the same interpreter start and journal read, no API at all.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import Figure
from .children import check, reap, run_argv, run_dsar, spawn
from .emuproc import FAST, NO_LIMITS, EmulatorProcess

SECTION = "resume"
FULL_SUBJECTS = 100_000
QUICK_SUBJECTS = 1_000
FIRST_POLL_TIMEOUT_S = 600.0


def run(quick: bool, workdir: Path) -> list[Figure]:
    """Submit a run with --no-wait, then time its resume to the first list call."""
    subjects = QUICK_SUBJECTS if quick else FULL_SUBJECTS
    argv = run_argv(workdir, subjects, "--no-wait")
    run_dir = workdir / "run"
    emulator = {"seed": 3, "simulation": dict(FAST), "limits": dict(NO_LIMITS)}
    with EmulatorProcess(emulator) as emu:
        submit = check(
            run_dsar(argv, emu.env, workdir / "submit.log"),
            "dsar run --no-wait",
            ok=(4,),
        )
        status = check(
            run_dsar(["status", str(run_dir)], emu.env, workdir / "status.log"), "status"
        )
        emu.watch("GET jobs")
        log = workdir / "resume.log"
        started = time.monotonic()
        proc = spawn(["-m", "pipeline", "resume", str(run_dir)], emu.env, log)
        seen = emu.wait_seen(FIRST_POLL_TIMEOUT_S)
        proc.kill()  # the figure is taken; the rest of the run is not measured
        resumed = reap(proc, started, log)
        if seen is None:
            tail = resumed.stderr_tail.strip().splitlines()[-2:]
            raise RuntimeError(f"dsar resume made no list call: {' | '.join(tail)}")
    label = f"{subjects:,} subjects ({2 * subjects:,} jobs) submitted"
    return [
        Figure(
            SECTION,
            f"{label}: resume to first poll",
            seen - started,
            "s",
            status.wall_s,
            "dsar status (start + journal read)",
        ),
        Figure(SECTION, "submitting them (dsar run --no-wait)", submit.wall_s, "s"),
    ]
