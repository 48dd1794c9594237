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

The service does not publish its cap, and it may be lower than the configured one (or shared
with other tools of the org). A daily-limit refusal is recorded with :meth:`Ledger.refused`: it
gives back the refused jobs and lowers the day's *ceiling*, an upper bound on what the service
will accept that day (``used + reserved - 1`` at the refusal: the refused request did not fit
on top of everything that may have been created). :meth:`Ledger.usage` also returns the
*carried* cap, the ceiling of the latest earlier day: the next day's working budget. Both
persist in the file, so a crash never forgets what the service said.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ..files import Closing
from .schema import make_private_dir, open_database

LEDGER_FILE = "ledger.sqlite"
LEDGER_VERSION = 2

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
    ),
    # v2: the service's refusals lower a day's ceiling; a v1 "exhausted" day keeps what it had
    1: (
        "ALTER TABLE day_usage ADD COLUMN ceiling INTEGER CHECK (ceiling >= 0)",
        "UPDATE day_usage SET ceiling = used + reserved WHERE exhausted = 1",
        "ALTER TABLE day_usage DROP COLUMN exhausted",
    ),
}


@dataclass(frozen=True, kw_only=True)
class DayUsage:
    """One org's day: jobs created, jobs reserved by POSTs in flight, and the service's word.

    ``ceiling`` is the most jobs the service can accept that day as learned from its daily-limit
    refusals (None: no refusal yet); ``carried`` is the ceiling of the latest earlier day that
    has one (the cap observed before), None if the service never refused.
    """

    used: int
    reserved: int
    ceiling: int | None = None
    carried: int | None = None

    def limit(self, cap: int) -> int:
        """The most jobs the day may hold: ``cap``, or the ceiling if lower."""
        return cap if self.ceiling is None else min(cap, self.ceiling)

    def left(self, cap: int) -> int:
        """Jobs that may still be reserved under :meth:`limit`."""
        return max(self.limit(cap) - self.used - self.reserved, 0)


@dataclass(frozen=True, kw_only=True)
class ObservedCap:
    """The latest day the service refused a POST at its daily limit: the jobs it accepted
    that day, and the ceiling its refusals set (at most one user's jobs more once probed)."""

    day: date
    accepted: int
    ceiling: int


class Ledger(Closing):
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

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def reserve(self, org: str, day: date, n: int, cap: int) -> bool:
        """Take ``n`` jobs out of ``org``'s budget for ``day`` if they fit under ``cap``.

        Atomic across processes. False (and nothing booked) when ``used + reserved + n`` would
        exceed ``cap`` or the day's ceiling.
        """
        if n <= 0:
            raise ValueError("reserve needs a positive job count")
        key = (org, day.isoformat())
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            row = c.execute(
                "SELECT used, reserved, ceiling FROM day_usage WHERE org = ? AND day = ?", key
            ).fetchone()
            used, reserved, ceiling = row if row else (0, 0, None)
            if used + reserved + n > (cap if ceiling is None else min(cap, ceiling)):
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

    def refused(self, org: str, day: date, n: int) -> int:
        """The service refused a POST of ``n`` reserved jobs at its daily limit: give them
        back and lower the day's ceiling below ``used + reserved`` (the refused jobs did not
        fit on top of every job that may have been created). Returns the new ceiling.
        """
        if n <= 0:
            raise ValueError("a refusal needs a positive job count")
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            (ceiling,) = c.execute(
                "INSERT INTO day_usage (org, day, ceiling) VALUES (:org, :day, :n - 1)"
                " ON CONFLICT (org, day) DO UPDATE SET"
                " ceiling = min(coalesce(ceiling, used + max(reserved, :n) - 1),"
                "               used + max(reserved, :n) - 1),"
                " reserved = max(reserved - :n, 0)"
                " RETURNING ceiling",
                {"org": org, "day": day.isoformat(), "n": n},
            ).fetchone()
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        return int(ceiling)

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
        """What ``org`` has used and reserved on ``day``, its ceiling and the carried cap."""
        key = (org, day.isoformat())
        row = self._conn.execute(
            "SELECT used, reserved, ceiling FROM day_usage WHERE org = ? AND day = ?", key
        ).fetchone()
        used, reserved, ceiling = row if row else (0, 0, None)
        carried = self._conn.execute(
            "SELECT ceiling FROM day_usage WHERE org = ? AND day < ? AND ceiling IS NOT NULL"
            " ORDER BY day DESC LIMIT 1",
            key,
        ).fetchone()
        return DayUsage(
            used=used,
            reserved=reserved,
            ceiling=ceiling,
            carried=carried[0] if carried else None,
        )

    def observed_cap(self, org: str) -> ObservedCap | None:
        """What the service accepted on the latest day it refused ``org`` a POST at its daily
        limit (None if it never did)."""
        row = self._conn.execute(
            "SELECT day, used, ceiling FROM day_usage WHERE org = ? AND ceiling IS NOT NULL"
            " ORDER BY day DESC LIMIT 1",
            (org,),
        ).fetchone()
        if row is None:
            return None
        return ObservedCap(day=date.fromisoformat(row[0]), accepted=row[1], ceiling=row[2])

    def remaining(self, org: str, day: date, cap: int) -> int:
        """Jobs ``org`` may still reserve on ``day`` under ``cap`` and the day's ceiling."""
        return self.usage(org, day).left(cap)
