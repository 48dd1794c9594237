"""What report.html shows, computed from a run directory's report files.

:func:`gather` reads status.parquet, products.parquet, rejects.parquet and summary.json with
pyarrow and reduces them to small, plain tables (counts by status, regulation, product and
outcome; time series; error, reject and deadline tables). It never reads identity values:
only ``subject_key`` leaves it, in the error examples and the deadline table, through the
``key_label`` function the caller chooses (identity, or a keyed hash with ``--redact-keys``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..reports import files as rf
from ..reports.deadlines import DeadlineRow, open_deadlines, with_clocks
from ..reports.sla import TIMESTAMP

MAX_GROUPS = 25  # rows of the error and reject tables
DEADLINE_ROWS = 25
EXAMPLE_KEYS = 5

_STATUS_COLS = [
    "subject_key", "action", "regulation", "job_id", "status", "submitted_at", "completed_at",
    "error_code", "error_message", "received_at", "due_at", "days_left", "overdue",
]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ErrorGroup:
    """Errors sharing a response code and message: where they came from, how many, examples."""

    source: str  # "job" (status.parquet) or "product" (products.parquet)
    code: str
    message: str
    count: int
    example_keys: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Series:
    """Cumulative submitted and finished counts per time bucket (``unit`` is hour or day)."""

    unit: str
    labels: tuple[str, ...]
    submitted: tuple[int, ...]
    finished: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class CapTimeline:
    """Jobs submitted per UTC day against the daily cap, and the days still needed."""

    cap: int
    days: tuple[tuple[str, int], ...]
    pending: int
    days_needed: int


@dataclass(frozen=True, kw_only=True)
class ReportData:
    """Everything report.html shows; small whatever the run's size."""

    generated_at: datetime
    run_id: str
    tool_version: str
    input_rows: int | None
    headline: dict[str, int]
    by_status: dict[str, int]
    by_regulation: dict[str, dict[str, int]]
    products: dict[str, dict[str, int]]
    series: Series
    cap: CapTimeline
    errors: tuple[ErrorGroup, ...]
    rejects: tuple[tuple[str, int, str], ...]
    deadlines: tuple[DeadlineRow, ...]
    overdue: int
    due_soon: int
    purges: tuple[tuple[str, str, int, int], ...] = ()  # what, when, files removed, bytes
    canary: dict[str, Any] | None = None  # summary.json's canary: settings and verdict
    orgs: dict[str, dict[str, Any]] = field(default_factory=dict)  # summary.json's per org


PRODUCT_BATCH_ROWS = 65_536


def gather(run_dir: Path, *, now: datetime, key_label: Callable[[str], str] = str) -> ReportData:
    """Read the run's report files and reduce them to what the report shows."""
    summary = rf.read_summary(run_dir)
    status = rf.read_table(run_dir, rf.STATUS_FILE, _STATUS_COLS) or _empty_status()
    product_counts, failed_products = _product_facts(run_dir)
    rejects = rf.read_table(run_dir, rf.REJECTS_FILE, ["reason_code", "message"])
    status = with_clocks(status, now=now, seen_at=rf.created_at(summary))
    watch = open_deadlines(status, limit=DEADLINE_ROWS, key_label=key_label)
    return ReportData(
        generated_at=now,
        run_id=rf.run_id(summary) or run_dir.name,
        tool_version=rf.tool_version(summary) or "unknown",
        input_rows=rf.input_facts(summary)["rows"],
        headline=rf.headline_counts(summary),
        by_status=_by_status(status, rejects),
        by_regulation=_counts(status, ["regulation", "status"]),
        products=product_counts,
        series=_series(status),
        cap=_cap(status, rf.daily_job_cap(summary)),
        errors=_errors(status, failed_products, key_label),
        rejects=_rejects(rejects),
        deadlines=watch.rows,
        overdue=watch.overdue,
        due_soon=watch.due_soon,
        purges=tuple(
            (
                str(p.get("what")),
                str(p.get("at")),
                len(p["files"]),
                sum(int(f.get("bytes") or 0) for f in p["files"] if isinstance(f, dict)),
            )
            for p in rf.purges(summary)
        ),
        canary=rf.canary(summary),
        orgs=rf.orgs(summary),
    )


def _product_facts(run_dir: Path) -> tuple[dict[str, dict[str, int]], pa.Table | None]:
    """Outcomes per product, and the failed products' rows, from products.parquet read one
    record batch at a time: a big run has several rows per job, and only its errors matter
    beyond the counts."""
    path = run_dir / rf.PRODUCTS_FILE
    if not path.exists():
        return {}, None
    wanted = ["product", "outcome", "response_code", "message", "subject_key"]
    counts: Counter[tuple[str, str]] = Counter()
    failed: list[pa.Table] = []
    try:
        pf = pq.ParquetFile(path)
        columns = [c for c in wanted if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=PRODUCT_BATCH_ROWS, columns=columns):
            table = pa.Table.from_batches([batch])
            for product, outcomes in _counts(table, ["product", "outcome"]).items():
                for outcome, n in outcomes.items():
                    counts[(product, outcome)] += n
            if "outcome" in table.column_names:
                bad = table.filter(pc.equal(table.column("outcome"), "error"))
                if bad.num_rows:
                    failed.append(bad)
    except (OSError, pa.ArrowInvalid) as exc:
        raise rf.damaged(path, f"not a readable Parquet file: {exc}") from None
    nested: dict[str, dict[str, int]] = {}
    for (product, outcome), n in sorted(counts.items()):
        nested.setdefault(product, {})[outcome] = n
    return nested, pa.concat_tables(failed) if failed else None


def _empty_status() -> pa.Table:
    return pa.table({"status": pa.array([], pa.string())})


def _by_status(status: pa.Table, rejects: pa.Table | None) -> dict[str, int]:
    """Rows per status; rejected input rows come from rejects.parquet when status.parquet
    does not carry them (the reports writer keeps them in their own file)."""
    counts = _counts(status, ["status"]).get("", {})
    if "rejected" not in counts and rejects is not None and rejects.num_rows:
        counts["rejected"] = rejects.num_rows
    return counts


def _counts(table: pa.Table, keys: list[str]) -> dict[str, dict[str, int]]:
    """``{first key: {second key: count}}``; with one key, ``{"": {key: count}}``."""
    if table.num_rows == 0 or any(k not in table.column_names for k in keys):
        return {}
    grouped = table.select(keys).group_by(keys).aggregate([([], "count_all")]).to_pylist()
    out: dict[str, dict[str, int]] = {}
    for row in sorted(grouped, key=lambda r: tuple(str(r[k] or "") for k in keys)):
        outer = "" if len(keys) == 1 else str(row[keys[0]] or "(none)")
        inner = str(row[keys[-1]] or "(none)")
        out.setdefault(outer, {})[inner] = int(row["count_all"])
    return out


def _times(table: pa.Table, name: str) -> pa.ChunkedArray:
    return rf.column_or_nulls(table, name, TIMESTAMP).cast(TIMESTAMP)


def _series(status: pa.Table) -> Series:
    submitted = _times(status, "submitted_at").drop_null()
    finished = _times(status, "completed_at").drop_null()
    both = pa.chunked_array(submitted.chunks + finished.chunks, TIMESTAMP)
    if len(both) == 0:
        return Series(unit="day", labels=(), submitted=(), finished=())
    lo, hi = pc.min(both).as_py(), pc.max(both).as_py()
    unit = "hour" if hi - lo <= timedelta(days=2) else "day"
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    start = _floor(lo, unit)
    buckets = int((hi - start) // step) + 1
    labels = tuple(
        (start + i * step).strftime("%Y-%m-%d %H:00" if unit == "hour" else "%Y-%m-%d")
        for i in range(buckets)
    )
    return Series(
        unit=unit,
        labels=labels,
        submitted=_cumulative(submitted, start, step, buckets),
        finished=_cumulative(finished, start, step, buckets),
    )


def _floor(at: datetime, unit: str) -> datetime:
    at = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return at if unit == "hour" else at.replace(hour=0)


def _cumulative(
    times: pa.ChunkedArray, start: datetime, step: timedelta, buckets: int
) -> tuple[int, ...]:
    """Running totals of ``times`` per bucket of ``step`` from ``start``."""
    if len(times) == 0:
        return (0,) * buckets
    offsets = pc.subtract(times.cast(pa.int64()), int(start.timestamp() * 1_000_000))
    index = pc.divide(offsets, int(step / timedelta(microseconds=1))).combine_chunks()
    counts = [0] * buckets
    for value in index.value_counts().to_pylist():
        counts[min(int(value["values"]), buckets - 1)] += int(value["counts"])
    total, out = 0, []
    for c in counts:
        total += c
        out.append(total)
    return tuple(out)


def _cap(status: pa.Table, cap: int) -> CapTimeline:
    """Jobs per UTC submit day; days needed for the pending jobs at the cap."""
    submitted = _times(status, "submitted_at").drop_null()
    days: list[tuple[str, int]] = []
    if len(submitted):
        per_day = pc.floor_temporal(submitted, unit="day").combine_chunks().value_counts()
        for value in sorted(per_day.to_pylist(), key=lambda v: v["values"]):
            days.append((value["values"].strftime("%Y-%m-%d"), int(value["counts"])))
    pending = int(
        pc.sum(pc.equal(rf.column_or_nulls(status, "status", pa.string()), "pending")).as_py() or 0
    )
    needed = math.ceil(pending / cap)
    return CapTimeline(cap=cap, days=tuple(days), pending=pending, days_needed=needed)


def _errors(
    status: pa.Table, products: pa.Table | None, key_label: Callable[[str], str]
) -> tuple[ErrorGroup, ...]:
    """Errors grouped by code and message, jobs first, then products; largest groups first."""
    groups: list[ErrorGroup] = []
    failed = status.filter(pc.equal(rf.column_or_nulls(status, "status", pa.string()), "error"))
    groups += _error_groups("job", failed, "error_code", "error_message", key_label)
    if products is not None and "outcome" in products.column_names:
        bad = products.filter(pc.equal(products.column("outcome"), "error"))
        groups += _error_groups("product", bad, "response_code", "message", key_label)
    groups.sort(key=lambda g: (-g.count, g.source, g.code, g.message))
    return tuple(groups[:MAX_GROUPS])


def _error_groups(
    source: str, table: pa.Table, code: str, message: str, key_label: Callable[[str], str]
) -> list[ErrorGroup]:
    if table.num_rows == 0:
        return []
    table = pa.table(
        {
            "code": rf.column_or_nulls(table, code, pa.string()).fill_null(""),
            "message": rf.column_or_nulls(table, message, pa.string()).fill_null(""),
            "subject_key": rf.column_or_nulls(table, "subject_key", pa.string()).fill_null(""),
        }
    )
    counted = table.group_by(["code", "message"]).aggregate([([], "count_all")])
    top = counted.sort_by([("count_all", "descending")]).slice(0, MAX_GROUPS).to_pylist()
    out = []
    for row in top:
        mask = pc.and_(
            pc.equal(table.column("code"), row["code"]),
            pc.equal(table.column("message"), row["message"]),
        )
        keys = pc.unique(table.filter(mask).column("subject_key")).slice(0, EXAMPLE_KEYS)
        out.append(
            ErrorGroup(
                source=source,
                code=row["code"] or "(no code)",
                message=row["message"],
                count=int(row["count_all"]),
                example_keys=tuple(key_label(k) for k in keys.to_pylist() if k),
            )
        )
    return out


def _rejects(rejects: pa.Table | None) -> tuple[tuple[str, int, str], ...]:
    """(reason code, rows, the most frequent message) per reason, largest first."""
    if rejects is None or rejects.num_rows == 0 or "reason_code" not in rejects.column_names:
        return ()
    table = pa.table(
        {
            "reason_code": rejects.column("reason_code").fill_null("(none)"),
            "message": rf.column_or_nulls(rejects, "message", pa.string()).fill_null(""),
        }
    )
    pairs = table.group_by(["reason_code", "message"]).aggregate([([], "count_all")]).to_pylist()
    by_reason: dict[str, list[Any]] = {}
    for row in sorted(pairs, key=lambda r: -int(r["count_all"])):
        entry = by_reason.setdefault(row["reason_code"], [0, row["message"]])
        entry[0] += int(row["count_all"])
    ranked = sorted(by_reason.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return tuple((reason, int(n), str(msg)) for reason, (n, msg) in ranked[:MAX_GROUPS])
