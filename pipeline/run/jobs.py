"""Direct access to the service's jobs (``dsar jobs list|get|download``), as library calls.

Each function opens the target the settings name (the embedded emulator when there are no
credentials), makes its calls, and returns plain data; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .. import constants
from ..api.clock import SYSTEM_CLOCK, Clock
from ..api.responses import JobDetails, JobSummary
from ..constants import DEPRECATED_REGULATIONS, REGULATIONS
from ..errors import ConfigError
from ..files import atomic_file
from ..models import JobStatus
from ..regulations import normalize_regulation
from ..reports.files import result_name
from ..settings import Settings
from .aio import run_sync
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


def _row(job: JobSummary, regulation: str) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "request_id": job.request_id,
        "user_key": job.user_key,
        "action": job.action,
        "status": job.status.value,
        "regulation": job.regulation or regulation,
        "created_at": job.created_at,
        "last_modified_at": job.last_modified_at,
    }


def list_jobs(
    query: JobQuery,
    settings: Settings,
    *,
    workspace: Path,
    env: Mapping[str, str],
    today: date | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> list[dict[str, Any]]:
    """Every job of ``query`` (all pages; date ranges split into windows of at most 30 days).

    A ``from_date`` older than the service's 45-day look-back (counted from ``today``,
    default the current UTC day on ``clock``) is refused before any call: see
    :func:`check_lookback`."""
    return run_sync(
        "list_jobs",
        lambda: list_jobs_async(
            query, settings, workspace=workspace, env=env, today=today, clock=clock
        ),
    )


async def list_jobs_async(
    query: JobQuery,
    settings: Settings,
    *,
    workspace: Path,
    env: Mapping[str, str],
    today: date | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> list[dict[str, Any]]:
    """Async twin of :func:`list_jobs`, for a running event loop."""
    check_lookback(query, today or clock.utc_now().date())
    regulation = normalize_regulation(query.regulation)
    with api_target(settings, workspace=workspace, env=env, quiet=True) as target:
        async with target.client(clock=clock) as client:
            return [
                _row(job, regulation)
                async for job in client.list_jobs(
                    regulation,
                    status=query.status,
                    from_date=query.from_date,
                    to_date=query.to_date,
                    page_size=settings.poll.page_size,
                )
            ]


def write_jobs_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    """``rows`` of :func:`list_jobs` as a Parquet file, written atomically."""
    table = pa.Table.from_pylist(rows, schema=LIST_SCHEMA)
    with atomic_file(path) as fh:
        pq.write_table(table, fh, compression="zstd")


def get_job(
    job_id: str,
    settings: Settings,
    *,
    workspace: Path,
    env: Mapping[str, str],
    clock: Clock = SYSTEM_CLOCK,
) -> JobDetails:
    """One job with its product responses."""
    return run_sync(
        "get_job",
        lambda: get_job_async(job_id, settings, workspace=workspace, env=env, clock=clock),
    )


async def get_job_async(
    job_id: str,
    settings: Settings,
    *,
    workspace: Path,
    env: Mapping[str, str],
    clock: Clock = SYSTEM_CLOCK,
) -> JobDetails:
    """Async twin of :func:`get_job`, for a running event loop."""
    with api_target(settings, workspace=workspace, env=env, quiet=True) as target:
        async with target.client(clock=clock) as client:
            return await client.get_job(job_id)


def download_job(
    job_id: str,
    out_dir: Path,
    settings: Settings,
    *,
    workspace: Path,
    env: Mapping[str, str],
    clock: Clock = SYSTEM_CLOCK,
) -> tuple[Path, str]:
    """A job's access results as ``OUT_DIR/<job_id>.zip`` (0600 in 0700), or ``.zip.age``
    encrypted as it streams when ``[results] encrypt_to`` is set; returns path, sha256 (of the
    file as written)."""
    return run_sync(
        "download_job",
        lambda: download_job_async(
            job_id, out_dir, settings, workspace=workspace, env=env, clock=clock
        ),
    )


async def download_job_async(
    job_id: str,
    out_dir: Path,
    settings: Settings,
    *,
    workspace: Path,
    env: Mapping[str, str],
    clock: Clock = SYSTEM_CLOCK,
) -> tuple[Path, str]:
    """Async twin of :func:`download_job`, for a running event loop."""
    with api_target(settings, workspace=workspace, env=env, quiet=True) as target:
        async with target.client(clock=clock) as client:
            encrypt_to = settings.results.encrypt_to
            dest = out_dir / result_name(job_id, encrypted=bool(encrypt_to))
            digest = await client.download_result(job_id, dest, encrypt_to=encrypt_to)
            return dest, digest.sha256


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
