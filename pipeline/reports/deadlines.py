"""Legal deadlines of a run's open subjects, from status.parquet at a given time.

:func:`with_clocks` gives a status table its ``due_at``, ``days_left`` and ``overdue``
columns at ``now``: ``due_at`` as the reports writer stored it (else computed from
``regulation`` and ``received_at``, falling back to when the run was planned), the two clocks
always recounted at ``now`` so a report written days after the Parquet file is still right.
:func:`deadline_watch` is what ``dsar status`` shows: the overdue subjects and those due
within a week, soonest first. Only ``subject_key`` leaves this module, through ``key_label``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from . import files as rf
from .sla import TIMESTAMP, clock_columns, sla_columns

# a cancelled subject was never asked about: its deadline runs on, so it stays in view
OPEN_STATUSES = ("pending", "submitted", "processing", "error", "cancelled")
DUE_SOON_DAYS = 7
_COLUMNS = [
    "subject_key", "action", "regulation", "status", "received_at", "completed_at", "due_at",
]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class DeadlineRow:
    """One open subject (and action) near, or past, its legal deadline."""

    subject_key: str
    action: str
    regulation: str
    status: str
    due_at: datetime
    days_left: int
    overdue: bool


@dataclass(frozen=True, kw_only=True)
class DeadlineWatch:
    """Open subjects overdue and due within ``DUE_SOON_DAYS``, and the rows to show."""

    overdue: int
    due_soon: int
    rows: tuple[DeadlineRow, ...]


def with_clocks(status: pa.Table, *, now: datetime, seen_at: datetime | None) -> pa.Table:
    """``status`` with ``due_at``, ``days_left`` and ``overdue`` counted at ``now``."""
    done = rf.column_or_nulls(status, "completed_at", TIMESTAMP)
    states = rf.column_or_nulls(status, "status", pa.string())
    if "due_at" in status.column_names:
        cols = clock_columns(status.column("due_at"), now=now, completed_at=done, status=states)
    else:
        cols = sla_columns(
            rf.column_or_nulls(status, "regulation", pa.string()),
            rf.column_or_nulls(status, "received_at", TIMESTAMP),
            now=now, completed_at=done, status=states, seen_at=seen_at,
        )  # fmt: skip
    for name in ("due_at", "days_left", "overdue"):
        if name in status.column_names:
            status = status.drop_columns([name])
    return (
        status.append_column("due_at", cols.due_at)
        .append_column("days_left", cols.days_left)
        .append_column("overdue", cols.overdue)
    )


def open_deadlines(
    status: pa.Table,
    *,
    limit: int,
    within_days: int | None = None,
    key_label: Callable[[str], str] = str,
) -> DeadlineWatch:
    """The open subjects of a clocked status table, soonest due first.

    With ``within_days`` only the overdue ones and those due within that many days are listed.
    """
    open_mask = pc.is_in(rf.column_or_nulls(status, "status", pa.string()), pa.array(OPEN_STATUSES))
    table = status.filter(pc.and_(open_mask, pc.is_valid(status.column("due_at"))))
    left = table.column("days_left")
    overdue = int(pc.sum(pc.fill_null(table.column("overdue"), False)).as_py() or 0)
    soon = pc.and_(pc.greater_equal(left, 0), pc.less(left, DUE_SOON_DAYS))
    due_soon = int(pc.sum(soon).as_py() or 0)
    if within_days is not None:
        table = table.filter(pc.less(left, within_days))
    closest = table.sort_by([("due_at", "ascending")]).slice(0, limit).to_pylist()
    rows = tuple(_row(r, key_label) for r in closest)
    return DeadlineWatch(overdue=overdue, due_soon=due_soon, rows=rows)


def deadline_watch(
    run_dir: Path,
    *,
    now: datetime,
    within_days: int = DUE_SOON_DAYS,
    limit: int = 50,
    key_label: Callable[[str], str] = str,
) -> DeadlineWatch:
    """For ``dsar status``: overdue subjects and those due within ``within_days``, soonest first.

    Reads RUN_DIR/status.parquet (and summary.json for the run's start); an empty watch when
    the run has written no reports yet.
    """
    status = rf.read_table(run_dir, rf.STATUS_FILE, _COLUMNS)
    if status is None:
        return DeadlineWatch(overdue=0, due_soon=0, rows=())
    summary = rf.read_summary(run_dir) if (run_dir / rf.SUMMARY_FILE).exists() else {}
    clocked = with_clocks(status, now=now, seen_at=rf.created_at(summary))
    return open_deadlines(clocked, limit=limit, within_days=within_days, key_label=key_label)


def _row(row: Mapping[str, Any], key_label: Callable[[str], str]) -> DeadlineRow:
    return DeadlineRow(
        subject_key=key_label(str(row.get("subject_key") or "")),
        action=str(row.get("action") or ""),
        regulation=str(row.get("regulation") or ""),
        status=str(row["status"]),
        due_at=row["due_at"],
        days_left=int(row["days_left"]),
        overdue=bool(row["overdue"]),
    )
