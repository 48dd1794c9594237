"""Every answer the service or gateway can give maps to one exception of the tree."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from pipeline.api.client import PrivacyServiceClient
from pipeline.errors import (
    ApiTimeoutError,
    AuthError,
    DailyCapReached,
    MalformedResponse,
    NotFoundError,
    PermissionDeniedError,
    RequestRejected,
    ThrottledError,
    UnavailableError,
)
from tests.helpers.api import TOKEN, TOKEN_2, Recorder, answer, job_body, job_url
from tests.helpers.vclock import VirtualClock

PRIVACY_400 = {
    "errors": {
        "errorType": "uri=/data/core/privacy/jobs",
        "errorCode": 400,
        "title": "Invalid Request",
        "detail": "include must name at least one product",
    }
}
DAILY_CAP = {
    "errors": {
        "errorType": "uri=/data/core/privacy/jobs",
        "errorCode": 400,
        "title": "Daily upload limit exceeded",
        "detail": "The org has submitted 20000 jobs today.",
    }
}
THROTTLE_CODE = {
    "errors": {"errorCode": 400, "title": "Too many requests", "code": "PRVCY-1030-400"}
}
THROTTLE_DETAIL = {
    "errors": {"errorCode": 400, "title": "Bad request", "detail": "PRVCY-1030-400 slow down"}
}
GATEWAY_403 = {"error_code": "403003", "message": "Api Key is invalid"}


@pytest.mark.parametrize(
    ("status", "body", "expected", "fragment"),
    [
        (400, PRIVACY_400, RequestRejected, "include must name at least one product"),
        (400, DAILY_CAP, DailyCapReached, "Daily upload limit exceeded"),
        (400, {"error_code": "400", "message": "daily job limit reached"}, DailyCapReached, ""),
        (400, THROTTLE_CODE, ThrottledError, "PRVCY-1030-400"),
        (400, THROTTLE_DETAIL, ThrottledError, "PRVCY-1030-400"),
        (429, {"error_code": "429050", "message": "Too many requests"}, ThrottledError, ""),
        (403, GATEWAY_403, PermissionDeniedError, "Api Key is invalid"),
        (404, PRIVACY_400 | {"errors": {"title": "Not Found"}}, NotFoundError, "Not Found"),
        (409, "conflict", RequestRejected, "409"),
        (500, {"error_code": "500", "message": "boom"}, UnavailableError, "boom"),
        (503, "", UnavailableError, "503"),
    ],
)
async def test_error_answers_map_to_the_exception_tree(
    client: PrivacyServiceClient,
    clock: VirtualClock,
    mocked: aioresponses,
    status: int,
    body: Any,
    expected: type[Exception],
    fragment: str,
) -> None:
    client.retry = type(client.retry)(max_retries=0)
    mocked.get(job_url("job-1"), callback=Recorder(clock, answer(status, body)), repeat=True)
    with pytest.raises(expected) as info:
        await clock.run(client.get_job("job-1"))
    assert info.value.endpoint == "GET jobs/{id}"  # type: ignore[attr-defined]
    assert info.value.status == status  # type: ignore[attr-defined]
    assert fragment in str(info.value)
    assert "job-1" not in str(info.value)


async def test_1030_400_is_throttling_with_its_code_and_retry_after(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses
) -> None:
    client.retry = type(client.retry)(max_retries=0)
    mocked.get(
        job_url("job-1"),
        callback=Recorder(clock, answer(400, THROTTLE_CODE, {"Retry-After": "3"})),
    )
    with pytest.raises(ThrottledError) as info:
        await clock.run(client.get_job("job-1"))
    assert info.value.code == "PRVCY-1030-400"
    assert info.value.retry_after_s == 3


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError(), ApiTimeoutError),
        (aiohttp.ServerDisconnectedError(), UnavailableError),
        (aiohttp.ClientConnectionError("reset by peer"), UnavailableError),
    ],
)
async def test_network_failures_are_transient_errors(
    client: PrivacyServiceClient,
    clock: VirtualClock,
    mocked: aioresponses,
    exc: BaseException,
    expected: type[Exception],
) -> None:
    client.retry = type(client.retry)(max_retries=0)
    mocked.get(job_url("job-1"), exception=exc)
    with pytest.raises(expected) as info:
        await clock.run(client.get_job("job-1"))
    assert info.value.endpoint == "GET jobs/{id}"  # type: ignore[attr-defined]
    counts = client.call_counts["GET jobs/{id}"]
    assert counts == {"timeout" if expected is ApiTimeoutError else "connection_error": 1}


async def test_a_401_refreshes_the_token_once_and_repeats_the_call(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses, tokens: Recorder
) -> None:
    api = Recorder(
        clock,
        answer(401, {"error_code": "401013", "message": "Oauth token is not valid"}),
        answer(200, job_body()),
    )
    mocked.get(job_url("job-1"), callback=api, repeat=True)
    job = await clock.run(client.get_job("job-1"))
    assert job.job_id == "job-1"
    assert len(tokens.times) == 2
    assert [c["headers"]["Authorization"] for c in api.calls] == [
        f"Bearer {TOKEN}",
        f"Bearer {TOKEN_2}",
    ]


async def test_a_401_after_a_refresh_is_an_auth_error(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses, tokens: Recorder
) -> None:
    mocked.get(job_url("job-1"), callback=Recorder(clock, answer(401, "")), repeat=True)
    with pytest.raises(AuthError) as info:
        await clock.run(client.get_job("job-1"))
    assert info.value.exit_code == 5
    assert len(tokens.times) == 2


async def test_ims_refusing_the_credentials_is_an_auth_error(
    client: PrivacyServiceClient, clock: VirtualClock, tokens: Recorder
) -> None:
    tokens.answers = [answer(401, {"error": "invalid_client", "error_description": "bad"})]
    with pytest.raises(AuthError) as info:
        await clock.run(client.get_job("job-1"))
    assert "invalid_client" in str(info.value)
    assert info.value.endpoint == "POST ims/token/v3"


@pytest.mark.parametrize(
    "body",
    [
        "<html>gateway</html>",
        "[1, 2]",
        '{"jobId": 7, "status": "complete", "action": "access"}',
        '{"jobId": "job-1", "status": "exploded", "action": "access"}',
    ],
)
async def test_malformed_or_unexpected_json_names_the_endpoint(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses, body: str
) -> None:
    mocked.get(job_url("job-1"), callback=Recorder(clock, answer(200, body)))
    with pytest.raises(MalformedResponse) as info:
        await clock.run(client.get_job("job-1"))
    message = str(info.value)
    assert message.startswith("GET jobs/{id}")
    assert "job-1" not in message
    assert body not in message


async def test_a_list_page_without_a_list_is_malformed(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses
) -> None:
    from tests.helpers.api import JOBS_RE

    mocked.get(JOBS_RE, callback=Recorder(clock, answer(200, {"jobDetails": "nope"})))

    async def first() -> None:
        async for _ in client.list_jobs("gdpr"):
            pass

    with pytest.raises(MalformedResponse, match=r"^GET jobs: .*jobDetails"):
        await clock.run(first())
