"""Typed answers of the Privacy Service, parsed defensively from its JSON.

Every parser takes the endpoint template it parses for, and raises :class:`MalformedResponse`
naming it (never the URL, never the body) when a required field is missing or of the wrong
type. Identity values in answers (``userIds``, ``results.processed``/``ignored``) are not kept:
they are personal data and dsar has no use for them. User keys and download URLs are kept but
left out of every ``repr``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .. import constants
from ..errors import MalformedResponse
from ..models import Action, JobStatus, ProductResponse

SERVICE_DATE_FORMAT = "%m/%d/%Y %I:%M %p GMT"


@functools.lru_cache(maxsize=4096)
def _service_format(text: str) -> datetime:
    # strptime costs ~30 us; a run's dates repeat (minute resolution), so they are cached
    return datetime.strptime(text, SERVICE_DATE_FORMAT).replace(tzinfo=UTC)


def parse_service_date(value: object) -> datetime | None:
    """``"10/02/2019 08:25 PM GMT"`` (or ISO-8601) as an aware UTC datetime; None if unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return _service_format(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def product_outcome(status: str, response_code: str | None) -> str | None:
    """The report outcome of a product: success, not_provisioned, ids_not_found, ... or None.

    None while the product is still working; ``error`` when it failed whatever its code.
    """
    if status == JobStatus.ERROR:
        return "error"
    if status != JobStatus.COMPLETE:
        return None
    if response_code in constants.RESPONSE_OUTCOMES:
        return constants.RESPONSE_OUTCOMES[response_code]
    if response_code and response_code.startswith("PRVCY-6053"):
        return "invalid_namespace"
    if response_code and response_code.endswith("-400"):
        return "error"
    return "success"


@dataclass(frozen=True, slots=True)
class CreatedJob:
    """One job created by POST /jobs: its id, the user key it belongs to and its action."""

    job_id: str
    user_key: str = field(repr=False)
    action: Action


@dataclass(frozen=True, slots=True)
class CreateResult:
    """The answer of POST /jobs: the created jobs and the service's request id."""

    jobs: tuple[CreatedJob, ...]
    request_id: str | None = None
    status: int = 202

    def job_ids(self) -> dict[tuple[str, Action], str]:
        """``(user key, action) -> job id`` for every created job."""
        return {(j.user_key, j.action): j.job_id for j in self.jobs}


@dataclass(frozen=True, slots=True)
class JobSummary:
    """A job as GET /jobs lists it (no per-product detail)."""

    job_id: str
    status: JobStatus
    action: str
    user_key: str | None = field(default=None, repr=False)
    request_id: str | None = None
    regulation: str | None = None
    created_at: datetime | None = None
    last_modified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of GET /jobs and its ``totalRecords`` (None when absent)."""

    jobs: tuple[JobSummary, ...]
    total: int | None


@dataclass(frozen=True, slots=True)
class JobDetails(JobSummary):
    """A job as GET /jobs/{id} returns it, with one :class:`ProductResponse` per application."""

    products: tuple[ProductResponse, ...] = ()
    download_url: str | None = field(default=None, repr=False)


class _Reader:
    """Field access that raises MalformedResponse naming the endpoint."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def fail(self, what: str) -> MalformedResponse:
        return MalformedResponse(f"unexpected response: {what}", endpoint=self.endpoint)

    def obj(self, value: object, what: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(f"{what} is not an object")
        return value

    def items(self, data: Mapping[str, Any], *keys: str) -> list[Any]:
        for key in keys:
            if key in data and data[key] is not None:
                value = data[key]
                if not isinstance(value, list):
                    raise self.fail(f"{key} is not a list")
                return value
        raise self.fail(f"no {' or '.join(keys)} list")

    def text(self, data: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
        value = data.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or (required and not value):
            raise self.fail(f"{key} is missing or not a string")
        return value

    def status(self, data: Mapping[str, Any], key: str = "status") -> JobStatus:
        value = self.text(data, key)
        try:
            return JobStatus(str(value).lower())
        except ValueError:
            raise self.fail(f"unknown {key}") from None

    def action(self, value: object) -> Action:
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        try:
            return Action(str(value).lower()) if isinstance(value, str) else Action("")
        except ValueError:
            raise self.fail("unknown or missing action") from None


def parse_create(data: object, *, endpoint: str, status: int) -> CreateResult:
    """POST /jobs: read ``jobs`` or ``jobDetails``; each entry holds one (user key, action)."""
    r = _Reader(endpoint)
    body = r.obj(data, "body")
    jobs: list[CreatedJob] = []
    for item in r.items(body, "jobs", "jobDetails"):
        entry = r.obj(item, "job entry")
        user = (
            entry.get("customer", {}).get("user")
            if isinstance(entry.get("customer"), dict)
            else None
        )
        source = r.obj(user, "customer.user") if user is not None else entry
        key = r.text(source, "key" if "key" in source else "userKey")
        jobs.append(
            CreatedJob(
                job_id=str(r.text(entry, "jobId")),
                user_key=str(key),
                action=r.action(source.get("action")),
            )
        )
    request_id = body.get("requestId")
    return CreateResult(
        jobs=tuple(jobs),
        request_id=request_id if isinstance(request_id, str) else None,
        status=status,
    )


def _summary_fields(r: _Reader, entry: Mapping[str, Any]) -> dict[str, Any]:
    action = entry.get("action")
    if isinstance(action, list) and len(action) == 1:
        action = action[0]
    if not isinstance(action, str):
        raise r.fail("action is missing or not a string")
    return {
        "job_id": r.text(entry, "jobId"),
        "status": r.status(entry),
        "action": action.lower(),
        "user_key": r.text(entry, "userKey", required=False),
        "request_id": r.text(entry, "requestId", required=False),
        "regulation": r.text(entry, "regulation", required=False),
        "created_at": parse_service_date(entry.get("createdDate")),
        "last_modified_at": parse_service_date(entry.get("lastModifiedDate")),
    }


def parse_job_page(data: object, *, endpoint: str) -> list[JobSummary]:
    """GET /jobs: one page of jobs from ``jobDetails`` or ``jobs`` (a missing list is empty)."""
    r = _Reader(endpoint)
    body = r.obj(data, "body")
    if body.get("jobDetails") is None and body.get("jobs") is None:
        return []
    entries = r.items(body, "jobDetails", "jobs")
    return [JobSummary(**_summary_fields(r, r.obj(e, "job entry"))) for e in entries]


def _count(value: object) -> int | None:
    return len(value) if isinstance(value, list) else None


def _product(r: _Reader, item: object) -> ProductResponse:
    entry = r.obj(item, "product response")
    psr = r.obj(entry.get("productStatusResponse") or {}, "productStatusResponse")
    status = str(psr.get("status") or "").lower()
    code = psr.get("responseMsgCode") if isinstance(psr.get("responseMsgCode"), str) else None
    raw_results = psr.get("results")
    results: Mapping[str, Any] = raw_results if isinstance(raw_results, dict) else {}
    retries = entry.get("retryCount")
    return ProductResponse(
        product=str(r.text(entry, "product")),
        status=status,
        response_code=code,
        outcome=product_outcome(status, code),
        message=psr.get("message") if isinstance(psr.get("message"), str) else None,
        detail=psr.get("responseMsgDetail")
        if isinstance(psr.get("responseMsgDetail"), str)
        else None,
        processed_at=parse_service_date(entry.get("processedDate")),
        retry_count=retries if isinstance(retries, int) else 0,
        processed_count=_count(results.get("processed")),
        ignored_count=_count(results.get("ignored")),
    )


def parse_job(data: object, *, endpoint: str) -> JobDetails:
    """GET /jobs/{id}: the job, its product responses, and ``downloadUrl``/``downloadURL``."""
    r = _Reader(endpoint)
    body = r.obj(data, "body")
    products = body.get("productResponses") or []
    if not isinstance(products, list):
        raise r.fail("productResponses is not a list")
    url = body.get("downloadUrl") or body.get("downloadURL")
    return JobDetails(
        **_summary_fields(r, body),
        products=tuple(_product(r, p) for p in products),
        download_url=url if isinstance(url, str) and url else None,
    )
