"""Retries: Retry-After honoured exactly, jittered backoff capped, POST jobs never re-sent."""

from __future__ import annotations

import aiohttp
import pytest
from aioresponses import aioresponses

from pipeline.api.client import PrivacyServiceClient
from pipeline.api.retry import RetryPolicy
from pipeline.errors import AmbiguousSubmission, DailyCapReached, UnavailableError
from tests.helpers.api import JOBS_URL, Recorder, a_request, answer, created_body, job_body, job_url
from tests.helpers.vclock import VirtualClock

from .test_error_mapping import DAILY_CAP, THROTTLE_CODE, THROTTLE_DETAIL


async def test_retry_after_is_honoured_to_the_second_without_jitter(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses
) -> None:
    api = Recorder(
        clock,
        answer(429, {"error_code": "429050", "message": "slow down"}, {"Retry-After": "7"}),
        answer(200, job_body()),
    )
    mocked.get(job_url("job-1"), callback=api, repeat=True)
    await clock.run(client.get_job("job-1"))
    assert len(api.times) == 2
    assert api.times[1] - api.times[0] == 7.0
    assert client.limiter.rate == 25  # halved from 50 by the throttle signal
    assert client.call_counts["GET jobs/{id}"] == {"200": 1, "429": 1}


async def test_a_retry_after_pauses_other_callers_too(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses
) -> None:
    throttled = Recorder(clock, answer(429, "", {"Retry-After": "5"}), answer(200, job_body()))
    other = Recorder(clock, answer(200, job_body("job-2")))
    mocked.get(job_url("job-1"), callback=throttled, repeat=True)
    mocked.get(job_url("job-2"), callback=other, repeat=True)

    async def both() -> None:
        await client.get_job("job-1")  # meets the 429 and closes the gate
        await client.get_job("job-2")

    await clock.run(both())
    assert other.times[0] >= throttled.times[0] + 5.0


async def test_1030_400_is_retried_after_its_retry_after(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses
) -> None:
    api = Recorder(clock, answer(400, THROTTLE_CODE, {"Retry-After": "3"}), answer(200, job_body()))
    mocked.get(job_url("job-1"), callback=api, repeat=True)
    await clock.run(client.get_job("job-1"))
    assert api.times[1] - api.times[0] == 3.0
    assert client.limiter.decreases == 1


async def test_1030_400_without_a_hint_backs_off_with_capped_jitter(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses
) -> None:
    client.retry = RetryPolicy(max_retries=5, base_s=0.5, cap_s=2.0)
    api = Recorder(clock, *([answer(400, THROTTLE_DETAIL)] * 5), answer(200, job_body()))
    mocked.get(job_url("job-1"), callback=api, repeat=True)
    await clock.run(client.get_job("job-1"))
    waits = [b - a for a, b in zip(api.times, api.times[1:], strict=False)]
    assert len(waits) == 5
    ceilings = [0.5, 1.0, 2.0, 2.0, 2.0]
    # full jitter: each wait lies in [0, ceiling] (plus the halved limiter spacing)
    assert all(0 <= w <= c + 1.0 for w, c in zip(waits, ceilings, strict=True))


@pytest.mark.parametrize(
    "failure",
    [
        answer(500, {"error_code": "500", "message": "internal"}),
        answer(504, "gateway timeout"),
        TimeoutError(),
        aiohttp.ServerDisconnectedError(),
    ],
    ids=["500", "504", "timeout", "disconnect"],
)
async def test_post_jobs_is_never_retried_after_an_ambiguous_failure(
    client: PrivacyServiceClient,
    clock: VirtualClock,
    mocked: aioresponses,
    failure: object,
) -> None:
    if isinstance(failure, BaseException):
        mocked.post(JOBS_URL, exception=failure, repeat=True)
    else:
        mocked.post(JOBS_URL, callback=Recorder(clock, failure), repeat=True)  # type: ignore[arg-type]
    with pytest.raises(AmbiguousSubmission) as info:
        await clock.run(client.create_jobs(a_request()))
    assert info.value.endpoint == "POST jobs"
    assert client.stats.total("POST jobs") == 1
    assert clock.sleeps == []


async def test_post_jobs_is_retried_when_throttled_because_nothing_was_created(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses
) -> None:
    request = a_request()
    api = Recorder(clock, answer(429, "", {"Retry-After": "2"}), answer(202, created_body(request)))
    mocked.post(JOBS_URL, callback=api, repeat=True)
    result = await clock.run(client.create_jobs(request))
    assert len(result.jobs) == 2
    assert api.times[1] - api.times[0] == 2.0


async def test_the_daily_cap_stops_submission_without_a_retry(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses
) -> None:
    mocked.post(JOBS_URL, callback=Recorder(clock, answer(400, DAILY_CAP)), repeat=True)
    with pytest.raises(DailyCapReached):
        await clock.run(client.create_jobs(a_request()))
    assert client.stats.total("POST jobs") == 1


async def test_reads_are_retried_on_5xx_and_give_up_after_max_retries(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses
) -> None:
    api = Recorder(clock, answer(503, ""), answer(502, ""), answer(200, job_body()))
    mocked.get(job_url("job-1"), callback=api, repeat=True)
    assert (await clock.run(client.get_job("job-1"))).job_id == "job-1"

    failing = Recorder(clock, answer(500, ""))
    mocked.get(job_url("job-2"), callback=failing, repeat=True)
    with pytest.raises(UnavailableError):
        await clock.run(client.get_job("job-2"))
    assert len(failing.times) == 1 + client.retry.max_retries


async def test_a_token_fetch_failure_before_post_jobs_is_retried_not_ambiguous(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses, tokens: Recorder
) -> None:
    request = a_request()
    tokens.answers = [answer(503, ""), *tokens.answers]
    mocked.post(JOBS_URL, callback=Recorder(clock, answer(202, created_body(request))))
    result = await clock.run(client.create_jobs(request))
    assert len(result.jobs) == 2
    assert len(tokens.times) == 2
