"""PrivacyServiceClient: one object for every call of the Privacy Service API.

::

    async with PrivacyServiceClient.from_settings(settings) as client:
        result = await client.create_jobs(job_request)
        async for job in client.list_jobs("gdpr", from_date=..., to_date=...):
            ...

Each call passes the shared :class:`RateLimiter`, carries the headers the gateway requires, and
is classified into the exception tree of ``errors.py``. A 401 refreshes the token once and
repeats the call; idempotent calls are retried on transient errors (``retry.py``); ``POST
jobs`` is retried only when throttled, and any failure that may have created jobs raises
:class:`AmbiguousSubmission` for the caller to reconcile.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp

from .. import constants
from ..errors import (
    AmbiguousSubmission,
    ApiTimeoutError,
    AuthError,
    ConfigError,
    MalformedResponse,
    ThrottledError,
    UnavailableError,
)
from ..models import Identity, JobRequest, JobStatus
from ..settings import Secret, Settings
from .auth import ImsTokenProvider, TokenProvider
from .clock import Clock, SystemClock
from .ratelimit import RateLimiter
from .responses import (
    CreateResult,
    JobDetails,
    JobPage,
    JobSummary,
    parse_create,
    parse_job,
    parse_job_page,
)
from .retry import RetryPolicy, call_with_retries
from .transport import (
    CallStats,
    FileDigest,
    RawResponse,
    Redactor,
    download,
    exchange,
    raise_for_status,
)
from .transport import server_date as parse_server_date
from .wire import consent_body, list_queries

log = logging.getLogger("dsar.client")

T = TypeVar("T")
Send = Callable[[dict[str, str]], Awaitable[tuple[RawResponse, T]]]

EP_LIST = "GET jobs"
EP_CREATE = "POST jobs"
EP_GET = "GET jobs/{id}"
EP_CONTENT = "GET jobs/{id}/content"
EP_EXTERNAL = "GET download-url"
EP_CONSENT = "POST consent"


class PrivacyServiceClient:
    """Typed async client of the Privacy Service; an ``async with`` block closes what it owns.

    ``base_url`` must end in ``/`` (``https://platform.adobe.io/data/core/privacy/``); paths are
    relative to it. A session, limiter or clock that is passed in is used and not closed; the
    ones created here are closed by :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        base_url: str,
        org_id: str,
        api_key: str | Secret,
        token_provider: TokenProvider,
        session: aiohttp.ClientSession | None = None,
        limiter: RateLimiter | None = None,
        clock: Clock | None = None,
        timeout_s: float = constants.DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = constants.DEFAULT_CONNECT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        stats: CallStats | None = None,
        owns_token_provider: bool = False,
    ) -> None:
        if not base_url.endswith("/"):
            raise ConfigError("base_url must end with '/' (request paths are relative to it)")
        if not 0 < timeout_s < constants.GATEWAY_TIMEOUT_S:
            raise ConfigError(
                f"timeout_s must be below the gateway's {constants.GATEWAY_TIMEOUT_S:g} s"
            )
        if not org_id:
            raise ConfigError("org_id is required")
        self.base_url = base_url
        self.org_id = org_id
        self._api_key = api_key if isinstance(api_key, Secret) else Secret(api_key)
        self._tokens = token_provider
        self._owns_tokens = owns_token_provider
        self._session = session
        self._owns_session = session is None
        self._clock: Clock = clock or SystemClock()
        self.limiter = limiter or RateLimiter(
            requests_per_second=10.0, max_in_flight=8, clock=self._clock
        )
        self.retry = retry or RetryPolicy()
        self.stats = stats or CallStats()
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
        # Downloads may stream for longer than one call's budget; bound the silences instead.
        self._download_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_s, sock_read=timeout_s
        )
        self.last_server_date: datetime | None = None
        self._base = urlsplit(base_url)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Clock | None = None,
        limiter: RateLimiter | None = None,
    ) -> PrivacyServiceClient:
        """A client for ``settings.api``; IMS tokens from ``settings.credentials``."""
        api, creds, limits = settings.api, settings.credentials, settings.limits
        if not api.base_url:
            raise ConfigError("api.base_url is not set")
        if not (creds.complete and creds.client_id and creds.org_id):
            raise ConfigError("ADOBE_CLIENT_ID, ADOBE_CLIENT_SECRET and ADOBE_ORG_ID are required")
        clock = clock or SystemClock()
        stats = CallStats()
        tokens = ImsTokenProvider.from_settings(settings, session=session, clock=clock, stats=stats)
        return cls(
            base_url=api.base_url if api.base_url.endswith("/") else api.base_url + "/",
            org_id=creds.org_id,
            api_key=creds.client_id,
            token_provider=tokens,
            session=session,
            limiter=limiter
            or RateLimiter(
                requests_per_second=limits.requests_per_second,
                max_in_flight=limits.max_in_flight,
                clock=clock,
            ),
            clock=clock,
            timeout_s=api.timeout_s,
            connect_timeout_s=api.connect_timeout_s,
            retry=RetryPolicy(max_retries=api.max_retries, cap_s=api.backoff_cap_s),
            stats=stats,
            owns_token_provider=True,
        )

    def __repr__(self) -> str:
        return f"PrivacyServiceClient(base_url={self.base_url!r}, org_id=***, api_key=***)"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session (and the token provider) if this client created them."""
        if self._owns_tokens:
            await self._tokens.aclose()
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def call_counts(self) -> dict[str, dict[str, int]]:
        """API calls by endpoint template and status, e.g. ``{"POST jobs": {"202": 3}}``."""
        return self.stats.snapshot()

    # -- the calls -------------------------------------------------------------------------

    async def create_jobs(self, request: JobRequest) -> CreateResult:
        """POST jobs: create one job per (user, action); never re-sent after an ambiguous failure.

        Throttling is waited out and retried (the service refused the request, so nothing was
        created). A 5xx, timeout or broken connection raises :class:`AmbiguousSubmission`.
        """
        body = request.to_wire(self.org_id)
        secrets = [u.key for u in request.users]
        secrets += [i.value for u in request.users for i in u.identities]
        resp = await self._json_call(
            "POST", "jobs", EP_CREATE, json_body=body, ambiguous=True, redact=Redactor(secrets)
        )
        result = parse_create(resp.json(), endpoint=EP_CREATE, status=resp.status)
        if len(result.jobs) != request.job_count:
            log.warning(
                "POST jobs created %d jobs for %d expected", len(result.jobs), request.job_count
            )
        return result

    async def get_job(self, job_id: str) -> JobDetails:
        """GET jobs/{id}: the job with its product responses and download URL."""
        resp = await self._json_call("GET", f"jobs/{quote(job_id, safe='')}", EP_GET)
        return parse_job(resp.json(), endpoint=EP_GET)

    async def list_jobs(
        self,
        regulation: str,
        *,
        status: JobStatus | str | None = None,
        from_date: date | None = None,
        to_date: date | None = None,
        page_size: int = 100,
        window_days: int = constants.MAX_LIST_WINDOW_DAYS,
    ) -> AsyncIterator[JobSummary]:
        """GET jobs: every job of ``regulation``, page after page, window after window.

        ``from_date``..``to_date`` (inclusive, UTC days) is split into windows of at most
        ``window_days`` days; without dates the service's default window (the last 7 days) is
        listed. Each window is paged until a page comes back empty or short.
        """
        for params in list_queries(
            regulation,
            status=status,
            from_date=from_date,
            to_date=to_date,
            page_size=page_size,
            window_days=window_days,
        ):
            async for job in self._pages(params, page_size):
                yield job

    async def list_page(
        self,
        regulation: str,
        *,
        status: JobStatus | str | None,
        from_date: date,
        to_date: date,
        page: int,
        page_size: int,
    ) -> JobPage:
        """GET jobs: one page of one window of at most 30 days (for callers that page
        themselves, e.g. backwards); ``total`` is ``totalRecords`` when the service sent it."""
        (params,) = list_queries(
            regulation,
            status=status,
            from_date=from_date,
            to_date=to_date,
            page_size=page_size,
            window_days=(to_date - from_date).days + 1,
        )
        resp = await self._json_call("GET", "jobs", EP_LIST, params={**params, "page": str(page)})
        body = resp.json()
        return JobPage(
            jobs=tuple(parse_job_page(body, endpoint=EP_LIST)), total=_total_records(body)
        )

    async def _pages(self, params: dict[str, str], page_size: int) -> AsyncIterator[JobSummary]:
        page = 0
        seen = 0
        previous_first: str | None = None
        while True:
            resp = await self._json_call(
                "GET", "jobs", EP_LIST, params={**params, "page": str(page)}
            )
            body = resp.json()
            jobs = parse_job_page(body, endpoint=EP_LIST)
            if jobs and jobs[0].job_id == previous_first:
                raise MalformedResponse("paging does not advance", endpoint=EP_LIST)
            for job in jobs:
                yield job
            seen += len(jobs)
            if len(jobs) < page_size or _all_seen(body, seen, page_size):
                return
            previous_first = jobs[0].job_id
            page += 1

    async def download_content(self, job: str, dest: Path) -> str:
        """Stream a job's access results (a ZIP) to ``dest``, created 0600; return its sha256.

        ``job`` is a job id or the job's download URL. A URL on the service's own host gets the
        auth headers; any other URL (a pre-signed link) is fetched without them.
        """
        return (await self.download_result(job, dest)).sha256

    async def download_result(
        self, job: str, dest: Path, *, encrypt_to: Sequence[str] = ()
    ) -> FileDigest:
        """:meth:`download_content`, encrypted to the age recipients ``encrypt_to`` as it
        streams when given (only ciphertext reaches ``dest``); returns the sha256 of the file
        as written and of the plaintext."""
        is_url = job.startswith(("https://", "http://"))
        url = job if is_url else f"{self.base_url}jobs/{quote(job, safe='')}/content"
        target = urlsplit(url)
        own = (target.scheme, target.netloc) == (self._base.scheme, self._base.netloc)
        endpoint = EP_CONTENT if own else EP_EXTERNAL
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

        async def send(headers: dict[str, str]) -> tuple[RawResponse, FileDigest | None]:
            return await download(
                self._http(),
                url,
                endpoint=endpoint,
                headers=headers,
                client_timeout=self._download_timeout,
                stats=self.stats,
                dest=dest,
                encrypt_to=encrypt_to,
            )

        _, digest = await call_with_retries(
            lambda: self._call(endpoint, send, auth=own),
            policy=self.retry,
            sleep=self._clock.sleep,
        )
        if digest is None:
            raise MalformedResponse("no content in a successful answer", endpoint=endpoint)
        return digest

    async def opt_out(
        self,
        entities: Iterable[Identity] | Mapping[str, Iterable[str]],
        *,
        request_id: str | None = None,
    ) -> None:
        """POST consent: mark the identities as opted out of sale (grouped by namespace).

        Opting out twice changes nothing, so the call is retried like a read.
        """
        body = consent_body(entities, request_id=request_id)
        secrets = [v for entity in body["entities"] for v in entity["values"]]
        await self._json_call(
            "POST", "consent", EP_CONSENT, json_body=body, redact=Redactor(secrets)
        )

    # -- plumbing --------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def _headers(self, token: str, *, json_body: bool) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {token}",
            "x-api-key": self._api_key.get(),
            "x-gw-ims-org-id": self.org_id,
            "Accept": "application/json",
        }
        if json_body:
            headers["Content-Type"] = "application/json"
        return headers

    async def _json_call(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        ambiguous: bool = False,
        redact: Redactor | None = None,
    ) -> RawResponse:
        async def send(headers: dict[str, str]) -> tuple[RawResponse, None]:
            resp = await exchange(
                self._http(),
                method,
                self.base_url + path,
                endpoint=endpoint,
                headers=headers,
                client_timeout=self._timeout,
                stats=self.stats,
                params=params,
                json_body=json_body,
            )
            return resp, None

        resp, _ = await call_with_retries(
            lambda: self._call(
                endpoint, send, ambiguous=ambiguous, redact=redact, json_body=json_body is not None
            ),
            policy=self.retry,
            sleep=self._clock.sleep,
            retryable=lambda exc: not isinstance(exc, AmbiguousSubmission),
        )
        return resp

    async def _call(
        self,
        endpoint: str,
        send: Send[T],
        *,
        auth: bool = True,
        ambiguous: bool = False,
        redact: Redactor | None = None,
        json_body: bool = False,
    ) -> tuple[RawResponse, T]:
        """One logical call: limiter slot, auth headers, one token refresh on 401, classify."""
        refreshed = False
        while True:
            token = await self._tokens.get_token() if auth else ""
            headers = self._headers(token, json_body=json_body) if auth else {}
            try:
                async with self.limiter.slot():
                    resp, extra = await send(headers)
                self.last_server_date = parse_server_date(resp.headers) or self.last_server_date
                if resp.status == 401 and auth:
                    if refreshed:
                        raise AuthError(
                            "the service refused a freshly issued token",
                            endpoint=endpoint,
                            status=401,
                        )
                    refreshed = True
                    await self._tokens.refresh(token)
                    continue
                raise_for_status(
                    resp, (redact or Redactor()).extended((token, self._api_key.get()))
                )
                return resp, extra
            except ThrottledError as exc:
                self.limiter.on_throttle(exc.retry_after_s)
                raise
            except (UnavailableError, ApiTimeoutError) as exc:
                if ambiguous and exc.endpoint == endpoint:
                    raise AmbiguousSubmission(
                        f"the jobs may have been created ({type(exc).__name__})",
                        endpoint=endpoint,
                        status=exc.status,
                        code=exc.code,
                    ) from None
                raise


def _all_seen(body: object, seen: int, page_size: int) -> bool:
    """True when ``totalRecords`` is an overall count and every job has been read.

    Sources disagree on whether ``totalRecords`` counts the page or every match; it is
    trusted as an overall count only once it is larger than a page, which a page count cannot
    be. That saves the empty page after a full last page; otherwise paging ends on a short one.
    """
    total = _total_records(body)
    return total is not None and total > page_size and seen >= total


def _total_records(body: object) -> int | None:
    """``totalRecords`` of a list answer when it is an integer, else None."""
    total = body.get("totalRecords") if isinstance(body, dict) else None
    return total if isinstance(total, int) and not isinstance(total, bool) else None
