"""No token, secret, user key or identity value reaches a log line, an error or a repr."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pytest
from aioresponses import aioresponses

from pipeline.api.client import PrivacyServiceClient
from pipeline.api.retry import RetryPolicy
from pipeline.errors import ApiError
from tests.helpers.api import (
    CLIENT_ID,
    CLIENT_SECRET,
    EMAIL,
    JOBS_URL,
    PHONE,
    TOKEN,
    TOKEN_2,
    USER_KEY,
    Recorder,
    a_request,
    answer,
    created_body,
    job_body,
    job_url,
)
from tests.helpers.vclock import VirtualClock

SENSITIVE = (TOKEN, TOKEN_2, CLIENT_SECRET, CLIENT_ID, EMAIL, PHONE, USER_KEY, "202 555 0143")
ECHO = f"user {USER_KEY} with email {EMAIL} and phone {PHONE} token {TOKEN}"
# A read cannot know the user keys (dsar's keys are PII-free), only identities and secrets.
GET_ECHO = f"email {EMAIL} phone {PHONE} token {TOKEN} key {CLIENT_ID}"


def _texts(exc: BaseException) -> list[str]:
    texts = []
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen), repr(vars(seen))]
        seen = seen.__cause__ or seen.__context__
    return texts


def _scan(texts: list[str]) -> None:
    for text in texts:
        for value in SENSITIVE:
            assert value not in text, f"{value!r} leaked into {text!r}"


async def test_errors_logs_and_reprs_hold_no_secret_or_identity(
    client: PrivacyServiceClient,
    clock: VirtualClock,
    mocked: aioresponses,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client.retry = RetryPolicy(max_retries=1, base_s=0.5, cap_s=1.0)
    request = a_request()
    echo_400 = {"errors": {"errorCode": 400, "title": "Invalid Request", "detail": ECHO}}
    scenarios: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("rejected", lambda: client.create_jobs(request)),
        ("ambiguous", lambda: client.create_jobs(request)),
        ("throttled", lambda: client.get_job("job-9")),
        ("malformed", lambda: client.get_job("job-8")),
        ("gateway", lambda: client.get_job("job-7")),
    ]
    mocked.post(
        JOBS_URL,
        callback=Recorder(
            clock,
            answer(400, echo_400),
            answer(500, {"error_code": "500", "message": ECHO}),
            answer(202, created_body(request)),
        ),
        repeat=True,
    )
    mocked.get(
        job_url("job-9"),
        callback=Recorder(
            clock, answer(429, {"error_code": "429", "message": GET_ECHO}, {"Retry-After": "1"})
        ),
        repeat=True,
    )
    mocked.get(job_url("job-8"), callback=Recorder(clock, answer(200, f"<{GET_ECHO}>")))
    mocked.get(
        job_url("job-7"),
        callback=Recorder(clock, answer(403, {"error_code": "403025", "message": GET_ECHO})),
    )
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for _name, call in scenarios:
            with pytest.raises(ApiError) as info:
                await clock.run(call())
            texts += _texts(info.value)
        # a successful round trip, whose answers do carry the user key and identities
        mocked.get(job_url("job-1"), callback=Recorder(clock, answer(200, job_body())))
        created = await clock.run(client.create_jobs(request))
        job = await clock.run(client.get_job("job-1"))
    texts += [repr(created), repr(job), repr(client), repr(client.limiter)]
    texts += [repr(client.stats), repr(job.products), str(created.jobs)]
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    assert any("Invalid Request" in t for t in texts)  # the service's own words survive
    _scan(texts)


async def test_ims_errors_and_provider_reprs_hold_no_secret(
    client: PrivacyServiceClient, clock: VirtualClock, tokens: Recorder
) -> None:
    tokens.answers = [
        answer(400, {"error": "invalid_scope", "error_description": f"bad {CLIENT_SECRET}"})
    ]
    with pytest.raises(ApiError) as info:
        await clock.run(client.get_job("job-1"))
    _scan([*_texts(info.value), repr(client), repr(client._tokens)])
