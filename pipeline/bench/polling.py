"""Bench section ``polling``: API calls per job until terminal, dsar's poller beside a naive one.

One emulator (its own process, frozen clock, jobs that take 2 to 7 simulated days) holds the
jobs of one ``dsar run --no-wait``. Then, one round per simulated hour for a week, the clock
moves an hour and both clients look at the same jobs:

- the **naive** client (written here, over dsar's own HTTP client) GETs every job it has not
  yet seen terminal;
- dsar's :class:`~pipeline.run.poller.Poller` runs one round: list sweeps, and one GET per job
  that left the in-progress list.

Status calls are counted per client (``GET jobs`` and ``GET jobs/{id}``); result downloads are
the same for any client and are left out of both counts.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ..api.client import EP_GET, EP_LIST, PrivacyServiceClient
from ..api.ratelimit import RateLimiter
from ..journal.models import JobState
from ..journal.store import Journal
from ..run.runner import run_poller
from ..run.target import Target
from . import Figure
from .children import check, dsar_config, run_dsar, write_subjects_csv
from .emuproc import NO_LIMITS, EmulatorProcess

SECTION = "polling"
MIN_RATIO = 50.0
DAY = 86_400.0
NAIVE_CONCURRENCY = 16


@dataclass(frozen=True)
class Scale:
    """Subjects (each access + delete: two jobs) and simulated hours between rounds."""

    subjects: int
    round_hours: float


FULL = Scale(subjects=250, round_hours=1.0)
QUICK = Scale(subjects=50, round_hours=6.0)


def emulator_config() -> dict[str, Any]:
    """Frozen clock; products take 2 to 7 simulated days; no limits."""
    return {
        "seed": 11,
        "token_lifetime_s": 30 * 86_400,  # a week of tokens: the figures are about polling
        "clock_frozen": True,
        "clock_start": "2026-03-02T09:00:00",
        "limits": dict(NO_LIMITS),
        "simulation": {
            "time_scale": 1.0,
            "ack_delay_s": [60.0, 3_600.0],
            "processing_s": [2 * DAY, 6.9 * DAY],
        },
    }


@dataclass
class Tally:
    """Status calls and the jobs still open, for one client."""

    calls: int = 0
    rounds: int = 0


def run(quick: bool, workdir: Path) -> list[Figure]:
    """Submit the jobs, poll them both ways over the same week; return the figures."""
    scale = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    source = write_subjects_csv(workdir / "subjects.csv", scale.subjects)
    config = dsar_config(workdir / "dsar.toml")
    run_dir = workdir / "run"
    with EmulatorProcess(emulator_config()) as emu:
        check(
            run_dsar(
                [
                    *("run", str(source), "--config", str(config), "--run-dir", str(run_dir)),
                    *("--workspace", str(workdir / "ws"), "--yes", "--no-wait"),
                ],
                emu.env,
                workdir / "run.log",
            ),
            "dsar run --no-wait",
            ok=(4,),
        )
        started = time.monotonic()
        dsar, naive, jobs = asyncio.run(_poll_both(emu, run_dir, scale))
        elapsed = time.monotonic() - started
    return _figures(dsar, naive, jobs, scale, elapsed, quick)


async def _poll_both(emu: EmulatorProcess, run_dir: Path, scale: Scale) -> tuple[Tally, Tally, int]:
    env = emu.env
    status = pq.read_table(run_dir / "status.parquet", columns=["job_id"]).column("job_id")
    naive_open = {j for j in status.to_pylist() if j}
    async with run_poller(run_dir, env) as poller:
        journal, client = poller.ctx.journal, poller.ctx.client
        target = Target(settings=poller.ctx.settings, embedded=False)
        async with _naive_client(target) as naive_client:
            dsar, naive = Tally(), Tally()
            rounds = int(7 * 24 / scale.round_hours) + 1
            for _ in range(rounds):
                if not naive_open and not _dsar_open(journal):
                    break
                emu.advance(scale.round_hours * 3600)
                if naive_open:
                    naive.rounds += 1
                    naive_open -= await _naive_round(naive_client, naive_open)
                if _dsar_open(journal):
                    dsar.rounds += 1
                    await poller.round()
            counts = client.call_counts
            dsar.calls = sum(sum(counts.get(ep, {}).values()) for ep in (EP_LIST, EP_GET))
            naive.calls = naive_client.stats.total(EP_GET)
        jobs = sum(journal.counts().jobs.values())
        if naive_open or _dsar_open(journal):
            raise RuntimeError("jobs still open after the simulated week")
    return dsar, naive, jobs


def _dsar_open(journal: Journal) -> bool:
    jobs = journal.counts().jobs
    return bool(
        jobs[JobState.SUBMITTED] + jobs[JobState.PROCESSING] or journal.jobs_needing_details(1)
    )


def _naive_client(target: Target) -> PrivacyServiceClient:
    """dsar's HTTP client with plenty of concurrency: only the polling strategy differs."""
    limiter = RateLimiter(requests_per_second=100_000, max_in_flight=NAIVE_CONCURRENCY)
    return PrivacyServiceClient.from_settings(target.settings, limiter=limiter)


async def _naive_round(client: PrivacyServiceClient, open_jobs: set[str]) -> set[str]:
    """GET every open job once; returns the ones now terminal."""
    done: set[str] = set()
    left = iter(sorted(open_jobs))

    async def worker() -> None:
        for job_id in left:
            details = await client.get_job(job_id)
            if details.status.terminal:
                done.add(job_id)

    await asyncio.gather(*(worker() for _ in range(NAIVE_CONCURRENCY)))
    return done


def _figures(
    dsar: Tally, naive: Tally, jobs: int, scale: Scale, elapsed: float, quick: bool
) -> list[Figure]:
    dsar_per_job = dsar.calls / jobs
    naive_per_job = naive.calls / jobs
    ratio = naive_per_job / dsar_per_job if dsar_per_job else 0.0
    every = f"a round every {scale.round_hours:g} simulated h"
    naive_name = "naive: GET every open job every round"
    return [
        Figure(
            SECTION,
            f"{jobs:,} jobs, {every}: dsar status calls per job",
            dsar_per_job,
            "calls/job",
            naive_per_job,
            naive_name,
        ),
        Figure(
            SECTION,
            "fewer calls per job than the naive client",
            ratio,
            "x",
            1.0,
            "naive",
            target=f">= {MIN_RATIO:g}x",
            ok=None if quick else ratio >= MIN_RATIO,
        ),
        Figure(
            SECTION,
            "rounds until every job was terminal",
            dsar.rounds,
            "rounds",
            naive.rounds,
            "naive",
        ),
        Figure(SECTION, "wall time of both clients' week", elapsed, "s"),
    ]
