"""Stage 4b: follow submitted jobs to the end, read their details, download access results.

Polling is by list sweeps, never one GET per open job per round. For each regulation with
open jobs, one sweep lists the jobs still in progress (``status=processing``) from the day
of the oldest open job to the service's today; an open job of this run that the sweep no
longer shows has left progress, and gets its one ``GET /jobs/{id}`` to read its terminal
status, its products and its download URL. A sweep thus costs about ceil(open jobs / page
size) list calls per regulation window, and every job at most one GET once it is done.

A status filter returns only jobs of that status (the seed), so ``processing`` misses a job
the products have not acknowledged yet (its status is still ``submitted``). A date window
holding jobs of this run that no sweep has yet seen past ``submitted`` is therefore listed
without a status filter (the seed's default: every status) instead; terminal jobs on that list
are left out of the in-progress set and get their one GET like any other. Once a sweep has
seen a job ``processing`` its status never goes back, so later sweeps filter again.

A stop request is honoured between list pages, GETs and downloads: a sweep cut short records
nothing (its jobs are swept again on resume), and what the finished GETs and downloads learned
is written to the journal before the round returns, or when it is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from .. import constants
from ..api.responses import JobDetails
from ..api.wire import date_windows
from ..errors import NotFoundError, PermissionDeniedError, TransientApiError
from ..journal.models import JobDetailRecord, JobObservation, OpenWindow
from ..models import Action, JobStatus
from ..reports.files import result_name
from .context import RunContext

log = logging.getLogger("dsar.poll")

DETAIL_CONCURRENCY = 8
MAX_SWEEPS_KEPT = 200
FLUSH_EVERY = 500  # journal writes per transaction while polling
RESULTS_DIR = "results"


@dataclass
class PollRound:
    """What one polling round did (counts only)."""

    list_calls: int = 0
    turned_terminal: int = 0
    details: int = 0
    downloads: int = 0


class Poller:
    """List sweeps, terminal-job details and downloads for one run."""

    def __init__(self, ctx: RunContext, run_dir: Path) -> None:
        self.ctx = ctx
        self.results_dir = run_dir / RESULTS_DIR
        # as many detail GETs and downloads at once as the limiter lets requests be in flight
        self.concurrency = max(DETAIL_CONCURRENCY, ctx.settings.limits.max_in_flight)
        self.rounds = 0
        self.sweeps: list[dict[str, int | str]] = []  # the latest MAX_SWEEPS_KEPT sweeps
        self.sweeps_total = 0
        self.sweeps_over_bound = 0

    def _stopping(self) -> bool:
        return self.ctx.stopping

    def stats(self) -> dict[str, object]:
        """Polling figures for summary.json: rounds, sweeps, and sweeps over the call bound."""
        return {
            "rounds": self.rounds,
            "sweeps_total": self.sweeps_total,
            "sweeps_over_bound": self.sweeps_over_bound,
            "page_size": self.ctx.page_size,
            "sweeps": self.sweeps,
        }

    async def round(self) -> PollRound:
        """One round: sweep every regulation, then details, then downloads."""
        out = PollRound()
        self.rounds += 1
        for window in self.ctx.journal.open_windows(org=self.ctx.org):
            if self.ctx.stopping:
                return out
            await self._sweep(window, out)
        if not self.ctx.stopping:
            await self.fetch_details(out)
        if not self.ctx.stopping:
            await self.download_results(out)
        return out

    async def _sweep(self, window: OpenWindow, out: PollRound) -> None:
        ctx = self.ctx
        open_jobs = ctx.journal.open_jobs(window.regulation, org=ctx.org)
        today = (await ctx.service_now()).date()
        start = _window_start(window.oldest_submitted_at.date(), today)
        unacknowledged = ctx.journal.unacknowledged_times(window.regulation, org=ctx.org)
        in_progress: dict[str, str] = {}
        before = out.list_calls
        try:
            for first, last in date_windows(start, today, constants.MAX_LIST_WINDOW_DAYS):
                ours = sum(1 for at in open_jobs.values() if first <= _day(at, start) <= last)
                if not ours:
                    continue  # none of this run's open jobs were created in this window
                # a job maybe still "submitted" is on no processing list: read every status
                waiting = any(first <= _day(at, start) <= last for at in unacknowledged)
                status = None if waiting else JobStatus.PROCESSING
                await self._sweep_window(
                    window.regulation, status, first, last, ours, open_jobs, in_progress, out
                )
        except _Stopped:
            return  # a partial sweep proves nothing about the jobs it did not reach
        self._note_sweep(window.regulation, len(open_jobs), out.list_calls - before)
        seen = [
            JobObservation(job_id=j, status=s)
            for j, s in in_progress.items()
            if s == JobStatus.PROCESSING
        ]
        ctx.journal.observe(seen, ctx.now())
        left = sorted(open_jobs.keys() - in_progress.keys())
        if left:
            await self._settle(left, out)

    async def _sweep_window(
        self,
        regulation: str,
        status: JobStatus | None,
        first: date,
        last: date,
        expected: int,
        open_jobs: dict[str, datetime],
        found: dict[str, str],
        out: PollRound,
    ) -> None:
        """Page one date window backwards, counting the list calls in ``out``; raises
        :class:`_Stopped` before a page once the run is asked to stop.

        ``status`` None lists every status; only this run's jobs still in progress are noted.

        Jobs leave the in-progress list while it is being paged, which shifts later jobs
        towards page 0. Paged forwards, a job that shifts across a page boundary already read
        would be missed (and then fetched needlessly); paged from the last page to the first,
        a shifting job moves into a page still to be read. The last page is guessed from this
        run's open jobs in the window, and probed upwards while pages come back full.
        """
        size = self.ctx.page_size
        last_page = max(0, -(-expected // size) - 1)

        async def read(page: int) -> tuple[int, int | None]:
            if self.ctx.stopping:
                raise _Stopped
            result = await self.ctx.client.list_page(
                regulation,
                status=status,
                from_date=first,
                to_date=last,
                page=page,
                page_size=size,
            )
            out.list_calls += 1
            for job in result.jobs:
                if job.job_id in open_jobs and not job.status.terminal:
                    found[job.job_id] = job.status.value
            return len(result.jobs), result.total

        page = last_page
        count, total = await read(page)
        # more jobs than guessed (other runs of the org): probe upwards until a short page
        while count == size and not (total is not None and total <= (page + 1) * size):
            page += 1
            count, total = await read(page)
        for back in range(last_page - 1, -1, -1):
            await read(back)

    def _note_sweep(self, regulation: str, open_jobs: int, calls: int) -> None:
        bound = max(1, -(-open_jobs // self.ctx.page_size))
        self.sweeps_total += 1
        self.sweeps_over_bound += calls > bound
        self.sweeps.append({"regulation": regulation, "open_jobs": open_jobs, "list_calls": calls})
        del self.sweeps[:-MAX_SWEEPS_KEPT]

    async def _settle(self, job_ids: list[str], out: PollRound) -> None:
        """GET the jobs a sweep no longer shows in progress: terminal ones are recorded."""
        await self._read_details(job_ids, out, observe=True)

    async def fetch_details(self, out: PollRound) -> None:
        """GET every terminal job whose details are not recorded yet (after a crash)."""
        await self._read_details(
            self.ctx.journal.jobs_needing_details(org=self.ctx.org), out, observe=False
        )

    async def _read_details(self, job_ids: list[str], out: PollRound, *, observe: bool) -> None:
        """``GET /jobs/{id}`` of each of ``job_ids`` and record its details. With ``observe``
        (jobs a sweep no longer shows in progress) the status read is recorded too and only a
        terminal job's details are; without it the jobs are terminal already. A job the
        service no longer knows (past its retention) ended, but its outcome is lost: it is
        recorded so (and, observed, as ``error``). A transient failure leaves it for the next
        round."""
        ctx = self.ctx
        batch = _Pending(self)

        async def one(job_id: str) -> None:
            try:
                details = await ctx.client.get_job(job_id)
            except NotFoundError:
                log.warning("job %s: not found on the service; its outcome is lost", job_id)
                if observe:
                    batch.seen.append(JobObservation(job_id=job_id, status=JobStatus.ERROR.value))
                    out.turned_terminal += 1
                batch.details.append(_lost(job_id))
                batch.flush_if_full()
                return
            except TransientApiError as exc:
                log.warning("job %s: details not read this round (%s)", job_id, exc)
                return
            if observe:
                batch.seen.append(JobObservation(job_id=job_id, status=details.status.value))
            if not observe or details.status.terminal:
                batch.details.append(detail_record(details))
                out.turned_terminal += observe
                out.details += 1
            batch.flush_if_full()

        try:
            await _bounded(one, job_ids, concurrency=self.concurrency, stop=self._stopping)
        finally:
            batch.flush()

    async def download_results(self, out: PollRound) -> None:
        """Download every offered access result into RUN_DIR/results/ (0600 in 0700)."""
        ctx = self.ctx
        pending = ctx.journal.jobs_needing_download(org=ctx.org)
        if not pending:
            return
        self.results_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        batch = _Pending(self)

        encrypt_to = ctx.settings.results.encrypt_to

        async def one(job_id: str) -> None:
            dest = self.results_dir / result_name(job_id, encrypted=bool(encrypt_to))
            try:
                digest = await ctx.client.download_result(job_id, dest, encrypt_to=encrypt_to)
            except (NotFoundError, PermissionDeniedError) as exc:
                # gone after the service's retention, or no content-delivery permission
                log.error("job %s: result cannot be downloaded (%s)", job_id, exc)
                code = "RESULT_NOT_FOUND" if isinstance(exc, NotFoundError) else "NO_PERMISSION"
                ctx.journal.mark_result_unavailable(job_id, code, str(exc), ctx.now())
                return
            except TransientApiError as exc:
                log.warning("job %s: result not downloaded this round (%s)", job_id, exc)
                return
            plain = digest.plain_sha256 if encrypt_to else None
            batch.downloaded.append((job_id, f"{RESULTS_DIR}/{dest.name}", digest.sha256, plain))
            out.downloads += 1
            batch.flush_if_full()

        try:
            await _bounded(one, pending, concurrency=self.concurrency, stop=self._stopping)
        finally:
            batch.flush()


class _Stopped(Exception):
    """The run was asked to stop in the middle of a sweep."""


class _Pending:
    """What a poll step learned, written to the journal in a few transactions, not one a job."""

    def __init__(self, poller: Poller) -> None:
        self.ctx = poller.ctx
        self.seen: list[JobObservation] = []
        self.details: list[JobDetailRecord] = []
        self.downloaded: list[tuple[str, str, str, str | None]] = []

    def flush_if_full(self) -> None:
        if len(self.seen) + len(self.details) + len(self.downloaded) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        journal, now = self.ctx.journal, self.ctx.now()
        if self.seen:
            journal.observe(self.seen, now)
        if self.details:
            journal.record_details_many(self.details, now)
        if self.downloaded:
            journal.mark_downloaded_many(self.downloaded, now)
        self.seen, self.details, self.downloaded = [], [], []


def _lost(job_id: str) -> JobDetailRecord:
    return JobDetailRecord(
        job_id=job_id,
        products=(),
        has_result=False,
        error_code="JOB_NOT_FOUND",
        error_message="the service no longer knows this job (past its retention)",
    )


def detail_record(details: JobDetails) -> JobDetailRecord:
    """The journal record of a terminal job's details."""
    products = details.products
    failing = next((p for p in details.products if p.status == JobStatus.ERROR), None)
    has_result = (
        details.status is JobStatus.COMPLETE
        and details.action == Action.ACCESS
        and details.download_url is not None
    )
    return JobDetailRecord(
        job_id=details.job_id,
        products=products,
        has_result=has_result,
        error_code=failing.response_code if failing else None,
        error_message=failing.message if failing else None,
    )


def _day(at: datetime, floor: date) -> date:
    """The UTC day of ``at``, no earlier than ``floor`` (older jobs are listed from it)."""
    return max(at.date(), floor)


def _window_start(oldest: date, today: date) -> date:
    floor = today - timedelta(days=constants.MAX_LOOKBACK_DAYS - 1)
    return max(min(oldest, today), floor)


async def _bounded(
    fn: Callable[[str], Awaitable[None]],
    items: Iterable[str],
    *,
    concurrency: int,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """``fn`` over ``items`` with at most ``concurrency`` at once (a few tasks, any count);
    once ``stop()`` is true, no worker takes another item.

    The first error cancels the other workers before it propagates.
    """
    shared = iter(items)

    async def worker() -> None:
        for item in shared:
            if stop():
                return
            await fn(item)

    tasks = [asyncio.ensure_future(worker()) for _ in range(max(1, concurrency))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
