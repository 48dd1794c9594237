"""Measure the emulator at scale: fill a backend with N jobs, then time list and get calls.

``python -m pipeline.emulator.scale --jobs 1000000`` prints one JSON object: jobs held, fill
time, peak RSS, and the median / worst latency of list pages and job gets. Jobs are created
through the backend directly (the same code path as POST /jobs after validation), 1000 users
per request, access and delete, three products each.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from typing import Any

from .backend import PrivacyBackend
from .config import ClientConfig, EmulatorConfig, LimitsConfig
from .validation import CreateSpec, UserSpec

_PRODUCTS = ("Analytics", "AudienceManager", "Profile")


def fill(backend: PrivacyBackend, jobs: int, *, users_per_request: int = 1000) -> None:
    """Create ``jobs`` jobs (two actions per user) for the first client, spread over two days."""
    client = backend.config.clients[0]
    users_total = jobs // 2
    made = 0
    while made < users_total:
        count = min(users_per_request, users_total - made)
        users = tuple(
            UserSpec(
                f"subject-{made + i:09d}",
                ("access", "delete"),
                (("email", f"s{made + i}@example.com", "standard", 6, False),),
            )
            for i in range(count)
        )
        spec = CreateSpec(users=users, include=_PRODUCTS, regulation="gdpr")
        backend.add_jobs(client, spec, backend.clock.now())
        backend.stats.record_created([(u.key, a) for u in users for a in u.actions])
        made += count
        backend.advance(60)


def _timed(fn: Any, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def measure(jobs: int) -> dict[str, Any]:
    """Fill a fresh backend with ``jobs`` jobs and time list/get; returns the figures."""
    config = EmulatorConfig(
        clock_frozen=True,
        clock_start="2026-03-02T00:00:00",
        clients=(ClientConfig(),),
        limits=LimitsConfig(requests_per_second=0, daily_job_cap=10**9),
    )
    backend = PrivacyBackend(config)
    started = time.perf_counter()
    fill(backend, jobs)
    fill_s = time.perf_counter() - started
    client = config.clients[0]
    backend.advance(10)
    total = len(backend.store)
    last_page = max(0, (total - 1) // 1000)
    ids = [j.job_id for j in list(backend.store)[:: max(1, total // 200)]]
    url = "http://127.0.0.1/content"

    def list_last_page() -> None:
        body = backend.list_jobs(
            client, {"regulation": "gdpr", "size": "1000", "page": str(last_page)}
        )
        assert body["totalRecords"] == total

    def list_first_page_100() -> None:
        backend.list_jobs(client, {"regulation": "gdpr"})

    def list_by_status() -> None:
        backend.list_jobs(client, {"regulation": "gdpr", "status": "error", "size": "1000"})

    def get_jobs() -> None:
        for job_id in ids:
            backend.get_job(client, job_id, url)

    list_med, list_max = _timed(list_last_page, 20)
    small_med, small_max = _timed(list_first_page_100, 20)
    status_med, status_max = _timed(list_by_status, 3)
    get_med, get_max = _timed(get_jobs, 5)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "jobs": total,
        "fill_s": round(fill_s, 1),
        "peak_rss_mb": round(peak_kb / 1024),
        "list_page_1000_ms": {"median": round(list_med, 2), "max": round(list_max, 2)},
        "list_page_100_ms": {"median": round(small_med, 2), "max": round(small_max, 2)},
        "list_status_filter_ms": {"median": round(status_med, 1), "max": round(status_max, 1)},
        "get_job_ms": {
            "median": round(get_med / len(ids), 3),
            "max": round(get_max / len(ids), 3),
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point: print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs to create")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.jobs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
