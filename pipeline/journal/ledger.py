"""The workspace's daily-cap ledger: jobs created per org per UTC day, shared by every run.

The service caps the jobs an org may create per day. Every run in a workspace books its POSTs
in one SQLite file (``WORKSPACE/ledger.sqlite``) so two runs cannot overspend together:
:meth:`Ledger.reserve` takes the jobs of a batch out of the day's budget atomically
(``BEGIN IMMEDIATE``) before the POST, as one *reservation* row named by the run and the batch;
then :meth:`Ledger.commit` books the jobs the service created and gives back the rest, and
:meth:`Ledger.release` gives back the whole reservation. Each deletes the reservation's row and
moves its jobs in one transaction, so settling a reservation twice is a no-op. A day's
``reserved`` is the sum of its rows. The day is the caller's: the runner passes the UTC date of
the service's ``Date`` header, so a skewed local clock cannot mis-budget.

The run's journal and this ledger are two SQLite files with no atomic commit across them: the
journal is the truth, and the ledger is settled from it. The runner moves the journal first
(intent, submitted, deferred, reconciled) and the ledger after, so a process killed in between
leaves a reservation behind. :meth:`Ledger.settle`, called when a run (re)starts and before it
reserves anything, settles each leftover reservation of that run from the journal's committed
state of its batch: the jobs a settled batch created are booked, the rest given back, and the
reservation of a POST whose outcome is still unknown (``submitting``, ``ambiguous``) stays
booked until reconciliation settles it by what the service shows. Until then the budget can only
be under-used, never overspent. A version-2 file's anonymous reservations (from before rows had
names) stay booked for their day as *legacy* rows: nothing can tell what they became.

The service does not publish its cap, and it may be lower than the configured one (or shared
with other tools of the org). A daily-limit refusal is recorded with :meth:`Ledger.refused`: it
gives back the refused reservation and lowers the day's *ceiling*, an upper bound on what the
service will accept that day (``used + reserved - 1`` at the refusal: the refused request did not
fit on top of everything that may have been created). :meth:`Ledger.usage` also returns the
*carried* cap, the ceiling of the latest earlier day: the next day's working budget. Both
persist in the file, so a crash never forgets what the service said.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ..files import Closing
from .schema import make_private_dir, open_database

LEDGER_FILE = "ledger.sqlite"
LEDGER_VERSION = 3
# The run id of a version-2 file's anonymous reservations: no run settles them.
LEGACY_RUN = ""

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
    # v3: a reservation is a row named by its run and batch, settled once; a v2 day's
    # anonymous count stays booked as a legacy row (run '' and batch '': never settled)
    2: (
        """CREATE TABLE reservation (
            org TEXT NOT NULL,
            day TEXT NOT NULL,
            run_id TEXT NOT NULL,
            batch_id TEXT NOT NULL,
            n INTEGER NOT NULL CHECK (n > 0),
            PRIMARY KEY (run_id, batch_id, org, day)
        ) WITHOUT ROWID""",
        "CREATE INDEX reservation_by_day ON reservation (org, day)",
        "INSERT INTO reservation SELECT org, day, '', '', reserved FROM day_usage"
        " WHERE reserved > 0",
        "ALTER TABLE day_usage DROP COLUMN reserved",
    ),
}

_DAY_RESERVED = "SELECT coalesce(sum(n), 0) FROM reservation WHERE org = ? AND day = ?"


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


@dataclass(frozen=True, kw_only=True)
class Reservation:
    """Jobs of one batch of one run taken out of an org's day before its POST."""

    org: str
    day: date
    run_id: str
    batch_id: str
    n: int


@dataclass(frozen=True, kw_only=True)
class Settled:
    """What :meth:`Ledger.settle` did: reservations booked (with the jobs they created),
    given back whole, and kept (their POST's outcome is unknown yet)."""

    committed: int = 0
    jobs: int = 0
    released: int = 0
    kept: int = 0


def _take(c: sqlite3.Connection, run_id: str, batch_id: str) -> tuple[str, str, int] | None:
    """Delete the reservation of ``batch_id`` of ``run_id``: its (org, day, n), None if none."""
    row = c.execute(
        "DELETE FROM reservation WHERE run_id = ? AND batch_id = ? RETURNING org, day, n",
        (run_id, batch_id),
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]), int(row[2]))


class _Refused(Exception):
    """Inside :meth:`Ledger._reserve`: the jobs do not fit (the transaction rolls back)."""


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

    @contextmanager
    def _tx(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction (``BEGIN IMMEDIATE``: a write, serialised across processes; plain
        ``BEGIN``: one read snapshot)."""
        c = self._conn
        c.execute(begin)
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def reserve(self, org: str, day: date, n: int, cap: int, *, run_id: str, batch_id: str) -> bool:
        """Take ``n`` jobs out of ``org``'s budget for ``day`` if they fit under ``cap``, as
        the reservation of batch ``batch_id`` of run ``run_id`` (replacing an earlier one of
        the same batch, which can only be a batch never POSTed).

        Atomic across processes. False (and nothing booked) when ``used + reserved + n`` would
        exceed ``cap`` or the day's ceiling.
        """
        if n <= 0:
            raise ValueError("reserve needs a positive job count")
        if not run_id:
            raise ValueError("a reservation names its run")
        try:
            self._reserve(org, day, n, cap, run_id, batch_id)
        except _Refused:
            return False
        return True

    def _reserve(self, org: str, day: date, n: int, cap: int, run_id: str, batch_id: str) -> None:
        key = (org, day.isoformat())
        with self._tx() as c:
            c.execute(
                "DELETE FROM reservation WHERE run_id = ? AND batch_id = ?", (run_id, batch_id)
            )
            row = c.execute(
                "SELECT used, ceiling FROM day_usage WHERE org = ? AND day = ?", key
            ).fetchone()
            used, ceiling = row if row else (0, None)
            (reserved,) = c.execute(_DAY_RESERVED, key).fetchone()
            if used + reserved + n > (cap if ceiling is None else min(cap, ceiling)):
                raise _Refused  # rolled back: an earlier reservation of the batch stays
            c.execute("INSERT INTO day_usage (org, day) VALUES (?, ?) ON CONFLICT DO NOTHING", key)
            c.execute("INSERT INTO reservation VALUES (?, ?, ?, ?, ?)", (*key, run_id, batch_id, n))

    def commit(self, run_id: str, batch_id: str, created: int) -> bool:
        """Settle the reservation of ``batch_id``: book the ``created`` jobs the service made
        for it and give back the rest (all of it when ``created`` is 0). Jobs beyond the
        reservation are booked too: what exists counts.

        Idempotent: False, and nothing changes, when the batch holds no reservation (already
        settled, or booked by a version-2 ledger as a legacy row that stays).
        """
        if created < 0:
            raise ValueError("job counts are never negative")
        with self._tx() as c:
            taken = _take(c, run_id, batch_id)
            if taken is None:
                return False
            org, day, _ = taken
            c.execute(
                "UPDATE day_usage SET used = used + ? WHERE org = ? AND day = ?",
                (created, org, day),
            )
        return True

    def release(self, run_id: str, batch_id: str) -> bool:
        """Give back the whole reservation of ``batch_id`` (a POST that created nothing:
        throttled, rejected, never sent); idempotent like :meth:`commit`."""
        return self.commit(run_id, batch_id, 0)

    def refused(self, run_id: str, batch_id: str) -> int | None:
        """The service refused the POST of ``batch_id`` at its daily limit: give its
        reservation back and lower the day's ceiling below ``used + reserved`` (the refused
        jobs did not fit on top of every job that may have been created). Returns the new
        ceiling; None, and nothing changes, when the batch holds no reservation.
        """
        with self._tx() as c:
            taken = _take(c, run_id, batch_id)
            if taken is None:
                return None
            org, day, n = taken
            (others,) = c.execute(_DAY_RESERVED, (org, day)).fetchone()
            c.execute(
                "INSERT INTO day_usage (org, day) VALUES (?, ?) ON CONFLICT DO NOTHING", (org, day)
            )
            (ceiling,) = c.execute(
                "UPDATE day_usage SET ceiling = min(coalesce(ceiling, used + :r - 1),"
                " used + :r - 1) WHERE org = :org AND day = :day RETURNING ceiling",
                {"org": org, "day": day, "r": others + n},
            ).fetchone()
        return int(ceiling)

    def reservations(self, run_id: str) -> list[Reservation]:
        """The reservations ``run_id`` holds (left by a process that stopped before settling
        them, or POSTs in flight), in batch order."""
        rows = self._conn.execute(
            "SELECT org, day, batch_id, n FROM reservation WHERE run_id = ? ORDER BY batch_id",
            (run_id,),
        ).fetchall()
        return [
            Reservation(org=o, day=date.fromisoformat(d), run_id=run_id, batch_id=b, n=n)
            for o, d, b, n in rows
        ]

    def settle(self, run_id: str, created: Mapping[str, int | None]) -> Settled:
        """Settle ``run_id``'s leftover reservations from its journal: ``created`` maps a batch
        id to the jobs its POST created (0: none, the reservation is given back whole) or to
        None while that is unknown (the reservation stays). A reservation of a batch missing
        from ``created`` stays too. Call it before the run reserves anything; settling again
        changes nothing.
        """
        committed = jobs = released = kept = 0
        for r in self.reservations(run_id):
            made = created.get(r.batch_id)
            if made is None:
                kept += 1
            elif self.commit(run_id, r.batch_id, made):
                committed += made > 0
                released += made == 0
                jobs += made
        return Settled(committed=committed, jobs=jobs, released=released, kept=kept)

    def usage(self, org: str, day: date) -> DayUsage:
        """What ``org`` has used and reserved on ``day``, its ceiling and the carried cap."""
        key = (org, day.isoformat())
        with self._tx("BEGIN") as c:  # one snapshot of the day and its reservations
            row = c.execute(
                "SELECT used, ceiling FROM day_usage WHERE org = ? AND day = ?", key
            ).fetchone()
            (reserved,) = c.execute(_DAY_RESERVED, key).fetchone()
        used, ceiling = row if row else (0, None)
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
