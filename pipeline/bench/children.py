"""Benchmark plumbing: dsar as a measured child process, its inputs and its config.

:func:`run_dsar` starts ``python -m pipeline ARGS`` and reaps it with ``os.wait4``, which gives
that one child's own CPU seconds. Its peak RSS is the child's own ``VmHWM``, written by the
child itself at exit (:data:`MEASURE`): the ``ru_maxrss`` of a reaped child starts from the
parent's RSS at fork time, so a big benchmark parent would inflate every child's figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv


@dataclass(frozen=True)
class ChildResult:
    """How one measured child process went."""

    exit_code: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    stderr_tail: str


HWM_ENV = "DSAR_BENCH_HWM_FILE"
# ``python -c MEASURE MODULE ARGS`` runs MODULE as ``-m`` would, and at exit writes its own
# peak RSS (VmHWM, in kB) to the file named by HWM_ENV.
MEASURE = """
import atexit, os, runpy, sys
def _hwm():
    with open("/proc/self/status", encoding="ascii") as fh:
        kb = next(line.split()[1] for line in fh if line.startswith("VmHWM:"))
    with open(os.environ["DSAR_BENCH_HWM_FILE"], "w", encoding="ascii") as out:
        out.write(kb)
atexit.register(_hwm)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def _hwm_file(log: Path) -> Path:
    return log.with_name(log.name + ".hwm")


def spawn(argv: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m MODULE ARGS`` (``argv`` is ``["-m", MODULE, *ARGS]``) with ``env``
    added to this environment and output into ``log``; it records its own peak RSS."""
    if argv[:1] != ["-m"] or len(argv) < 2:
        raise ValueError("spawn runs modules: argv must start with -m MODULE")
    hwm = _hwm_file(log)
    hwm.unlink(missing_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", MEASURE, *argv[1:]],
            env={**os.environ, **env, HWM_ENV: str(hwm)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def reap(proc: subprocess.Popen[bytes], started: float, log: Path) -> ChildResult:
    """Wait for ``proc`` (started at monotonic ``started``) and return its own usage."""
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    tail = log.read_text(encoding="utf-8", errors="replace")[-2000:] if log.exists() else ""
    hwm = _hwm_file(log)
    peak_kb = int(hwm.read_text(encoding="ascii")) if hwm.exists() else 0  # 0: it was killed
    return ChildResult(
        exit_code=proc.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=peak_kb / 1024,
        stderr_tail=tail,
    )


def run_dsar(args: Sequence[str], env: Mapping[str, str], log: Path) -> ChildResult:
    """``python -m pipeline ARGS`` to the end, measured."""
    started = time.monotonic()
    return reap(spawn(["-m", "pipeline", *args], env, log), started, log)


def check(result: ChildResult, what: str, ok: Sequence[int] = (0, 1)) -> ChildResult:
    """``result``, or RuntimeError with the tail of its output when its exit code is not ok."""
    if result.exit_code not in ok:
        last = result.stderr_tail.strip().splitlines()[-3:]
        raise RuntimeError(f"{what} exited {result.exit_code}: {' | '.join(last)}")
    return result


def write_subjects_csv(path: Path, subjects: int, action: str = "access+delete") -> Path:
    """A wide CSV of ``subjects`` clean subjects (key, email), each asking for ``action``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = [f"S{i:08d}" for i in range(subjects)]
    table = pa.table(
        {
            "subject_key": keys,
            "email": [f"bench.{k.lower()}@example.org" for k in keys],
            "action": pa.repeat(action, subjects) if subjects else pa.array([], pa.string()),
        }
    )
    pcsv.write_csv(table, path)
    return path


def write_toml(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    """A TOML file of flat sections (values are JSON-compatible, which TOML reads as is)."""
    lines = []
    for name, body in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in body.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def dsar_config(path: Path, **sections: Mapping[str, Any]) -> Path:
    """A dsar config for a benchmark against an emulator without limits, plus ``sections``."""
    merged: dict[str, dict[str, Any]] = {
        "poll": {"interval_s": 0.5},
        "limits": {
            "requests_per_second": 100_000,
            "max_in_flight": 16,
            "daily_job_cap": 1_000_000_000,
        },
    }
    for name, body in sections.items():
        merged.setdefault(name, {}).update(body)
    return write_toml(path, merged)


def child_json(module: str, args: Sequence[str]) -> dict[str, float]:
    """Run ``python -m MODULE ARGS`` (a bench measurement in a fresh process) and return the
    JSON object of its last stdout line; RuntimeError with its last stderr line if it fails."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, check=False, text=True
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"bench child {module} {' '.join(args[:1])} failed: {last}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def read_json(path: Path) -> Any:
    """The JSON document at ``path``."""
    return json.loads(path.read_text(encoding="utf-8"))
