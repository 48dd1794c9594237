"""Stage 4a: submit planned batches, and reconcile the ones whose POST was ambiguous.

Write-ahead: the daily budget is reserved in the workspace ledger and the intent recorded in
the journal *before* each POST; the job ids come back in the transaction that marks the batch
submitted. A POST that fails in a way that may have created jobs is never sent again: the
batch turns ``ambiguous`` and :meth:`Submitter.reconcile_unresolved` lists the regulation's
jobs since the intent, adopts those whose (user key, action) match, and moves only the missing
users to a new batch.

Each POST's budget is one reservation in the ledger, named by the run and the batch. The
journal moves first and the ledger follows (journal and ledger are two SQLite files, with no
atomic commit across them: the journal is the truth). A crash in between leaves the reservation
behind; the next start of the run settles it from the journal
(:func:`~pipeline.run.budget.settle_reservations`), and reconciliation settles the reservation
of an ambiguous or interrupted POST by what the service shows was created. Settling is
idempotent, so nothing is booked or given back twice.

Each request is sized by :func:`~pipeline.run.budget.allowance` from the day's ledger entry: a
daily-limit refusal (a clean 400, nothing created) closes the batch as deferred, re-queues its
users in a new batch and lowers the day's ceiling, and the next requests probe down to the
service's real cap before the day is given up (see :mod:`pipeline.run.budget`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

import orjson

from .. import constants
from ..errors import (
    AmbiguousSubmission,
    AuthError,
    DailyCapReached,
    JournalError,
    PermissionDeniedError,
    RequestRejected,
    ThrottledError,
    TransientApiError,
)
from ..journal.models import BatchInfo, BatchState
from ..models import Action, PlannedBatch
from .budget import BudgetGate, allowance
from .canary import CanaryGate
from .context import RunContext

log = logging.getLogger("dsar.submit")


@dataclass
class SubmitReport:
    """What one submission pass did (counts only)."""

    posted: int = 0
    jobs_created: int = 0
    ambiguous: int = 0
    deferred: int = 0
    failed: int = 0
    cap_reached: bool = False
    reasons: dict[str, int] = field(default_factory=dict)


class Submitter:
    """Submits a run's planned batches with several workers sharing the client's limiter."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.cap_reached = False
        self._gate = BudgetGate()
        self._reconcile_first = False
        self.canary = CanaryGate(ctx)  # while a canary is judged, only its batches go
        self.run_id = ctx.journal.run_info().meta.run_id  # names the ledger's reservations

    async def submit_all(self) -> SubmitReport:
        """Reconcile, then submit every planned batch, round after round, until none is left,
        the daily cap is reached, or the run is asked to stop."""
        report = SubmitReport()
        while not self.ctx.stopping and not self.cap_reached:
            await self.reconcile_unresolved()
            self._reconcile_first = False
            batch_ids = self.canary.allowed(self.ctx.journal.batches_to_submit(org=self.ctx.org))
            if not batch_ids:
                break
            await self._round(batch_ids, report)
            if report.posted == 0 and report.deferred == 0 and report.ambiguous == 0:
                break
        report.cap_reached = self.cap_reached
        return report

    async def _round(self, batch_ids: list[str], report: SubmitReport) -> None:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=self.ctx.settings.limits.submit_workers)

        async def produce() -> None:
            for batch_id in batch_ids:
                if self.ctx.stopping or self.cap_reached or self._reconcile_first:
                    break
                await queue.put(batch_id)

        async def work() -> None:
            while True:
                batch_id = await queue.get()
                try:
                    if not (self.ctx.stopping or self.cap_reached):
                        await self.submit_one(batch_id, report)
                finally:
                    queue.task_done()

        workers = [
            asyncio.create_task(work(), name=f"dsar-submit-{i}")
            for i in range(max(1, self.ctx.settings.limits.submit_workers))
        ]
        try:
            await produce()
            await queue.join()
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            for w in workers:
                if not w.cancelled() and w.exception() is not None:
                    raise w.exception()  # type: ignore[misc]

    async def submit_one(self, batch_id: str, report: SubmitReport) -> None:
        """Reserve budget, record the intent, POST, and record what came back."""
        ctx = self.ctx
        batch = ctx.journal.load_batch(batch_id)
        if not batch.users:
            return
        if ctx.settings.job.opt_out_via == "consent" and _is_opt_out(batch):
            await self._consent(batch, report)
            return
        day = (await ctx.service_now()).date()
        async with self._gate:
            reserved = await self._reserve(batch, day)
        if reserved is None:
            if not self._reconcile_first:
                self._cap(day)
            return
        batch, n = reserved
        try:
            await self._post(batch, day, n, report)
        finally:
            await self._gate.settle()

    async def _post(self, batch: PlannedBatch, day: date, n: int, report: SubmitReport) -> None:
        ctx, ledger, run_id, batch_id = self.ctx, self.ctx.ledger, self.run_id, batch.batch_id
        try:
            ctx.journal.record_intent(batch_id, payload_digest(batch), ctx.now())
        except JournalError:
            ledger.release(run_id, batch_id)  # never POSTed (e.g. the run is no longer live)
            raise
        try:
            result = await ctx.client.create_jobs(batch.to_request())
        except AmbiguousSubmission as exc:
            # the jobs may exist: their reservation stays until reconciliation settles it
            ctx.journal.mark_ambiguous(batch_id, ctx.now(), reason=_reason(exc))
            report.ambiguous += 1
            log.warning("batch %s: POST outcome unknown (%s); will reconcile", batch_id, exc)
            return
        except DailyCapReached:
            # nothing was created: the users go to a new batch, sized by the lower ceiling
            ctx.journal.defer(batch_id, "daily_cap", ctx.now())
            ceiling = ledger.refused(run_id, batch_id)
            report.deferred += 1
            log.info(
                "batch %s (%d jobs) refused at the service's daily limit;"
                " %s accepts at most %s jobs",
                batch_id,
                n,
                day,
                ceiling,
            )
            return
        except ThrottledError:
            ctx.journal.defer(batch_id, "throttled", ctx.now())
            ledger.release(run_id, batch_id)
            report.deferred += 1
            return
        except (AuthError, PermissionDeniedError):
            ctx.journal.defer(batch_id, "auth", ctx.now())
            ledger.release(run_id, batch_id)
            raise
        except RequestRejected as exc:
            code = exc.code or f"HTTP-{exc.status}"
            ctx.journal.mark_failed(batch_id, code, str(exc), ctx.now())
            ledger.release(run_id, batch_id)
            report.failed += 1
            log.error("batch %s: rejected by the service: %s", batch_id, exc)
            return
        except TransientApiError:
            ctx.journal.mark_ambiguous(batch_id, ctx.now(), reason="transient")
            report.ambiguous += 1
            return
        report.posted += 1
        report.jobs_created += len(result.jobs)
        try:
            created: dict[tuple[str, Action | str], str] = {
                key: job_id for key, job_id in result.job_ids().items()
            }
            ctx.journal.mark_submitted(batch_id, result.request_id or "", created, ctx.now())
        except JournalError:
            # the answer does not cover the batch exactly: find out what exists instead
            ctx.journal.mark_ambiguous(batch_id, ctx.now(), reason="partial_answer")
            report.ambiguous += 1
            log.warning("batch %s: the answer did not match the request; will reconcile", batch_id)
            return
        ledger.commit(run_id, batch_id, len(created))

    async def _reserve(self, batch: PlannedBatch, day: date) -> tuple[PlannedBatch, int] | None:
        """Book the batch's jobs in the day's budget, first splitting it to the size
        :func:`~pipeline.run.budget.allowance` gives; None when not even its first user fits.

        Called inside ``async with self._gate``: a probe, and the conclusion that the day is
        done, wait until none of the run's POSTs is in flight. A day that looks done while
        ambiguous POSTs hold reservations ends the round instead: the next one reconciles
        them (giving their uncreated jobs back to the day) before sizing again.
        """
        ctx = self.ctx
        org, cap = ctx.org_id, ctx.settings.limits.daily_job_cap
        while True:
            first = len(batch.users[0].request.actions)
            allow = allowance(ctx.ledger.usage(org, day), cap, first)
            if (allow.probe or allow.day_done) and self._gate.in_flight:
                await self._gate.wait_settled()
                continue
            if allow.day_done:
                # an ambiguous POST's reservation may hide budget: reconcile before giving up
                self._reconcile_first = any(
                    i.state == BatchState.AMBIGUOUS
                    for i in ctx.journal.unresolved_batches(org=ctx.org)
                )
                return None
            fits = _users_within(batch, allow.jobs)
            if fits < len(batch.users):
                child = ctx.journal.split(batch.batch_id, fits, ctx.now())
                log.info(
                    "batch %s split to fit the day's budget; %s holds the rest",
                    batch.batch_id,
                    child,
                )
                batch = ctx.journal.load_batch(batch.batch_id)
            n = batch.job_count
            if ctx.ledger.reserve(org, day, n, cap, run_id=self.run_id, batch_id=batch.batch_id):
                self._gate.in_flight += 1
                if allow.probe:
                    log.info(
                        "batch %s probes the service's daily cap with %d jobs", batch.batch_id, n
                    )
                return batch, n
            # another run of the workspace took budget meanwhile: size the batch again

    async def _consent(self, batch: PlannedBatch, report: SubmitReport) -> None:
        """Send an opt-out batch through POST /consent (idempotent, so a failure is deferred
        and sent again, never reconciled); it creates no job and costs no daily budget."""
        ctx = self.ctx
        ctx.journal.record_intent(batch.batch_id, payload_digest(batch), ctx.now())
        identities = [i for u in batch.users for i in u.request.identities]
        try:
            await ctx.client.opt_out(identities, request_id=batch.batch_id)
        except (AuthError, PermissionDeniedError):
            ctx.journal.defer(batch.batch_id, "auth", ctx.now())
            raise
        except RequestRejected as exc:
            code = exc.code or f"HTTP-{exc.status}"
            ctx.journal.mark_failed(batch.batch_id, code, str(exc), ctx.now())
            report.failed += 1
            return
        except TransientApiError:
            ctx.journal.defer(batch.batch_id, "consent_retry", ctx.now())
            report.deferred += 1
            return
        ctx.journal.mark_consented(batch.batch_id, ctx.now())
        report.posted += 1

    def _cap(self, day: date) -> None:
        if not self.cap_reached:
            usage = self.ctx.ledger.usage(self.ctx.org_id, day)
            cap = self.ctx.settings.limits.daily_job_cap
            seen = "" if usage.ceiling is None else f", observed cap {usage.limit(cap)}"
            log.warning(
                "daily job cap reached for %s: %d jobs created (configured cap %d%s);"
                " submitting stops",
                day,
                usage.used,
                cap,
                seen,
            )
        self.cap_reached = True

    async def reconcile_unresolved(self) -> int:
        """Adopt the jobs that ambiguous batches created; returns the batches reconciled.

        One list sweep per regulation covers every unresolved batch of it, from the day of the
        oldest intent (at most the look-back limit) to the service's today.
        """
        ctx = self.ctx
        ctx.journal.recover_submitting(ctx.now(), org=ctx.org)
        unresolved = ctx.journal.unresolved_batches(org=ctx.org)
        if not unresolved:
            return 0
        by_regulation: dict[str, list[BatchInfo]] = defaultdict(list)
        for info in unresolved:
            by_regulation[info.regulation].append(info)
        done = 0
        for regulation, infos in by_regulation.items():
            batches = [ctx.journal.load_batch(i.batch_id) for i in infos]
            wanted: dict[tuple[str, str], str] = {}
            for batch in batches:
                for user in batch.users:
                    for action in user.request.actions:
                        wanted[(user.user_key, action.value)] = batch.batch_id
            found: dict[str, dict[tuple[str, str], str]] = defaultdict(dict)
            if ctx.options.reconcile:
                today = (await ctx.service_now()).date()
                oldest = min((i.intent_at or ctx.now()) for i in infos).date()
                floor = today - timedelta(days=constants.MAX_LOOKBACK_DAYS - 1)
                start = max(min(oldest - timedelta(days=1), today), floor)
                async for job in ctx.client.list_jobs(
                    regulation, from_date=start, to_date=today, page_size=ctx.page_size
                ):
                    key = (job.user_key or "", job.action)
                    owner = wanted.get(key)
                    if owner is not None and key not in found[owner]:
                        found[owner][key] = job.job_id
            for info in infos:
                adopted = found.get(info.batch_id, {})
                result = ctx.journal.reconcile(info.batch_id, adopted, ctx.now())
                # The POST's reservation (left by this process or a killed one) is settled
                # now: the jobs found are booked, the rest given back to its day's budget.
                ctx.ledger.commit(self.run_id, info.batch_id, len(adopted))
                done += 1
                log.info(
                    "batch %s reconciled: %d jobs adopted, %d users to resubmit",
                    info.batch_id,
                    result.adopted,
                    len(result.missing_user_keys),
                )
        return done


def payload_digest(batch: PlannedBatch) -> str:
    """sha256 of the batch's request body (without the org): what the intent promised."""
    body = batch.to_request().to_wire("")
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _users_within(batch: PlannedBatch, budget: int) -> int:
    """How many of the batch's first users fit in ``budget`` jobs."""
    used = 0
    for count, user in enumerate(batch.users):
        used += len(user.request.actions)
        if used > budget:
            return count
    return len(batch.users)


def _is_opt_out(batch: PlannedBatch) -> bool:
    return all(u.request.actions == (Action.OPT_OUT_OF_SALE,) for u in batch.users)


def _reason(exc: AmbiguousSubmission) -> str:
    return f"ambiguous_{exc.status}" if exc.status else "ambiguous_connection"
