"""How many jobs the next POST may carry under the day's cap, and when it is a probe.

Adobe does not publish the daily cap or its scope, so the configured cap is only an upper
bound: the service may refuse a POST (the daily-limit 400, nothing created) while the ledger
still shows budget. Giving up for the day at that point wastes up to a whole request of
budget every day, and a request larger than the real cap would never be accepted at all.
Instead every refusal lowers the day's *ceiling* in the ledger (see
:meth:`~pipeline.journal.ledger.Ledger.refused`), and :func:`allowance` sizes the next request
from it:

- **probing down** (the service refused today): with at most ``hi`` jobs left under the
  ceiling, the next request carries ``ceil(hi / 2)`` jobs (at least its first user). An
  accepted probe leaves at most ``hi / 2`` under the ceiling, a refused one lowers the ceiling
  to below the probe: either way ``hi`` halves, so about ``log2(request size)`` POSTs fill the
  day to within one user's jobs of the real cap;
- **working budget** (no refusal today, one on an earlier day): requests are split to fit the
  latest observed cap (the *carried* ceiling), so a day fills to it at full speed without a
  refusal; once it is reached one single-user probe goes above it: refused, the day is done
  (one clean 400 a day); accepted, the cap has grown (or another tool sharing it used less)
  and the configured cap governs again until the next refusal. Probing upward costs at most
  one refused request a day, and without it a cap raised by Adobe would never be used;
- **configured cap** otherwise, never exceeded in any case.

A probe is sent alone (nothing else of the run in flight), and "the day is done" is only
concluded with nothing in flight, since a POST in flight may yet be refused and give its
budget back. :class:`BudgetGate` holds that rule for the submitter's workers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..journal.ledger import DayUsage, Ledger, Settled
from ..journal.store import Journal

log = logging.getLogger("dsar.submit")


@dataclass(frozen=True, kw_only=True)
class Allowance:
    """The next request's size limit: at most ``jobs`` jobs (0: nothing more today), and
    whether it probes the service's real cap (then it is sent alone)."""

    jobs: int
    probe: bool

    @property
    def day_done(self) -> bool:
        """No job fits in the day's budget any more."""
        return self.jobs == 0


def allowance(usage: DayUsage, cap: int, first_user_jobs: int) -> Allowance:
    """The most jobs the next request (whose first user has ``first_user_jobs`` jobs) may
    carry on a day with ``usage``, under the configured ``cap``."""
    hard = usage.left(cap)  # under the configured cap and today's ceiling: never more
    if first_user_jobs > hard:
        return Allowance(jobs=0, probe=usage.ceiling is not None)
    if usage.ceiling is not None:
        return Allowance(jobs=max((hard + 1) // 2, first_user_jobs), probe=True)
    carried = usage.carried
    if carried is not None and carried < cap and usage.used <= carried:
        soft = carried - usage.used - usage.reserved
        if soft >= first_user_jobs:
            return Allowance(jobs=min(soft, hard), probe=False)
        return Allowance(jobs=first_user_jobs, probe=True)  # one user above the carried cap
    return Allowance(jobs=hard, probe=False)


class BudgetGate:
    """Counts the run's reserved POSTs in flight, and lets a probe (or the conclusion that
    the day is done) wait until there are none.

    Use ``async with gate:`` around the decision and the reservation (no other await in
    between), :meth:`settle` when the POST's outcome is recorded.
    """

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self.in_flight = 0

    async def __aenter__(self) -> BudgetGate:
        await self._cond.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cond.release()

    async def wait_settled(self) -> None:
        """Inside ``async with``: wait until one POST in flight settles."""
        await self._cond.wait()

    async def settle(self) -> None:
        """One reserved POST has its outcome recorded (created, refused, deferred, ambiguous)."""
        async with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()


def next_service_day(at: datetime) -> datetime:
    """When the service day after ``at``'s begins (UTC midnight): a day's budget is new then."""
    day = at.date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=at.tzinfo)


def settle_reservations(journal: Journal, ledger: Ledger) -> Settled:
    """Settle the ledger reservations the run's last process left behind, from the journal.

    Journal and ledger are two SQLite files with no atomic commit across them, and the journal
    moves first: a process killed after a batch's transition and before the ledger followed
    leaves its reservation booked. Each is settled here by its batch's committed state
    (:meth:`~pipeline.journal.queries.JournalQueries.jobs_created`): a submitted or reconciled
    batch books the jobs it created and gives back the rest; a planned, deferred, failed or
    cancelled one gives it all back; a ``submitting`` or ``ambiguous`` one keeps it for
    reconciliation, which settles it by what the service shows. Call it when the run starts
    driving, before it reserves anything (the run's lock keeps other processes off its
    reservations); a second call changes nothing.
    """
    run_id = journal.run_info().meta.run_id
    left = ledger.reservations(run_id)
    if not left:
        return Settled()
    settled = ledger.settle(run_id, journal.jobs_created(r.batch_id for r in left))
    log.info(
        "daily budget: %d reservations left by an earlier process settled from the journal"
        " (%d jobs booked, %d given back whole), %d kept for reconciliation",
        settled.committed + settled.released,
        settled.jobs,
        settled.released,
        settled.kept,
    )
    return settled
