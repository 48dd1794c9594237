"""The real client against the in-process emulator over a real socket."""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.api.client import PrivacyServiceClient
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.transport import RawResponse, Redactor, raise_for_status
from pipeline.emulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_ORG_ID,
    EmulatorConfig,
    LimitsConfig,
    SimulationConfig,
)
from pipeline.emulator.errors import (
    DailyLimitExceeded,
    DocumentRateLimited,
    InvalidApiKey,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    WireError,
)
from pipeline.emulator.server import RunningEmulator, start_emulator
from pipeline.errors import (
    AmbiguousSubmission,
    DailyCapReached,
    NotFoundError,
    PermissionDeniedError,
    RequestRejected,
    ThrottledError,
    UnavailableError,
)
from pipeline.models import Action, Identity, JobRequest, JobStatus, RequestOptions, UserRequest
from pipeline.settings import ApiSettings, Credentials, LimitSettings, Secret, Settings

DAY_S = 86_400
EXACT = SimulationConfig(product_error_rate=0.0, ids_not_found_rate=0.0, partial_rate=0.0)
BASE_CONFIG = EmulatorConfig(
    clock_frozen=True,
    clock_start="2026-03-01T12:00:00",
    limits=LimitsConfig(requests_per_second=0),
    simulation=EXACT,
)


def settings_for(emu: RunningEmulator, *, rps: float = 500.0, in_flight: int = 64) -> Settings:
    return Settings(
        api=ApiSettings(base_url=emu.base_url, ims_url=emu.ims_url, timeout_s=20.0),
        limits=LimitSettings(requests_per_second=rps, max_in_flight=in_flight),
        credentials=Credentials(
            client_id=Secret(DEFAULT_CLIENT_ID),
            client_secret=Secret(DEFAULT_CLIENT_SECRET),
            org_id=DEFAULT_ORG_ID,
        ),
    )


def a_request(keys: list[str], actions: tuple[Action, ...] = (Action.ACCESS,)) -> JobRequest:
    return JobRequest(
        options=RequestOptions(regulation="gdpr", include=("profileService", "aepDataLake")),
        users=tuple(
            UserRequest(key=k, actions=actions, identities=(Identity("email", f"{k}@ex.org"),))
            for k in keys
        ),
    )


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with await start_emulator(BASE_CONFIG) as running:
        yield running


def emulator_requests(emu: RunningEmulator) -> dict[str, dict[str, int]]:
    stats: dict[str, Any] = emu.backend.stats.to_dict()
    return stats["requests"]  # type: ignore[no-any-return]


async def test_every_endpoint_round_trips(emu: RunningEmulator, tmp_path: Path) -> None:
    async with PrivacyServiceClient.from_settings(settings_for(emu)) as client:
        request = a_request(["u-1", "u-2"], (Action.ACCESS, Action.DELETE))
        created = await client.create_jobs(request)
        ids = created.job_ids()
        assert set(ids) == {(k, a) for k in ("u-1", "u-2") for a in (Action.ACCESS, Action.DELETE)}
        assert created.request_id

        first = await client.get_job(ids[("u-1", Action.ACCESS)])
        assert first.status in (JobStatus.SUBMITTED, JobStatus.PROCESSING)
        assert first.regulation == "gdpr"
        assert first.created_at is not None
        assert first.created_at.date() == date(2026, 3, 1)

        emu.backend.advance(5 * DAY_S)
        listed = [
            j
            async for j in client.list_jobs(
                "gdpr", from_date=date(2026, 2, 20), to_date=date(2026, 3, 6)
            )
        ]
        assert {j.job_id for j in listed} == set(ids.values())
        assert {j.status for j in listed} == {JobStatus.COMPLETE}

        done = await client.get_job(ids[("u-1", Action.ACCESS)])
        assert done.status is JobStatus.COMPLETE
        assert {p.outcome for p in done.products} == {"success"}
        assert all(p.processed_at is not None for p in done.products)
        assert done.download_url is not None

        dest = tmp_path / "results" / "u1.zip"
        digest = await client.download_content(done.download_url, dest)
        data = dest.read_bytes()
        assert digest == hashlib.sha256(data).hexdigest()
        assert zipfile.ZipFile(io.BytesIO(data)).namelist()
        assert digest == await client.download_content(done.job_id, tmp_path / "again.zip")

        await client.opt_out([Identity("email", "u-1@ex.org"), Identity("ECID", "1" * 38)])

        assert client.last_server_date is not None
        assert client.last_server_date.date() == date(2026, 3, 6)
        counts = client.call_counts
    assert counts["POST jobs"] == {"202": 1}
    assert counts["GET jobs/{id}"] == {"200": 2}
    assert counts["GET jobs/{id}/content"] == {"200": 2}
    assert counts["POST consent"] == {"202": 1}
    # advancing five days expired the first token: one 401, one refresh, no error seen
    assert counts["GET jobs"] == {"200": 1, "401": 1}
    assert counts["POST ims/token/v3"] == {"200": 2}
    assert emu.backend.stats.consent_requests == 1


async def test_list_jobs_pages_through_2500_jobs_in_three_windows(emu: RunningEmulator) -> None:
    emu.backend.reconfigure({"lookback_days": 90, "job_retention_days": 120})
    async with PrivacyServiceClient.from_settings(settings_for(emu)) as client:
        expected: set[str] = set()
        for batch, size in enumerate((1000, 1000, 500)):
            if batch:
                emu.backend.advance(35 * DAY_S)  # Mar 1, Apr 5, May 10
            created = await client.create_jobs(a_request([f"b{batch}-{n}" for n in range(size)]))
            expected |= {j.job_id for j in created.jobs}
        seen = [
            j.job_id
            async for j in client.list_jobs(
                "gdpr", from_date=date(2026, 3, 1), to_date=date(2026, 5, 10), page_size=100
            )
        ]
        counts = client.call_counts
    assert len(seen) == 2500
    assert set(seen) == expected
    # three windows of 1000, 1000 and 500 jobs: 10 + 10 + 5 full pages; the overall
    # totalRecords ends each window without an empty page after its last full one
    assert counts["GET jobs"] == {"200": 25}


async def test_an_expired_token_is_refreshed_without_the_caller_noticing(
    emu: RunningEmulator,
) -> None:
    async with PrivacyServiceClient.from_settings(settings_for(emu)) as client:
        created = await client.create_jobs(a_request(["u-1"]))
        job_id = created.jobs[0].job_id
        emu.backend.advance(2 * DAY_S)  # past the 86,399 s token lifetime
        job = await client.get_job(job_id)
        assert job.job_id == job_id
        assert client.call_counts["GET jobs/{id}"] == {"200": 1, "401": 1}
    assert emulator_requests(emu)["POST ims/token/v3"] == {"200": 2}


async def test_fifty_concurrent_calls_meeting_a_401_cause_one_token_request(
    emu: RunningEmulator,
) -> None:
    async with PrivacyServiceClient.from_settings(settings_for(emu, in_flight=64)) as client:
        created = await client.create_jobs(a_request([f"u-{n}" for n in range(50)]))
        emu.backend.advance(2 * DAY_S)
        jobs = await asyncio.gather(*(client.get_job(j.job_id) for j in created.jobs))
        assert len(jobs) == 50
    requests = emulator_requests(emu)
    assert requests["POST ims/token/v3"] == {"200": 2}  # the first token and one refresh
    assert requests["GET jobs/{jobId}"] == {"401": 50, "200": 50}


@pytest.mark.slow
async def test_twenty_per_second_with_32_callers_never_exceeds_the_rate_and_loses_no_call() -> None:
    # What holds on any machine. A loaded one wakes the limiter's sleepers late, and requests
    # queued behind a late one go out closer together than their turns, so the service's
    # sliding window may answer 429 there: the client must then back off and lose nothing.
    # No 429 and the rate used in full are proved on a virtual clock in test_ratelimit.py.
    config = replace(BASE_CONFIG, limits=LimitsConfig(requests_per_second=20))
    async with await start_emulator(config) as emu:
        async with PrivacyServiceClient.from_settings(
            settings_for(emu, rps=20, in_flight=32)
        ) as client:
            assert isinstance(client.limiter, RateLimiter)
            assert (client.limiter.ceiling, client.limiter.max_in_flight) == (20, 32)
            created = await client.create_jobs(a_request(["u-1"]))
            job_id = created.jobs[0].job_id
            calls = iter(range(100))

            async def caller() -> None:
                for _ in calls:
                    await client.get_job(job_id)

            await asyncio.gather(*(caller() for _ in range(32)))
            signals = client.limiter.throttle_signals
        stats: dict[str, Any] = emu.backend.stats.to_dict()
    requests = stats["requests"]
    assert requests["POST jobs"].get("202") == 1
    assert requests["GET jobs/{jobId}"].get("200") == 100  # every call answered in the end
    assert signals == stats["throttled"]  # every 429 reached the limiter
    sent = sum(sum(v.values()) for k, v in requests.items() if not k.endswith("token/v3"))
    assert sent == 101 + stats["throttled"]  # a 429 costs one retry, nothing more
    elapsed = stats["last_request_monotonic"] - stats["first_request_monotonic"]
    used = (sent - 1) / elapsed
    print(f"sent {used:.2f} req/s of 20 over {elapsed:.2f} s, {stats['throttled']} answered 429")
    assert used <= 20  # a slow machine spaces requests wider, never narrower


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (DocumentRateLimited(3), ThrottledError),
        (TooManyRequests(2), ThrottledError),
        (DailyLimitExceeded(20_000, 19_999, 4), DailyCapReached),
        (InvalidRequest("size must be at most 1000"), RequestRejected),
        (NotFound("job not found"), NotFoundError),
        (InvalidApiKey(), PermissionDeniedError),
        (ServiceUnavailable("try later"), UnavailableError),
    ],
)
def test_the_emulators_wire_errors_classify_as_the_client_expects(
    error: WireError, expected: type[Exception]
) -> None:
    resp = RawResponse("POST jobs", error.status, error.headers, orjson.dumps(error.body()))
    with pytest.raises(expected) as info:
        raise_for_status(resp, Redactor())
    if isinstance(info.value, ThrottledError):
        assert info.value.retry_after_s == float(error.headers["Retry-After"])


async def test_the_daily_cap_and_unknown_jobs_against_the_emulator(emu: RunningEmulator) -> None:
    emu.backend.reconfigure({"limits": {"daily_job_cap": 3}})
    async with PrivacyServiceClient.from_settings(settings_for(emu)) as client:
        with pytest.raises(DailyCapReached):
            await client.create_jobs(a_request(["u-1", "u-2"], (Action.ACCESS, Action.DELETE)))
        with pytest.raises(NotFoundError):
            await client.get_job("00000000-0000-0000-0000-000000000000")
        counts = client.call_counts
    assert counts["POST jobs"] == {"400": 1}
    assert counts["GET jobs/{id}"] == {"404": 1}


async def test_a_post_that_fails_after_creating_jobs_is_ambiguous_and_not_resent(
    emu: RunningEmulator,
) -> None:
    emu.backend.reconfigure({"faults": {"ambiguous_post_rate": 1.0}})
    async with PrivacyServiceClient.from_settings(settings_for(emu)) as client:
        with pytest.raises(AmbiguousSubmission):
            await client.create_jobs(a_request(["u-1"]))
    stats: dict[str, Any] = emu.backend.stats.to_dict()
    assert sum(stats["requests"]["POST jobs"].values()) == 1
    assert stats["posts_per_user_key"] == {"u-1": {"access": 1}}
