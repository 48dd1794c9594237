"""Bench section ``rate``: utilisation and 429 share under a service limit of 50 requests/s.

The emulator (its own process) allows each API client 50 requests per sliding second and
answers 429 with ``Retry-After`` beyond that. The same amount of work, ``GET jobs`` calls worth
a fixed number of seconds at the limit, is done twice, each time by a client with its own
credentials (so each has its own window):

- **dsar**: its HTTP client with its shared :class:`~pipeline.api.ratelimit.RateLimiter` set to the
  limit, and 64 concurrent workers;
- **baseline** (written here): bare aiohttp, every request started at once (no concurrency
  bound), each retrying on its own after a 429 (Retry-After, plus jittered exponential backoff).

The emulator is the referee: its request counts by status give successes and 429s.
Utilisation is successful requests per second over the limit, from the first to the last answer.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from ..api.client import PrivacyServiceClient
from ..api.ratelimit import RateLimiter
from ..models import JobStatus
from ..settings import load_settings
from . import Figure
from .emuproc import EmulatorProcess

SECTION = "rate"
LIMIT_RPS = 50
WORKERS = 64
MIN_UTILISATION = 95.0
MAX_THROTTLED = 1.0
FULL_SECONDS = 20
QUICK_SECONDS = 3
ORG = "BENCHRATE000000000000000@AdobeOrg"
DSAR_CLIENT = {"client_id": "bench-rate-dsar", "client_secret": "bench-rate-dsar-secret"}
BASE_CLIENT = {"client_id": "bench-rate-base", "client_secret": "bench-rate-base-secret"}
SCOPE = "openid,AdobeID,read_organizations"


@dataclass(frozen=True)
class Outcome:
    """What the emulator saw of one client's work."""

    ok: int
    throttled: int
    elapsed_s: float

    @property
    def utilisation(self) -> float:
        """Successful requests per second, as a percentage of the limit."""
        return 100.0 * self.ok / (self.elapsed_s * LIMIT_RPS) if self.elapsed_s else 0.0

    @property
    def throttled_share(self) -> float:
        """429 answers as a percentage of every request sent."""
        sent = self.ok + self.throttled
        return 100.0 * self.throttled / sent if sent else 0.0


def emulator_config() -> dict[str, Any]:
    """Two clients of one org, each limited to LIMIT_RPS; no daily cap in the way."""
    clients = [{**c, "org_id": ORG} for c in (DSAR_CLIENT, BASE_CLIENT)]
    return {
        "seed": 5,
        "clients": clients,
        "limits": {"requests_per_second": LIMIT_RPS, "daily_job_cap": 1_000_000_000},
    }


def run(quick: bool, workdir: Path) -> list[Figure]:
    """Do the same work with both clients; return utilisation and 429 share of each."""
    calls = LIMIT_RPS * (QUICK_SECONDS if quick else FULL_SECONDS)
    with EmulatorProcess(emulator_config()) as emu:
        dsar = _measured(emu, lambda: _dsar(emu, calls))
        base = _measured(emu, lambda: _baseline(emu, calls))
    return _figures(dsar, base, calls, quick)


def _measured(emu: EmulatorProcess, work: Any) -> Outcome:
    before = _list_counts(emu)
    answers: list[float] = asyncio.run(work())
    elapsed = max(answers) - min(answers)
    after = _list_counts(emu)
    ok = after.get("200", 0) - before.get("200", 0)
    throttled = after.get("429", 0) - before.get("429", 0)
    return Outcome(ok=ok, throttled=throttled, elapsed_s=elapsed)


def _list_counts(emu: EmulatorProcess) -> dict[str, int]:
    by_status: dict[str, int] = emu.control("stats")["requests"].get("GET jobs", {})
    return by_status


def _today() -> Any:
    return datetime.now(UTC).date()


async def _dsar(emu: EmulatorProcess, calls: int) -> list[float]:
    """``calls`` list calls by dsar's client and limiter with WORKERS workers; returns the
    monotonic times of the answers."""
    env = {**emu.env, "ADOBE_CLIENT_ID": DSAR_CLIENT["client_id"]}
    env["ADOBE_CLIENT_SECRET"] = DSAR_CLIENT["client_secret"]
    env["ADOBE_ORG_ID"] = ORG
    settings = load_settings(None, env=env)
    limiter = RateLimiter(requests_per_second=LIMIT_RPS, max_in_flight=WORKERS)
    today = _today()
    left = iter(range(calls))
    answers: list[float] = []
    async with PrivacyServiceClient.from_settings(settings, limiter=limiter) as client:

        async def worker() -> None:
            for _ in left:
                await client.list_page(
                    "gdpr",
                    status=JobStatus.PROCESSING,
                    from_date=today,
                    to_date=today,
                    page=0,
                    page_size=100,
                )
                answers.append(time.monotonic())

        await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return answers


async def _baseline(emu: EmulatorProcess, calls: int) -> list[float]:
    """``calls`` list calls all at once with bare aiohttp, each backing off on its own;
    returns the monotonic times of the answers."""
    connector = aiohttp.TCPConnector(limit=0)  # no bound on connections in flight
    answers: list[float] = []
    async with aiohttp.ClientSession(connector=connector) as session:
        form = {**BASE_CLIENT, "grant_type": "client_credentials", "scope": SCOPE}
        async with session.post(emu.urls["ims_url"] + "ims/token/v3", data=form) as resp:
            token = (await resp.json())["access_token"]
        headers = {
            "Authorization": f"Bearer {token}",
            "x-api-key": BASE_CLIENT["client_id"],
            "x-gw-ims-org-id": ORG,
        }
        day = _today().strftime("%Y-%m-%d")
        params = {"regulation": "gdpr", "status": "processing", "fromDate": day, "toDate": day}
        url = emu.urls["base_url"] + "jobs"
        rng = random.Random(3)

        async def one() -> None:
            attempt = 0
            while True:
                async with session.get(url, params=params, headers=headers) as resp:
                    await resp.read()
                    answers.append(time.monotonic())
                    if resp.status != 429:
                        return
                    retry_after = float(resp.headers.get("Retry-After", "0"))
                attempt += 1
                backoff = rng.uniform(0, min(8.0, 0.1 * 2**attempt))
                await asyncio.sleep(retry_after + backoff)

        await asyncio.gather(*(one() for _ in range(calls)))
    return answers


def _figures(dsar: Outcome, base: Outcome, calls: int, quick: bool) -> list[Figure]:
    base_name = "unbounded concurrency, per-request backoff"
    head = f"{calls:,} calls at {LIMIT_RPS}/s, {WORKERS} workers"
    return [
        Figure(
            SECTION,
            f"{head}: utilisation of the limit",
            dsar.utilisation,
            "%",
            base.utilisation,
            base_name,
            target=f">= {MIN_UTILISATION:g} %",
            ok=None if quick else dsar.utilisation >= MIN_UTILISATION,
        ),
        Figure(
            SECTION,
            "share of calls throttled (429)",
            dsar.throttled_share,
            "%",
            base.throttled_share,
            base_name,
            target=f"<= {MAX_THROTTLED:g} %",
            ok=None if quick else dsar.throttled_share <= MAX_THROTTLED,
        ),
        Figure(SECTION, "time to do the work", dsar.elapsed_s, "s", base.elapsed_s, base_name),
    ]
