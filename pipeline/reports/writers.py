"""Stage 5: the run's reports, rewritten atomically from the journal at every checkpoint.

:func:`write_reports` writes ``status.parquet`` (one row per subject part and action, the
latest attempt), ``products.parquet`` (one row per job and product), ``rejects.parquet`` (the
rejected input rows) and ``summary.json`` into the run directory, with the columns of
DESIGN.md section 6. Each file goes to a temporary file in the same directory, is fsynced and
then renamed over the old one, so a reader never sees half a file. Parquet files are streamed
from one journal snapshot in chunks (bounded memory for 1,000,000 rows). Times are UTC.

No report holds an identity value: status and products carry subject keys, user keys and
outcomes; rejects keep only the four contract columns of whatever file the input stage wrote.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ..api.clock import SYSTEM_CLOCK
from ..api.responses import product_outcome
from ..errors import DamagedRunFile, InputError
from ..files import atomic_file
from ..input.rules import REJECT_SCHEMA
from ..journal.ledger import Ledger
from ..journal.models import JobState, ProductRow, StatusRow, to_us
from ..journal.queries import REPORT_CHUNK_ROWS, JournalQueries
from .orgs import OrgRowKey, org_sections
from .sla import sla_columns

STATUS_FILE = "status.parquet"
PRODUCTS_FILE = "products.parquet"
REJECTS_FILE = "rejects.parquet"
SUMMARY_FILE = "summary.json"

TIMESTAMP = pa.timestamp("us", tz="UTC")

STATUS_SCHEMA = pa.schema(
    [
        ("subject_key", pa.string()),
        ("user_key", pa.string()),
        ("action", pa.string()),
        ("regulation", pa.string()),
        ("request_id", pa.string()),
        ("job_id", pa.string()),
        ("status", pa.string()),
        ("submitted_at", TIMESTAMP),
        ("updated_at", TIMESTAMP),
        ("completed_at", TIMESTAMP),
        ("products_total", pa.int32()),
        ("products_complete", pa.int32()),
        ("products_error", pa.int32()),
        ("result_path", pa.string()),
        ("result_sha256", pa.string()),
        ("error_code", pa.string()),
        ("error_message", pa.string()),
        ("input_rows", pa.list_(pa.int64())),
        # beyond the contract: the split part, the retry attempt, the input's receipt time
        ("part", pa.int32()),
        ("attempt", pa.int32()),
        ("received_at", TIMESTAMP),
        # the legal clock (pipeline.reports.sla): due date, days left at the report's time, overdue
        ("due_at", TIMESTAMP),
        ("days_left", pa.int32()),
        ("overdue", pa.bool_()),
        # `dsar purge` removed the result ZIP at this time (its sha256 stays in result_sha256)
        ("result_purged_at", TIMESTAMP),
        # a result stored encrypted (`[results] encrypt_to`): result_sha256 is the ciphertext's
        ("result_plain_sha256", pa.string()),
        # dedupe across runs: a `skipped` job reads DUPLICATE and names the earlier job
        ("reason_code", pa.string()),
        ("previous_run_id", pa.string()),
        ("previous_job_id", pa.string()),
        ("org", pa.string()),  # the [[orgs]] name ("default" without [[orgs]]); null: skipped
    ]
)
PRODUCTS_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("subject_key", pa.string()),
        ("action", pa.string()),
        ("product", pa.string()),
        ("status", pa.string()),
        ("response_code", pa.string()),
        ("outcome", pa.string()),
        ("message", pa.string()),
        ("processed_date", TIMESTAMP),
        ("retry_count", pa.int32()),
        ("org", pa.string()),
    ]
)
# journal job state -> status.parquet status (DESIGN.md section 6)
REPORT_STATUS: dict[str, str] = {
    JobState.PENDING: "pending",
    JobState.SUBMITTED: "submitted",
    JobState.PROCESSING: "processing",
    JobState.COMPLETE: "complete",
    JobState.DOWNLOADED: "complete",
    JobState.ERROR: "error",
    JobState.FAILED: "error",  # the service rejected the request: see error_code
    JobState.ACCEPTED: "accepted",  # an opt-out of sale sent through POST /consent
    JobState.CANCELLED: "cancelled",  # never submitted: `dsar cancel` ended the run
    "skipped": "skipped",  # not planned: an earlier run of the workspace submitted it (dedupe)
}
STATUSES = (
    "rejected", "pending", "submitted", "processing", "complete", "error", "accepted", "cancelled",
    "skipped",
)  # fmt: skip


def _iso_us(text: str | None) -> int | None:
    if not text:
        return None
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return to_us(at.replace(tzinfo=UTC) if at.tzinfo is None else at)


def _status_batch(
    rows: list[StatusRow],
    counts: Counter[str],
    *,
    now: datetime,
    seen_at: datetime | None,
    by_org: Counter[OrgRowKey] | None = None,
) -> pa.RecordBatch:
    c = list(zip(*rows, strict=True))
    statuses = [REPORT_STATUS[s] for s in c[8]]
    counts.update(statuses)
    if by_org is not None:  # (org, status, error_code) of every row: the per-org figures
        by_org.update(zip(c[26], statuses, c[17], strict=True))
    arrays = [
        pa.array(c[0], pa.string()), pa.array(c[1], pa.string()), pa.array(c[4], pa.string()),
        pa.array(c[5], pa.string()), pa.array(c[6], pa.string()), pa.array(c[7], pa.string()),
        pa.array(statuses, pa.string()), pa.array(c[9], TIMESTAMP), pa.array(c[10], TIMESTAMP),
        pa.array(c[11], TIMESTAMP), pa.array(c[12], pa.int32()), pa.array(c[13], pa.int32()),
        pa.array(c[14], pa.int32()), pa.array(c[15], pa.string()), pa.array(c[16], pa.string()),
        pa.array(c[17], pa.string()), pa.array(c[18], pa.string()),
        pa.array([orjson.loads(r) for r in c[19]], pa.list_(pa.int64())),
        pa.array(c[2], pa.int32()), pa.array(c[3], pa.int32()),
        pa.array([_iso_us(r) for r in c[20]], TIMESTAMP),
    ]  # fmt: skip
    sla = sla_columns(
        arrays[3], arrays[20], now=now, completed_at=arrays[9], status=arrays[6], seen_at=seen_at
    )
    arrays += [sla.due_at, sla.days_left, sla.overdue, pa.array(c[21], TIMESTAMP)]
    arrays += [pa.array(c[i], pa.string()) for i in (22, 23, 24, 25, 26)]
    return pa.RecordBatch.from_arrays(arrays, schema=STATUS_SCHEMA)


def _products_batch(rows: list[ProductRow], counts: Counter[str]) -> pa.RecordBatch:
    c = list(zip(*rows, strict=True))
    outcomes = [product_outcome(s, code) for s, code in zip(c[4], c[5], strict=True)]
    counts.update(o for o in outcomes if o)
    arrays = [
        pa.array(c[0], pa.string()), pa.array(c[1], pa.string()), pa.array(c[2], pa.string()),
        pa.array(c[3], pa.string()), pa.array(c[4], pa.string()), pa.array(c[5], pa.string()),
        pa.array(outcomes, pa.string()), pa.array(c[6], pa.string()),
        pa.array(c[7], TIMESTAMP), pa.array(c[8], pa.int32()), pa.array(c[9], pa.string()),
    ]  # fmt: skip
    return pa.RecordBatch.from_arrays(arrays, schema=PRODUCTS_SCHEMA)


def _write_parquet(
    path: Path,
    schema: pa.Schema,
    chunks: Iterator[list[Any]],
    to_batch: Callable[[list[Any], Counter[str]], pa.RecordBatch],
) -> Counter[str]:
    counts: Counter[str] = Counter()
    with atomic_file(path) as fh, pq.ParquetWriter(fh, schema, compression="zstd") as writer:
        for chunk in chunks:
            writer.write_batch(to_batch(chunk, counts))
    return counts


def write_status(
    journal: JournalQueries,
    run_dir: Path,
    chunk_rows: int = REPORT_CHUNK_ROWS,
    *,
    now: datetime | None = None,
    by_org: Counter[OrgRowKey] | None = None,
) -> Counter[str]:
    """Write status.parquet; returns the row count of each status (and counts every row's
    ``(org, status, error_code)`` into ``by_org`` when given).

    The SLA columns count from each subject's ``received_at``, or from when the run first saw
    it (the run's creation) when the input had none, to ``now``.
    """
    chunks = journal.iter_status_rows(chunk_rows)
    to_batch = partial(
        _status_batch,
        now=now or SYSTEM_CLOCK.utc_now(),
        seen_at=journal.run_info().meta.created_at,
        by_org=by_org,
    )
    return _write_parquet(run_dir / STATUS_FILE, STATUS_SCHEMA, chunks, to_batch)


def write_products(
    journal: JournalQueries, run_dir: Path, chunk_rows: int = REPORT_CHUNK_ROWS
) -> Counter[str]:
    """Write products.parquet; returns the row count of each outcome."""
    chunks = journal.iter_product_rows(chunk_rows)
    return _write_parquet(run_dir / PRODUCTS_FILE, PRODUCTS_SCHEMA, chunks, _products_batch)


def write_rejects(run_dir: Path, source: Path | None = None) -> int:
    """Make RUN_DIR/rejects.parquet hold exactly the contract columns; returns its row count.

    ``source`` (default: the file already in the run directory, as the input stage writes it)
    is streamed through, keeping ``input_row, subject_key, reason_code, message, org`` only
    (a column an older file lacks is null); with
    no file at all an empty one is written. A file already in shape is left untouched.
    """
    dest = run_dir / REJECTS_FILE
    src = source if source is not None else dest
    if not src.exists():
        with atomic_file(dest) as fh:
            pq.write_table(REJECT_SCHEMA.empty_table(), fh)
        return 0
    try:
        pf = pq.ParquetFile(src)
        if src == dest and pf.schema_arrow.equals(REJECT_SCHEMA):
            return int(pf.metadata.num_rows)
        missing = {"input_row", "reason_code"} - set(pf.schema_arrow.names)
        if missing:
            raise InputError(f"{src.name}: rejects file lacks {', '.join(sorted(missing))}")
        keep = [n for n in REJECT_SCHEMA.names if n in pf.schema_arrow.names]
        rows = 0
        with atomic_file(dest) as fh, pq.ParquetWriter(fh, REJECT_SCHEMA) as writer:
            for batch in pf.iter_batches(columns=keep):
                arrays = [
                    batch.column(n).cast(f.type) if n in keep else pa.nulls(batch.num_rows, f.type)
                    for n, f in zip(REJECT_SCHEMA.names, REJECT_SCHEMA, strict=True)
                ]
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=REJECT_SCHEMA))
                rows += batch.num_rows
        return rows
    except (OSError, pa.ArrowException) as exc:
        raise DamagedRunFile(
            str(src),
            f"not a readable Parquet file: {exc}",
            "it is written once, when the run is planned: restore it from a backup",
        ) from None


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z") if at else None


def build_summary(
    journal: JournalQueries,
    *,
    now: datetime,
    statuses: Mapping[str, int],
    outcomes: Mapping[str, int],
    rejected: int,
    by_org: Mapping[OrgRowKey, int] | None = None,
    ledger: Ledger | None = None,
) -> dict[str, Any]:
    """summary.json's content: counts, timings, API calls, input and config facts, version.

    Holds ids, counts, times and the input's path and digest; never an identity or user key.
    """
    info = journal.run_info()
    meta = info.meta
    counts = journal.counts()
    api = journal.api_calls()
    limits = meta.settings.get("limits", {})
    status_counts = {s: int(statuses.get(s, 0)) for s in STATUSES}
    status_counts["rejected"] = rejected
    timings = {k: _iso(v) for k, v in journal.timings().items()}
    states = journal.states_by_org()
    return {
        "run_id": meta.run_id,
        "tool_version": meta.tool_version,
        "created_at": _iso(meta.created_at),
        "generated_at": _iso(now),
        "state": info.state.value,
        "pause_reason": info.pause_reason,
        "resume_after": _iso(info.resume_after),
        "input": {"path": meta.input_path, "sha256": meta.input_sha256, "rows": meta.input_rows},
        "config_digest": meta.config_digest,
        "limits": {"daily_job_cap": limits.get("daily_job_cap")},
        "counts": {
            "status": status_counts,
            "total": sum(status_counts.values()),
            "outcomes": dict(sorted(outcomes.items())),
            "jobs_by_state": counts.jobs,
            "batches": counts.batches,
            "users": counts.users,
            # per org, the status.parquet rows of its jobs (skipped rows carry no org)
            "orgs": {org: report_counts(by) for org, by in states.items()},
        },
        "timings": {
            "created_at": _iso(meta.created_at),
            **timings,
            "elapsed_s": round((now - meta.created_at).total_seconds(), 3),
        },
        # per org: status and error-code counts of its status.parquet rows, cap timeline, pauses
        "orgs": org_sections(journal, by_org or {}, states, ledger=ledger),
        "api_calls": api,
        "api_calls_total": sum(n for by_status in api.values() for n in by_status.values()),
        "purges": [
            {
                "what": p.what,
                "at": _iso(p.at),
                "files": [{"path": f.path, "sha256": f.sha256, "bytes": f.bytes} for f in p.files],
            }
            for p in journal.purges()
        ],
    }


def report_counts(states: Mapping[str, int]) -> dict[str, int]:
    """Journal states counted as status.parquet's statuses."""
    counts: Counter[str] = Counter()
    for state, n in states.items():
        counts[REPORT_STATUS[state]] += n
    return {s: int(counts.get(s, 0)) for s in STATUSES if s not in ("rejected", "skipped")}


def write_reports(
    journal: JournalQueries,
    run_dir: Path,
    *,
    now: datetime | None = None,
    rejects_source: Path | None = None,
    chunk_rows: int = REPORT_CHUNK_ROWS,
    extra: Mapping[str, Any] | None = None,
    ledger: Ledger | None = None,
) -> dict[str, Any]:
    """Rewrite all four reports of ``run_dir`` from ``journal``; returns the summary written.

    ``now`` stamps summary.json (default: the current UTC time); ``rejects_source`` is the
    input stage's rejects file when it is not already RUN_DIR/rejects.parquet; ``extra``
    adds top-level sections to summary.json (the runner's polling figures); ``ledger`` (the
    workspace's daily-cap ledger) tells each org's days at its cap in ``orgs``.
    """
    now = now or SYSTEM_CLOCK.utc_now()
    by_org: Counter[OrgRowKey] = Counter()
    statuses = write_status(journal, run_dir, chunk_rows, now=now, by_org=by_org)
    outcomes = write_products(journal, run_dir, chunk_rows)
    rejected = write_rejects(run_dir, rejects_source)
    summary = build_summary(
        journal,
        now=now,
        statuses=statuses,
        outcomes=outcomes,
        rejected=rejected,
        by_org=by_org,
        ledger=ledger,
    )
    summary.update(extra or {})
    with atomic_file(run_dir / SUMMARY_FILE) as fh:
        fh.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return summary
