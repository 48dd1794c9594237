"""The journal's record of a planning in progress, so that a run killed while planning can
plan again from the start.

:meth:`PlanningRecord.begin_planning` commits what the planning needs (the run id, the input's
path and sha256, the settings without credentials) and the planner's pid, in its own short
transaction, before the first input row is read; the plan itself is then written in one
transaction (:meth:`pipeline.journal.store.Journal.write_plan`). A kill in between leaves this
record and no plan: ``dsar resume`` reads it back with :meth:`PlanningRecord.planning` and plans
again. Mixed into :class:`pipeline.journal.store.Journal`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ..errors import JournalError
from ..input.spill import pid_alive
from .models import from_us_required, to_us
from .schema import JournalStore

_SECRET_KEYS = frozenset(
    {"client_id", "client_secret", "secret", "token", "access_token", "password"}
)


@dataclass(frozen=True, kw_only=True)
class PlanningInfo:
    """What a run's planning started from, and which process ran it."""

    run_id: str
    input_path: str
    input_sha256: str
    settings: dict[str, Any]
    pid: int
    started_at: datetime
    dry_run: bool = False  # a dry run's plan stays a preview when it is planned again
    asks: bool = True  # the command would have asked before submitting: nobody answered yet
    dedupe: bool = True  # False: `dsar run --no-dedupe`, kept when the run is planned again

    @property
    def planner_alive(self) -> bool:
        """Whether the planning process still exists (and is not this one).

        A pid reused by another process reads as alive: the safe side, nothing is discarded.
        """
        return self.pid != os.getpid() and pid_alive(self.pid)


class PlanningRecord(JournalStore):
    """The ``planning`` table: one row, replaced by each (re)start of the planning."""

    def begin_planning(
        self,
        *,
        run_id: str,
        input_path: str,
        input_sha256: str,
        settings: Mapping[str, Any],
        at: datetime,
        dry_run: bool = False,
        asks: bool = True,
        dedupe: bool = True,
    ) -> None:
        """Record, durably, that this process starts planning the run (replaces a dead one's)."""
        stored = settings_json(settings)
        with self._tx() as c:
            row = (run_id, input_path, input_sha256, stored, os.getpid(), to_us(at))
            c.execute(
                "INSERT OR REPLACE INTO planning VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*row, int(dry_run), int(asks), int(dedupe)),
            )

    def planning(self) -> PlanningInfo | None:
        """The planning record, or None when no planning was ever started in this journal."""
        with self._lock:
            row = self._conn.execute(
                "SELECT run_id, input_path, input_sha256, settings_json, pid, started_at,"
                " dry_run, asks, dedupe FROM planning"
            ).fetchone()
        if row is None:
            return None
        settings: Mapping[str, Any] = orjson.loads(row[3])
        return PlanningInfo(
            run_id=row[0], input_path=row[1], input_sha256=row[2], settings=dict(settings),
            pid=int(row[4]), started_at=from_us_required(row[5]), dry_run=bool(row[6]),
            asks=bool(row[7]), dedupe=bool(row[8]),
        )  # fmt: skip


def settings_json(settings: Mapping[str, Any]) -> str:
    """The settings snapshot as stored; :class:`JournalError` if it holds a secret-named key."""

    def check(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if str(key).lower() in _SECRET_KEYS and value is not None:
                    raise JournalError(f"settings snapshot holds a secret-named key {key!r}")
                check(value)
        elif isinstance(node, list | tuple):
            for item in node:
                check(item)

    check(settings)
    return orjson.dumps(settings, default=str).decode()
