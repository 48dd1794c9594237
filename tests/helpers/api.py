"""Shared helpers for tests/api: a client on a virtual clock, mock helpers (fixtures too)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses

from pipeline.api.auth import ImsTokenProvider
from pipeline.api.client import PrivacyServiceClient
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import RetryPolicy
from pipeline.models import Action, Identity, JobRequest, RequestOptions, UserRequest
from tests.helpers.vclock import VirtualClock

BASE = "https://privacy.test/data/core/privacy/"
IMS = "https://ims.test/"
TOKEN_URL = IMS + "ims/token/v3"
ORG = "ORG1234567890@AdobeOrg"
CLIENT_ID = "client-id-4f1e9a"
CLIENT_SECRET = "p8e-SECRET-value-do-not-log"
TOKEN = "eyJTOKEN.first.access-token-value"
TOKEN_2 = "eyJTOKEN.second.access-token-value"
EMAIL = "dana.scully@fbi.example"
PHONE = "+1 202 555 0143"
USER_KEY = "subject-key-77"
SERVER_DATE = "Sat, 28 Nov 2026 08:00:00 GMT"

JOBS_URL = BASE + "jobs"
JOBS_RE = re.compile(r"^https://privacy\.test/data/core/privacy/jobs\?.*$")


def job_url(job_id: str) -> str:
    return f"{BASE}jobs/{job_id}"


def a_request(users: int = 1) -> JobRequest:
    """A request whose identities and keys the privacy scan looks for."""
    options = RequestOptions(regulation="gdpr", include=("profileService",))
    return JobRequest(
        options=options,
        users=tuple(
            UserRequest(
                key=f"{USER_KEY}-{n}" if n else USER_KEY,
                actions=(Action.ACCESS, Action.DELETE),
                identities=(Identity("email", EMAIL), Identity("phone", PHONE)),
            )
            for n in range(users)
        ),
    )


def created_body(request: JobRequest, key: str = "jobs") -> dict[str, Any]:
    jobs = [
        {
            "jobId": f"job-{n}-{a.value}",
            "customer": {"user": {"key": u.key, "action": [a.value]}},
        }
        for n, u in enumerate(request.users)
        for a in u.actions
    ]
    return {key: jobs, "requestStatus": 1, "totalRecords": len(jobs), "requestId": "REQ-1"}


def job_body(job_id: str = "job-1", status: str = "complete") -> dict[str, Any]:
    return {
        "jobId": job_id,
        "requestId": "REQ-1",
        "userKey": USER_KEY,
        "action": "access",
        "status": status,
        "regulation": "gdpr",
        "createdDate": "10/02/2019 08:25 PM GMT",
        "lastModifiedDate": "10/03/2019 12:05 AM GMT",
        "userIds": [{"namespace": "email", "value": EMAIL, "type": "standard"}],
        "productResponses": [
            {
                "product": "Profile",
                "retryCount": 0,
                "processedDate": "10/02/2019 08:25 PM GMT",
                "productStatusResponse": {
                    "status": "complete",
                    "message": "Success",
                    "responseMsgCode": "PRVCY-6054-200",
                    "responseMsgDetail": "PARTIALLY COMPLETED",
                    "results": {"processed": ["x"], "ignored": [EMAIL]},
                },
            }
        ],
        "downloadURL": f"{BASE}jobs/{job_id}/content",
    }


class Recorder:
    """An aioresponses callback that answers from a script and notes when each call came."""

    def __init__(self, clock: VirtualClock, *answers: CallbackResult | BaseException) -> None:
        self.clock = clock
        self.answers = list(answers)
        self.times: list[float] = []
        self.calls: list[dict[str, Any]] = []

    def __call__(self, url: Any, **kwargs: Any) -> CallbackResult:
        self.times.append(self.clock.monotonic())
        self.calls.append({"url": str(url), **kwargs})
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def answer(
    status: int = 200, body: Any = None, headers: dict[str, str] | None = None
) -> CallbackResult:
    all_headers = {"Date": SERVER_DATE, **(headers or {})}
    if isinstance(body, str | bytes):
        return CallbackResult(status=status, body=body, headers=all_headers)
    return CallbackResult(status=status, payload=body, headers=all_headers)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as m:
        yield m


@pytest.fixture
def tokens(mocked: aioresponses, clock: VirtualClock) -> Recorder:
    """IMS answers: TOKEN first, TOKEN_2 on every later request."""
    recorder = Recorder(
        clock,
        answer(body={"access_token": TOKEN, "token_type": "bearer", "expires_in": 86399}),
        answer(body={"access_token": TOKEN_2, "token_type": "bearer", "expires_in": 86399}),
    )
    mocked.post(TOKEN_URL, callback=recorder, repeat=True)
    return recorder


@pytest.fixture
async def client(clock: VirtualClock, tokens: Recorder) -> AsyncIterator[PrivacyServiceClient]:
    provider = ImsTokenProvider(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scopes="openid,AdobeID",
        ims_url=IMS,
        clock=clock,
    )
    async with PrivacyServiceClient(
        base_url=BASE,
        org_id=ORG,
        api_key=CLIENT_ID,
        token_provider=provider,
        clock=clock,
        limiter=RateLimiter(requests_per_second=50, max_in_flight=8, clock=clock),
        retry=RetryPolicy(max_retries=3, base_s=0.5, cap_s=4.0),
        timeout_s=20.0,
        owns_token_provider=True,
    ) as made:
        yield made
