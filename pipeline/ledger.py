"""The workspace's daily-cap ledger: jobs created per org per UTC day, shared by every run.

The service caps the jobs an org may create per day. Every run in a workspace books its POSTs
in one SQLite file (``WORKSPACE/ledger.sqlite``) so two runs cannot overspend together:
:meth:`Ledger.reserve` takes the jobs of a batch out of the day's budget atomically
(``BEGIN IMMEDIATE``) before the POST, then :meth:`Ledger.commit` books the jobs the service
created and :meth:`Ledger.release` gives back the rest. The day is the caller's: the runner
passes the UTC date of the service's ``Date`` header, so a skewed local clock cannot mis-budget.

The ledger errs on the side of caution: a run killed between reserve and commit leaves its
reservation booked for that day (the POST may have created the jobs), so the budget can only
be under-used after a crash, never overspent.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import TracebackType

from .journal_schema import make_private_dir, open_database

LEDGER_FILE = "ledger.sqlite"
LEDGER_VERSION = 1

_MIGRATIONS = {
    0: (
        """CREATE TABLE day_usage (
            org TEXT NOT NULL,
            day TEXT NOT NULL,
            used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
            reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
            exhausted INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (org, day)
        ) WITHOUT ROWID""",
    )
}


@dataclass(frozen=True, kw_only=True)
class DayUsage:
    """One org's day: jobs created, jobs reserved by POSTs in flight, and the service's word."""

    used: int
    reserved: int
    exhausted: bool


class Ledger:
    """The daily-cap ledger of one workspace; safe to share between processes and threads.

    Open with :meth:`open`; use as a context manager or call :meth:`close`.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, workspace: Path) -> Ledger:
        """Open (creating it 0600 in a 0700 workspace) the ledger of ``workspace``."""
        make_private_dir(workspace)
        path = workspace / LEDGER_FILE
        return cls(open_database(path, target=LEDGER_VERSION, migrations=_MIGRATIONS))

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def reserve(self, org: str, day: date, n: int, cap: int) -> bool:
        """Take ``n`` jobs out of ``org``'s budget for ``day`` if they fit under ``cap``.

        Atomic across processes. False (and nothing booked) when the day is marked exhausted
        or ``used + reserved + n`` would exceed ``cap``.
        """
        if n <= 0:
            raise ValueError("reserve needs a positive job count")
        key = (org, day.isoformat())
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            row = c.execute(
                "SELECT used, reserved, exhausted FROM day_usage WHERE org = ? AND day = ?", key
            ).fetchone()
            used, reserved, exhausted = row if row else (0, 0, 0)
            if exhausted or used + reserved + n > cap:
                c.execute("ROLLBACK")
                return False
            c.execute(
                "INSERT INTO day_usage (org, day, reserved) VALUES (?, ?, ?)"
                " ON CONFLICT (org, day) DO UPDATE SET reserved = reserved + excluded.reserved",
                (*key, n),
            )
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        return True

    def commit(self, org: str, day: date, n: int) -> None:
        """Book ``n`` jobs the service created, taking them out of the day's reservations.

        Reservations never go below zero; jobs are always booked (a resumed run adopting the
        jobs of a crashed POST commits against the reservation the crash left behind).
        """
        self._update(
            org,
            day,
            "used = used + :n, reserved = max(reserved - :n, 0)",
            n,
        )

    def release(self, org: str, day: date, n: int) -> None:
        """Give back ``n`` reserved jobs that were not created (a refused or deferred POST)."""
        self._update(org, day, "reserved = max(reserved - :n, 0)", n)

    def mark_exhausted(self, org: str, day: date) -> None:
        """The service said the cap is reached: no more reservations for ``org`` on ``day``."""
        self._update(org, day, "exhausted = 1", 0)

    def _update(self, org: str, day: date, sets: str, n: int) -> None:
        if n < 0:
            raise ValueError("job counts are never negative")
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute(
                "INSERT INTO day_usage (org, day) VALUES (:org, :day) ON CONFLICT DO NOTHING",
                {"org": org, "day": day.isoformat()},
            )
            c.execute(
                f"UPDATE day_usage SET {sets} WHERE org = :org AND day = :day",
                {"org": org, "day": day.isoformat(), "n": n},
            )
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def usage(self, org: str, day: date) -> DayUsage:
        """What ``org`` has used and reserved on ``day``."""
        row = self._conn.execute(
            "SELECT used, reserved, exhausted FROM day_usage WHERE org = ? AND day = ?",
            (org, day.isoformat()),
        ).fetchone()
        used, reserved, exhausted = row if row else (0, 0, 0)
        return DayUsage(used=used, reserved=reserved, exhausted=bool(exhausted))

    def remaining(self, org: str, day: date, cap: int) -> int:
        """Jobs ``org`` may still reserve on ``day`` under ``cap`` (0 once exhausted)."""
        u = self.usage(org, day)
        return 0 if u.exhausted else max(cap - u.used - u.reserved, 0)
