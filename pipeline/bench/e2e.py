"""Bench section ``e2e``: a whole ``dsar run`` of access+delete subjects, beside raw HTTP.

The emulator runs in its own process with its limits off; ``dsar run`` runs in another, reaped
with ``os.wait4`` for its own CPU seconds and peak RSS. API calls by endpoint come from the
run's ``summary.json``. The baseline is a bare aiohttp client (``python -m pipeline.bench.e2e
raw``, also a child) sending ``GET jobs/{id}`` of one of the run's jobs, 16 at a time: its wall
time and CPU for dsar's number of calls are extrapolated from a sample, so each of dsar's
figures reads as "so many times what the HTTP alone costs on this machine, in this run".
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

from . import Figure
from .children import (
    ChildResult,
    check,
    read_json,
    reap,
    run_argv,
    run_dsar,
    spawn,
)
from .emuproc import FAST, NO_LIMITS, EmulatorProcess

SECTION = "e2e"
MAX_RSS_MB = 400
FULL_SUBJECTS = 100_000
QUICK_SUBJECTS = 1_000
RAW_SAMPLE = 20_000
RAW_CONCURRENCY = 16


def emulator_config() -> dict[str, Any]:
    """The emulator of the end-to-end run: seeded, fast jobs, limits off."""
    return {"seed": 7, "simulation": dict(FAST), "limits": dict(NO_LIMITS)}


def run(quick: bool, workdir: Path) -> list[Figure]:
    """Run dsar end to end and the raw baseline; return this section's figures."""
    subjects = QUICK_SUBJECTS if quick else FULL_SUBJECTS
    argv = run_argv(workdir, subjects)
    run_dir = workdir / "run"
    with EmulatorProcess(emulator_config()) as emu:
        emu_cpu = emu.cpu_s()
        result = check(run_dsar(argv, emu.env, workdir / "run.log"), "dsar run")
        emu_cpu = emu.cpu_s() - emu_cpu
        summary = read_json(run_dir / "summary.json")
        calls = {ep: sum(by.values()) for ep, by in summary["api_calls"].items()}
        total = sum(calls.values())
        sample = min(total, RAW_SAMPLE if not quick else 2_000)
        raw = check(
            run_dsar_module(["raw", str(sample), _a_job_id(run_dir)], emu.env, workdir),
            "raw baseline",
            ok=(0,),
        )
    return _figures(subjects, summary, calls, result, raw, sample, emu_cpu, quick)


def run_dsar_module(args: list[str], env: dict[str, str], workdir: Path) -> ChildResult:
    """``python -m pipeline.bench.e2e ARGS`` as a measured child."""
    log = workdir / "raw.log"
    started = time.monotonic()
    return reap(spawn(["-m", "pipeline.bench.e2e", *args], env, log), started, log)


def _a_job_id(run_dir: Path) -> str:
    status = pq.read_table(run_dir / "status.parquet", columns=["job_id"]).column("job_id")
    return str(next(j for j in status.to_pylist() if j))


def _figures(
    subjects: int,
    summary: dict[str, Any],
    calls: dict[str, int],
    result: ChildResult,
    raw: ChildResult,
    sample: int,
    emu_cpu: float,
    quick: bool,
) -> list[Figure]:
    total = sum(calls.values())
    jobs = int(summary["counts"]["total"])
    scale = total / sample if sample else 0.0
    raw_wall, raw_cpu = raw.wall_s * scale, raw.cpu_s * scale
    label = f"{subjects:,} subjects x (access, delete)"
    raw_name = f"bare aiohttp GETs, same call count (from {sample:,})"
    figures = [
        Figure(SECTION, f"{label}: wall time", result.wall_s, "s", raw_wall, raw_name),
        Figure(SECTION, "client CPU", result.cpu_s, "s", raw_cpu, raw_name),
        Figure(SECTION, "emulator CPU (its own process)", emu_cpu, "s"),
        Figure(
            SECTION,
            "client peak RSS",
            result.peak_rss_mb,
            "MB",
            raw.peak_rss_mb,
            "bare aiohttp client",
            target=f"<= {MAX_RSS_MB} MB",
            ok=None if quick else result.peak_rss_mb <= MAX_RSS_MB,
        ),
        Figure(SECTION, "jobs finished per second", jobs / result.wall_s, "jobs/s"),
        Figure(
            SECTION,
            "API calls in all",
            total,
            "calls",
            float(jobs),
            "jobs",
        ),
    ]
    for endpoint, count in sorted(calls.items()):
        figures.append(Figure(SECTION, f"calls: {endpoint}", count, "calls", float(jobs), "jobs"))
    return figures


async def _raw(count: int, job_id: str, env: dict[str, str]) -> None:
    """``count`` GETs of one job with a bare aiohttp session, RAW_CONCURRENCY at a time."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        form = {
            "grant_type": "client_credentials",
            "client_id": env["ADOBE_CLIENT_ID"],
            "client_secret": env["ADOBE_CLIENT_SECRET"],
            "scope": "openid,AdobeID,read_organizations",
        }
        async with session.post(env["DSAR_IMS_URL"] + "ims/token/v3", data=form) as resp:
            token = (await resp.json())["access_token"]
        headers = {
            "Authorization": f"Bearer {token}",
            "x-api-key": env["ADOBE_CLIENT_ID"],
            "x-gw-ims-org-id": env["ADOBE_ORG_ID"],
            "Accept": "application/json",
        }
        url = f"{env['DSAR_API_BASE_URL']}jobs/{job_id}"
        left = iter(range(count))
        failures = 0

        async def worker() -> None:
            nonlocal failures
            for _ in left:
                async with session.get(url, headers=headers) as resp:
                    body = await resp.read()
                    failures += resp.status != 200 or not orjson.loads(body)

        await asyncio.gather(*(worker() for _ in range(RAW_CONCURRENCY)))
    if failures:
        raise SystemExit(f"{failures} of {count} raw GETs failed")


if __name__ == "__main__":
    if sys.argv[1:2] != ["raw"]:
        raise SystemExit("usage: python -m pipeline.bench.e2e raw COUNT JOB_ID")
    asyncio.run(_raw(int(sys.argv[2]), sys.argv[3], dict(os.environ)))
