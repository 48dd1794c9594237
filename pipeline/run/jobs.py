"""Direct access to the service's jobs (``dsar jobs list|get|download``), as library calls.

Each function opens the target the settings name (the embedded emulator when there are no
credentials), makes its calls, and returns plain data; nothing here prints.

Several ``[[orgs]]``: ``org`` (``--org NAME``) talks to that org alone, with its own
credentials; an unknown name is a :class:`ConfigError` naming the known ones. Without it,
:func:`list_jobs` lists every org's jobs (each row says its ``org``), and :func:`get_job` and
:func:`download_job` ask each org in turn for the job id (a job belongs to one org: the others
answer 404) and use the org that has it. Without ``[[orgs]]`` the one org is ``default``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .. import constants
from ..api.client import PrivacyServiceClient
from ..api.clock import SYSTEM_CLOCK, Clock
from ..api.responses import JobDetails, JobSummary
from ..constants import DEPRECATED_REGULATIONS, REGULATIONS
from ..errors import ConfigError, NotFoundError
from ..files import atomic_file
from ..models import JobStatus
from ..regulations import normalize_regulation
from ..reports.files import result_name
from ..settings import Settings
from .aio import sync_twin
from .target import api_target

LIST_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("request_id", pa.string()),
        ("user_key", pa.string()),
        ("action", pa.string()),
        ("status", pa.string()),
        ("regulation", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("last_modified_at", pa.timestamp("us", tz="UTC")),
        ("org", pa.string()),  # the [[orgs]] name whose client listed it ("default" without)
    ]
)


@dataclass(frozen=True, kw_only=True)
class JobQuery:
    """What ``dsar jobs list`` asks for."""

    regulation: str
    status: str | None = None
    from_date: date | None = None
    to_date: date | None = None

    def __post_init__(self) -> None:
        cleaned = self.regulation.strip().lower()
        if cleaned not in REGULATIONS and cleaned not in DEPRECATED_REGULATIONS:
            raise ConfigError("--regulation: not a known regulation (e.g. gdpr, ccpa, cpra_ca_usa)")
        if (self.from_date is None) != (self.to_date is None):
            raise ConfigError("--from and --to go together (the service needs both or neither)")
        if self.from_date and self.to_date and self.to_date < self.from_date:
            raise ConfigError("--to is before --from")
        if self.status is not None and self.status not in {s.value for s in JobStatus}:
            raise ConfigError(f"unknown status {self.status!r}")


def check_lookback(query: JobQuery, today: date) -> None:
    """Refuse a ``--from`` further back than the service lists jobs (45 days before
    ``today``, UTC) with :class:`ConfigError`: a silent clamp would hand back fewer jobs
    than were asked for, as if the older ones did not exist."""
    if query.from_date is None:
        return
    earliest = today - timedelta(days=constants.MAX_LOOKBACK_DAYS)
    if query.from_date < earliest:
        days = (today - query.from_date).days
        raise ConfigError(
            f"--from {query.from_date} is {days} days ago: the Privacy Service lists jobs at "
            f"most {constants.MAX_LOOKBACK_DAYS} days back (earliest --from today: {earliest})"
        )


def org_names(settings: Settings, org: str | None) -> tuple[str, ...]:
    """The orgs a jobs command talks to: ``org`` alone, or every org of the settings
    (``default`` without ``[[orgs]]``); :class:`ConfigError` naming the known orgs when
    ``org`` is none of them."""
    names = tuple(o.name for o in settings.org_list())
    if org is None:
        return names
    if org not in names:
        raise ConfigError(f"--org {org!r}: no such org in the config (known: {', '.join(names)})")
    return (org,)


@asynccontextmanager
async def org_clients(
    settings: Settings,
    org: str | None,
    *,
    workspace: Path,
    env: Mapping[str, str],
    clock: Clock,
) -> AsyncIterator[list[tuple[str, PrivacyServiceClient]]]:
    """(org name, client) of each org :func:`org_names` picks, each with its own credentials
    (only the picked orgs' variables must be set); closed on the way out."""
    names = org_names(settings, org)
    if settings.multi_org:  # the other orgs' tables (and variables) play no part
        settings = dataclasses.replace(
            settings, orgs=tuple(t for t in settings.orgs if t.name in names)
        )
    with api_target(settings, workspace=workspace, env=env, quiet=True) as target:
        async with AsyncExitStack() as stack:
            if len(names) == 1:
                clients = [(names[0], await stack.enter_async_context(target.client(clock=clock)))]
            else:
                clients = [
                    (o.name, await stack.enter_async_context(target.for_org(o).client(clock=clock)))
                    for o in target.settings.org_list()
                ]
            yield clients


def _row(job: JobSummary, regulation: str, org: str) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "request_id": job.request_id,
        "user_key": job.user_key,
        "action": job.action,
        "status": job.status.value,
        "regulation": job.regulation or regulation,
        "created_at": job.created_at,
        "last_modified_at": job.last_modified_at,
        "org": org,
    }


async def list_jobs_async(
    query: JobQuery,
    settings: Settings,
    *,
    workspace: Path,
    env: Mapping[str, str],
    today: date | None = None,
    clock: Clock = SYSTEM_CLOCK,
    org: str | None = None,
) -> list[dict[str, Any]]:
    """Every job of ``query`` (all pages; date ranges split into windows of at most 30 days),
    of ``org`` or of every org (see the module docstring).

    A ``from_date`` older than the service's 45-day look-back (counted from ``today``,
    default the current UTC day on ``clock``) is refused before any call: see
    :func:`check_lookback`."""
    check_lookback(query, today or clock.utc_now().date())
    regulation = normalize_regulation(query.regulation)
    rows: list[dict[str, Any]] = []
    async with org_clients(settings, org, workspace=workspace, env=env, clock=clock) as clients:
        for name, client in clients:
            rows += [
                _row(job, regulation, name)
                async for job in client.list_jobs(
                    regulation,
                    status=query.status,
                    from_date=query.from_date,
                    to_date=query.to_date,
                    page_size=settings.poll.page_size,
                )
            ]
    return rows


list_jobs = sync_twin(list_jobs_async, "list_jobs")


def write_jobs_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    """``rows`` of :func:`list_jobs` as a Parquet file, written atomically."""
    table = pa.Table.from_pylist(rows, schema=LIST_SCHEMA)
    with atomic_file(path) as fh:
        pq.write_table(table, fh, compression="zstd")


async def locate_job_async(
    job_id: str,
    settings: Settings,
    *,
    workspace: Path,
    env: Mapping[str, str],
    clock: Clock = SYSTEM_CLOCK,
    org: str | None = None,
) -> tuple[str, JobDetails]:
    """The org that has job ``job_id`` (``org``, or the first of the config's orgs whose
    service knows it) and the job with its product responses."""
    async with org_clients(settings, org, workspace=workspace, env=env, clock=clock) as clients:
        name, client, details = await _holder(job_id, clients)
        return name, details or await client.get_job(job_id)


async def _holder(
    job_id: str, clients: list[tuple[str, PrivacyServiceClient]]
) -> tuple[str, PrivacyServiceClient, JobDetails | None]:
    """The (org, client) whose service knows ``job_id``: the only one (no call), or the first
    of several that does not answer 404 (with the job it answered); :class:`NotFoundError`
    naming the orgs asked when none has it."""
    if len(clients) == 1:
        return (*clients[0], None)
    for name, client in clients:
        try:
            details = await client.get_job(job_id)
        except NotFoundError:
            continue
        return name, client, details
    asked = ", ".join(name for name, _ in clients)
    raise NotFoundError(
        f"job {job_id}: none of the orgs ({asked}) has it; --org NAME asks one org",
        endpoint="GET jobs/{id}",
        status=404,
    )


async def get_job_async(
    job_id: str,
    settings: Settings,
    *,
    workspace: Path,
    env: Mapping[str, str],
    clock: Clock = SYSTEM_CLOCK,
    org: str | None = None,
) -> JobDetails:
    """One job with its product responses (at ``org``, or at the org that has it)."""
    found = await locate_job_async(
        job_id, settings, workspace=workspace, env=env, clock=clock, org=org
    )
    return found[1]


async def download_job_async(
    job_id: str,
    out_dir: Path,
    settings: Settings,
    *,
    workspace: Path,
    env: Mapping[str, str],
    clock: Clock = SYSTEM_CLOCK,
    org: str | None = None,
) -> tuple[Path, str]:
    """A job's access results as ``OUT_DIR/<job_id>.zip`` (0600 in 0700), or ``.zip.age``
    encrypted as it streams when ``[results] encrypt_to`` is set; returns path, sha256 (of the
    file as written). With several orgs and no ``org``, from the org that has the job."""
    async with org_clients(settings, org, workspace=workspace, env=env, clock=clock) as clients:
        _name, client, _details = await _holder(job_id, clients)
        encrypt_to = settings.results.encrypt_to
        dest = out_dir / result_name(job_id, encrypted=bool(encrypt_to))
        digest = await client.download_result(job_id, dest, encrypt_to=encrypt_to)
        return dest, digest.sha256


locate_job = sync_twin(locate_job_async, "locate_job")
get_job = sync_twin(get_job_async, "get_job")
download_job = sync_twin(download_job_async, "download_job")


def details_dict(job: JobDetails) -> dict[str, Any]:
    """A job's details as JSON-ready data (no identity values: the client keeps none)."""
    return {
        "job_id": job.job_id,
        "request_id": job.request_id,
        "action": job.action,
        "status": job.status.value,
        "regulation": job.regulation,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "last_modified_at": job.last_modified_at.isoformat() if job.last_modified_at else None,
        "has_download": job.download_url is not None,
        "products": [
            {
                "product": p.product,
                "status": p.status,
                "response_code": p.response_code,
                "outcome": p.outcome,
                "message": p.message,
                "processed_at": p.processed_at.isoformat() if p.processed_at else None,
                "retry_count": p.retry_count,
            }
            for p in job.products
        ],
    }
