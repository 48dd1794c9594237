"""Stage 4b: follow submitted jobs to the end, read their details, download access results.

Polling is by list sweeps, never one GET per open job per round. For each regulation with
open jobs, one sweep lists the jobs still in progress (``status=processing``) from the day
of the oldest open job to the service's today; an open job of this run that the sweep no
longer shows has left progress, and gets its one ``GET /jobs/{id}`` to read its terminal
status, its products and its download URL. A sweep thus costs about ceil(open jobs / page
size) list calls per regulation window, and every job at most one GET once it is done.

If the service's ``processing`` filter turns out not to include jobs still ``submitted``
(a GET answers with a non-terminal status), sweeps of that regulation also list
``status=submitted`` from then on, so no job is ever fetched twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from . import constants
from .errors import NotFoundError, TransientApiError
from .journal_models import JobObservation, OpenWindow, ProductOutcome
from .models import Action, JobStatus
from .responses import JobDetails
from .runstate import RunContext

log = logging.getLogger("dsar.poll")

DETAIL_CONCURRENCY = 8
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
        self._list_submitted: set[str] = set()

    async def round(self) -> PollRound:
        """One round: sweep every regulation, then details, then downloads."""
        out = PollRound()
        for window in self.ctx.journal.open_windows():
            if self.ctx.stopping:
                break
            await self._sweep(window, out)
        await self.fetch_details(out)
        await self.download_results(out)
        return out

    async def _sweep(self, window: OpenWindow, out: PollRound) -> None:
        ctx = self.ctx
        open_ids = ctx.journal.open_job_ids(window.regulation)
        today = (await ctx.service_now()).date()
        start = _window_start(window.oldest_submitted_at.date(), today)
        statuses = [JobStatus.PROCESSING]
        if window.regulation in self._list_submitted:
            statuses.append(JobStatus.SUBMITTED)
        in_progress: dict[str, str] = {}
        for status in statuses:
            before = ctx.client.stats.total("GET jobs")
            async for job in ctx.client.list_jobs(
                window.regulation,
                status=status,
                from_date=start,
                to_date=today,
                page_size=ctx.page_size,
            ):
                if job.job_id in open_ids:
                    in_progress[job.job_id] = job.status.value
            out.list_calls += ctx.client.stats.total("GET jobs") - before
        seen = [
            JobObservation(job_id=j, status=s)
            for j, s in in_progress.items()
            if s == JobStatus.PROCESSING
        ]
        ctx.journal.observe(seen, ctx.now())
        left = sorted(open_ids - in_progress.keys())
        if left:
            await self._settle(window.regulation, left, out)

    async def _settle(self, regulation: str, job_ids: list[str], out: PollRound) -> None:
        """GET the jobs a sweep no longer shows in progress: terminal ones are recorded."""
        ctx = self.ctx

        async def one(job_id: str) -> None:
            try:
                details = await ctx.client.get_job(job_id)
            except NotFoundError:
                log.warning("job %s: not found on the service", job_id)
                return
            except TransientApiError as exc:
                log.warning("job %s: details not read this round (%s)", job_id, exc)
                return
            if not details.status.terminal:
                # the filter did not cover this status: list it too from now on
                self._list_submitted.add(regulation)
                ctx.journal.observe(
                    [JobObservation(job_id=job_id, status=details.status.value)], ctx.now()
                )
                return
            ctx.journal.observe(
                [JobObservation(job_id=job_id, status=details.status.value)], ctx.now()
            )
            self._record(details)
            out.turned_terminal += 1
            out.details += 1

        await _bounded(one, job_ids)

    async def fetch_details(self, out: PollRound) -> None:
        """GET every terminal job whose details are not recorded yet (after a crash)."""
        ctx = self.ctx
        pending = ctx.journal.jobs_needing_details()

        async def one(job_id: str) -> None:
            try:
                details = await ctx.client.get_job(job_id)
            except (NotFoundError, TransientApiError) as exc:
                log.warning("job %s: details not read (%s)", job_id, exc)
                return
            self._record(details)
            out.details += 1

        await _bounded(one, pending)

    def _record(self, details: JobDetails) -> None:
        products = [
            ProductOutcome(
                product=p.product,
                status=p.status,
                response_code=p.response_code,
                message=p.message,
                processed_date=p.processed_at,
                retry_count=p.retry_count,
            )
            for p in details.products
        ]
        failing = next((p for p in details.products if p.status == JobStatus.ERROR), None)
        has_result = (
            details.status is JobStatus.COMPLETE
            and details.action == Action.ACCESS
            and details.download_url is not None
        )
        self.ctx.journal.record_details(
            details.job_id,
            products,
            self.ctx.now(),
            has_result=has_result,
            error_code=failing.response_code if failing else None,
            error_message=failing.message if failing else None,
        )

    async def download_results(self, out: PollRound) -> None:
        """Download every offered access result into RUN_DIR/results/ (0600 in 0700)."""
        ctx = self.ctx
        pending = ctx.journal.jobs_needing_download()
        if not pending:
            return
        self.results_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

        async def one(job_id: str) -> None:
            dest = self.results_dir / f"{job_id}.zip"
            try:
                digest = await ctx.client.download_content(job_id, dest)
            except (NotFoundError, TransientApiError) as exc:
                log.warning("job %s: result not downloaded (%s)", job_id, exc)
                return
            ctx.journal.mark_downloaded(job_id, f"{RESULTS_DIR}/{dest.name}", digest, ctx.now())
            out.downloads += 1

        await _bounded(one, pending)


def _window_start(oldest: date, today: date) -> date:
    floor = today - timedelta(days=constants.MAX_LOOKBACK_DAYS - 1)
    return max(min(oldest, today), floor)


async def _bounded(fn: Callable[[str], Awaitable[None]], items: Iterable[str]) -> None:
    """``fn`` over ``items`` with at most DETAIL_CONCURRENCY at once (a few tasks, any count)."""
    shared = iter(items)

    async def worker() -> None:
        for item in shared:
            await fn(item)

    await asyncio.gather(*(worker() for _ in range(DETAIL_CONCURRENCY)))
