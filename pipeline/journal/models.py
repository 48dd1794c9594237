"""The run journal's vocabulary: states, legal transitions, and the typed rows it hands out.

Kept apart from the SQL so the runner and the reports can import the types without the
storage. Every time the journal stores is an aware UTC ``datetime`` on the API and integer
microseconds since the epoch in SQLite (cheap to compare, and what Parquet timestamps are).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from ..constants import DEFAULT_ORG
from ..models import ProductResponse


class RunState(enum.StrEnum):
    """Where the run as a whole stands."""

    PLANNED = "planned"
    ACTIVE = "active"
    PAUSED = "paused"
    FINISHED = "finished"


class RunIntent(enum.StrEnum):
    """What the user asked of the run, apart from where it stands.

    Only a ``live`` run is ever submitted. A ``preview`` (``dsar run --dry-run``, or a plan
    awaiting its confirmation) turns live by an explicit ``dsar submit``; ``declined`` (no at the
    prompt) never does; ``cancelled`` (``dsar cancel``) submits nothing more, and its jobs
    already at the service are polled to the end unless the run also stops polling.
    """

    LIVE = "live"
    PREVIEW = "preview"
    DECLINED = "declined"
    CANCELLED = "cancelled"


class BatchState(enum.StrEnum):
    """Where one planned POST /jobs stands.

    ``submitting`` means the intent is durable and the POST may have reached the service;
    a batch found in it after a crash is ambiguous. ``reconciled`` ends an ambiguous batch:
    the jobs found on the service were adopted, the other users moved to a child batch.
    """

    PLANNED = "planned"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    AMBIGUOUS = "ambiguous"
    RECONCILED = "reconciled"
    FAILED = "failed"
    CANCELLED = "cancelled"  # never POSTed: the run was cancelled


class JobState(enum.StrEnum):
    """Where one (user, action) stands; ``pending`` before its batch is accepted.

    ``failed`` is a job whose batch the service refused (no job id); ``downloaded`` is a
    complete access job whose results are on disk.
    """

    PENDING = "pending"
    SUBMITTED = "submitted"
    PROCESSING = "processing"
    COMPLETE = "complete"
    ERROR = "error"
    DOWNLOADED = "downloaded"
    FAILED = "failed"
    ACCEPTED = "accepted"  # an opt-out sent through POST /consent: no job to follow
    CANCELLED = "cancelled"  # never submitted: the run was cancelled


# new state -> states it may be entered from (the journal's whole state machine)
BATCH_TRANSITIONS: dict[BatchState, tuple[BatchState, ...]] = {
    BatchState.SUBMITTING: (BatchState.PLANNED,),
    BatchState.SUBMITTED: (BatchState.SUBMITTING,),
    BatchState.AMBIGUOUS: (BatchState.SUBMITTING,),
    BatchState.RECONCILED: (BatchState.AMBIGUOUS, BatchState.SUBMITTING),
    BatchState.FAILED: (BatchState.PLANNED, BatchState.SUBMITTING),
    BatchState.CANCELLED: (BatchState.PLANNED,),
}
JOB_TRANSITIONS: dict[JobState, tuple[JobState, ...]] = {
    JobState.SUBMITTED: (JobState.PENDING,),
    JobState.PROCESSING: (JobState.SUBMITTED,),
    # a list sweep may see a job for the first time after it already finished
    JobState.COMPLETE: (JobState.SUBMITTED, JobState.PROCESSING),
    JobState.ERROR: (JobState.SUBMITTED, JobState.PROCESSING),
    JobState.DOWNLOADED: (JobState.COMPLETE,),
    JobState.FAILED: (JobState.PENDING,),
    JobState.ACCEPTED: (JobState.PENDING,),
    JobState.CANCELLED: (JobState.PENDING,),
}
RUN_TRANSITIONS: dict[RunState, tuple[RunState, ...]] = {
    # active -> active: a resume after a crash finds the run still marked active
    RunState.ACTIVE: (RunState.PLANNED, RunState.PAUSED, RunState.ACTIVE),
    RunState.PAUSED: (RunState.ACTIVE, RunState.PLANNED),
    RunState.FINISHED: (RunState.ACTIVE,),
    # dsar retry re-opens a finished run with new planned batches
    RunState.PLANNED: (RunState.FINISHED, RunState.PAUSED),
}
# Jobs the service holds and has not finished: what a sweep looks for.
OPEN_JOB_STATES = (JobState.SUBMITTED, JobState.PROCESSING)
TERMINAL_JOB_STATES = (JobState.COMPLETE, JobState.ERROR)


def state_in(states: tuple[JobState, ...], column: str = "state") -> str:
    """SQL text ``column IN ('a', 'b')`` for ``states`` (values of the enum, never input)."""
    return f"{column} IN ({', '.join(repr(s.value) for s in states)})"


# The poller's two queues: the schema's partial indexes and the queries that must use them
# share these conditions (SQLite uses a partial index only when the query implies its WHERE).
NEEDS_DETAILS_SQL = f"{state_in(TERMINAL_JOB_STATES)} AND details_at IS NULL"
NEEDS_DOWNLOAD_SQL = f"state = '{JobState.COMPLETE.value}' AND has_result = 1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(at: datetime) -> int:
    """Microseconds since the epoch of an aware datetime; naive datetimes are refused."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("journal times must be timezone-aware (UTC)")
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int | None) -> datetime | None:
    """The aware UTC datetime of a stored microsecond count (None stays None)."""
    if us is None:
        return None
    return _EPOCH + timedelta(microseconds=us)


def from_us_required(us: int) -> datetime:
    """The aware UTC datetime of a stored microsecond count from a NOT NULL column."""
    return _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True, kw_only=True)
class RunMeta:
    """What a run was made from; written once, with the plan.

    ``settings`` is a JSON-able snapshot without credentials (the journal refuses secret-named
    keys); ``org_id`` is the IMS org the daily-cap ledger counts against.
    """

    run_id: str
    created_at: datetime
    input_path: str
    input_sha256: str
    input_rows: int
    config_digest: str
    tool_version: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    org_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """The run's metadata plus its current state, as read back from the journal."""

    meta: RunMeta
    rejects_count: int
    state: RunState
    pause_reason: str | None
    resume_after: datetime | None
    updated_at: datetime
    intent: RunIntent = RunIntent.LIVE
    stop_polling: bool = False  # a cancelled run whose open jobs are no longer polled
    identities_purged_at: datetime | None = None  # `dsar purge` scrubbed the identity values


@dataclass(frozen=True, kw_only=True)
class BatchInfo:
    """One batch's bookkeeping (no users): state, intent and outcome."""

    batch_id: str
    parent_batch_id: str | None
    regulation: str
    state: BatchState
    job_count: int
    payload_digest: str | None
    intent_at: datetime | None
    submitted_at: datetime | None
    request_id: str | None
    error_code: str | None
    error_message: str | None
    org: str = DEFAULT_ORG  # the [[orgs]] name whose client sends it


@dataclass(frozen=True, kw_only=True)
class ReconcileResult:
    """What reconciling an ambiguous batch did."""

    adopted: int
    missing_user_keys: tuple[str, ...]
    child_batch_id: str | None


@dataclass(frozen=True, kw_only=True)
class JobObservation:
    """A job's status as one list sweep saw it."""

    job_id: str
    status: str
    updated_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class JobDetailRecord:
    """What one ``GET /jobs/{id}`` of a terminal job taught: products, result, error."""

    job_id: str
    products: tuple[ProductResponse, ...]
    has_result: bool
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, kw_only=True)
class OpenWindow:
    """Open jobs of one regulation and the oldest submit time: where a list sweep starts."""

    regulation: str
    open_jobs: int
    oldest_submitted_at: datetime


@dataclass(frozen=True, kw_only=True)
class JournalCounts:
    """Jobs and batches by state (every state present, zero when empty)."""

    jobs: dict[str, int]
    batches: dict[str, int]
    users: int


class StatusRow(NamedTuple):
    """One row of status.parquet as the journal stores it (times in epoch microseconds)."""

    subject_key: str
    user_key: str
    part: int
    attempt: int
    action: str
    regulation: str
    request_id: str | None
    job_id: str | None
    state: str
    submitted_at: int | None
    updated_at: int | None
    completed_at: int | None
    products_total: int
    products_complete: int
    products_error: int
    result_path: str | None
    result_sha256: str | None
    error_code: str | None
    error_message: str | None
    input_rows: str  # JSON list of 0-based data-row numbers
    received_at: str | None  # ISO-8601 from the input, as planned
    result_purged_at: int | None = None  # `dsar purge` removed the result ZIP
    result_plain_sha256: str | None = None  # the result's plaintext, when stored encrypted
    # a job dedupe skipped (state `skipped`): DUPLICATE, and the earlier job that answers it
    reason_code: str | None = None
    previous_run_id: str | None = None
    previous_job_id: str | None = None
    org: str | None = None  # the [[orgs]] name of its batch (None: a skipped job)


class ProductRow(NamedTuple):
    """One row of products.parquet as the journal stores it."""

    job_id: str
    subject_key: str
    action: str
    product: str
    status: str
    response_code: str | None
    message: str | None
    processed_date: int | None
    retry_count: int
    org: str | None = None  # the [[orgs]] name of its job's batch


@dataclass(frozen=True, kw_only=True)
class PurgedFile:
    """A file ``dsar purge`` removed: run-relative path, sha256 and size at removal."""

    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True, kw_only=True)
class PurgeRecord:
    """One purge of a run: what it removed (``results`` or ``identities``), when, which files."""

    what: str
    at: datetime
    files: tuple[PurgedFile, ...] = ()
