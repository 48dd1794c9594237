"""Driving a planned run: submit, poll to the end, download, checkpoint; pause or finish.

:func:`drive` runs the submitter and the poller side by side over one client and writes the
reports at every checkpoint. It returns when every job is terminal (and every access result
downloaded), or pauses the run with a reason and the earliest useful resume time:

- ``daily_cap``: the cap is reached; what is in flight is polled to the end first;
- ``no_wait``: ``--no-wait`` and everything is submitted;
- ``max_runtime`` / ``interrupted``: ``--max-runtime`` or SIGINT/SIGTERM.

A stop is prompt: the submitter takes no new batch, a poll round no new page, GET or download,
and whatever is still in flight ``STOP_GRACE_S`` after the stop is cancelled (a cancelled POST
leaves its batch ``submitting``: an ambiguous submission, reconciled on resume). Journal writes
are synchronous, between awaits, so a cancellation never splits a transition. Progress comes
from its own task, at a fixed interval whatever phase the run is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..api.clock import Clock
from ..errors import AuthError
from ..journal.models import JobState, JournalCounts, RunState
from .budget import next_service_day, settle_reservations
from .canary import PAUSE_REASON
from .context import RunContext
from .orgs import AUTH_FAILED, OrgPollers, OrgSubmitters
from .poller import Poller
from .progress import Counts, ProgressReporter
from .submitter import Submitter

log = logging.getLogger("dsar.run")

# After a stop, how long a call in flight may take to finish before it is cancelled.
STOP_GRACE_S = 0.5


@dataclass(frozen=True, kw_only=True)
class DriveResult:
    """How driving ended: finished, or paused with a reason and a resume time."""

    finished: bool
    pause_reason: str | None = None
    resume_after: datetime | None = None
    # several orgs: the orgs whose credentials were refused (their unsubmitted rows failed
    # with AUTH_FAILED); the orgs waiting at their cap are the journal's word
    # (pipeline.reports.orgs.org_pauses)
    orgs_auth_failed: tuple[str, ...] = ()


def progress_counts(ctx: RunContext, counts: JournalCounts | None = None) -> Counts:
    """The journal's counts (read now unless given) as progress figures (latest attempts)."""
    jobs = (counts or ctx.journal.counts()).jobs
    total = sum(jobs.values())
    ends = ("complete", "error", "downloaded", "failed", "accepted", "cancelled")
    terminal = sum(jobs[s] for s in ends)
    submitted = total - jobs["pending"]
    downloaded = jobs["downloaded"]
    waiting = ctx.journal.downloads_waiting()
    return Counts(
        jobs_total=total,
        submitted=submitted,
        terminal=terminal,
        downloads_total=downloaded + waiting,
        downloaded=downloaded,
    )


def _open_work(ctx: RunContext, counts: JournalCounts | None = None) -> tuple[int, int, int]:
    """(jobs not yet submitted, jobs in flight, terminal jobs still needing details/download)."""
    c = counts or ctx.journal.counts()
    pending = c.jobs[JobState.PENDING]
    in_flight = c.jobs[JobState.SUBMITTED] + c.jobs[JobState.PROCESSING]
    follow_up = len(ctx.journal.jobs_needing_details(limit=1)) + len(
        ctx.journal.jobs_needing_download(limit=1)
    )
    return pending, in_flight, follow_up


async def drive(
    ctx: RunContext,
    run_dir: Path,
    *,
    checkpoint: Callable[[Mapping[str, Any]], None],
    reporter: ProgressReporter,
    orgs: Sequence[RunContext] = (),
) -> DriveResult:
    """Submit and poll until the run finishes or pauses; checkpoint reports on the way.

    With ``orgs`` (one context per org, :meth:`RunContext.for_org`) each org submits and
    polls through its own client and budget (:mod:`pipeline.run.orgs`); ``ctx`` is the run's.
    """
    _install_signals(ctx)  # before the run is active: an active run always pauses on a signal
    ctx.journal.activate(ctx.now())
    settle_reservations(ctx.journal, ctx.ledger)  # before any reservation of this process
    submitter: Submitter | OrgSubmitters = OrgSubmitters(orgs) if orgs else Submitter(ctx)
    poller: Poller | OrgPollers = OrgPollers(orgs, run_dir) if orgs else Poller(ctx, run_dir)
    clients = list(orgs) or [ctx]
    clock = ctx.clock
    last_checkpoint = clock.monotonic()
    interval = ctx.options.checkpoint_every_s
    timers: list[asyncio.Task[None]] = []
    if ctx.options.max_runtime_s is not None:
        timers.append(
            asyncio.create_task(
                _stop_after(ctx, ctx.options.max_runtime_s), name="dsar-max-runtime"
            )
        )

    submit_task = asyncio.create_task(submitter.submit_all(), name="dsar-submit")
    ticker = asyncio.create_task(reporter.tick(lambda: progress_counts(ctx)), name="dsar-progress")
    try:
        while True:
            submitting = not submit_task.done()
            if not submitting:
                submit_task.result()  # re-raise a fatal error (auth, journal)
                pending = _open_work(ctx)[0]
                blocked = submitter.cap_reached or ctx.stopping
                if isinstance(submitter, OrgSubmitters):  # only orgs that may go on
                    blocked = blocked or not submitter.can_submit
                if pending and not blocked and not submitter.canary.blocks():
                    # child batches (ambiguous, deferred) or retries appeared: submit them
                    submit_task = asyncio.create_task(submitter.submit_all(), name="dsar-submit")
                    submitting = True
            if not submitting and not ctx.stopping and not ctx.options.no_wait:
                # Sweep only while no POST is in flight, so the open jobs a sweep expects
                # are exactly the ones it can find.
                await _unless_stopped(ctx, poller.round())
            counts = ctx.journal.counts()  # one read for progress and the stop conditions
            reporter.update(progress_counts(ctx, counts))
            now = clock.monotonic()
            if now - last_checkpoint >= interval and not ctx.stopping:  # a stop ends in one
                for each in clients:
                    _sync_calls(each)
                checkpoint({"polling": poller.stats()})
                last_checkpoint = clock.monotonic()
                # a big run's reports take seconds: checkpoint less often than that costs
                interval = max(ctx.options.checkpoint_every_s, 10 * (last_checkpoint - now))
            verdict = submitter.canary.step(ctx.now())
            if verdict is not None:  # a pass sends the rest at once; else the run pauses
                if not verdict.held:
                    continue
                if counts.jobs[JobState.PENDING]:  # a canary of every user holds nothing back
                    ctx.request_stop(PAUSE_REASON)
            pending, in_flight, follow_up = _open_work(ctx, counts)
            if ctx.stopping:
                break
            if not submitting and ctx.options.no_wait:
                break
            if not submitting and in_flight == 0 and follow_up == 0:
                break
            waits: set[asyncio.Future[Any]] = {
                asyncio.ensure_future(ctx.stop.wait()),
                asyncio.ensure_future(clock.sleep(ctx.options.poll_interval_s or 60.0)),
            }
            if submitting:
                waits.add(submit_task)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for fut in waits - {submit_task}:
                fut.cancel()
    except BaseException:
        # A fatal error (auth, journal) or a cancellation: stop now rather than finishing the
        # POST in flight; its batch stays `submitting` and is reconciled on resume.
        submit_task.cancel()
        raise
    finally:
        ticker.cancel()
        if not submit_task.done():
            ctx.request_stop(ctx.stop_reason or "interrupted")
        await _finish_or_cancel(submit_task, clock)
        await _cancel_all({ticker, *timers})
        for each in clients:
            _sync_calls(each)
    try:
        reporter.update(progress_counts(ctx), final=True)
        held = PAUSE_REASON if submitter.canary.held else None
        if held is None and isinstance(submitter, OrgSubmitters) and submitter.auth_failed:
            held = "auth"  # a refused org's unresolved batches wait for good credentials
        result = _settle_run(ctx, submitter.cap_reached, held)
        checkpoint({"polling": poller.stats()})
    finally:
        _remove_signals()  # a second signal while the run settles only asks again
    if isinstance(submitter, OrgSubmitters):
        if submitter.all_failed:
            raise AuthError(
                "the service refused the credentials of every org "
                f"({', '.join(submitter.auth_failed)}): their rows failed with {AUTH_FAILED}"
            )
        result = dataclasses.replace(result, orgs_auth_failed=tuple(submitter.auth_failed))
    return result


async def _stop_after(ctx: RunContext, seconds: float) -> None:
    """Ask the run to stop (``max_runtime``) once ``seconds`` have passed on its clock."""
    await ctx.clock.sleep(seconds)
    ctx.request_stop("max_runtime")


async def _cancel_all(futures: set[asyncio.Task[None]]) -> None:
    """Cancel the helper tasks ``futures`` and wait for them to unwind."""
    for fut in futures:
        fut.cancel()
    for fut in futures:
        with contextlib.suppress(asyncio.CancelledError):
            await fut


async def _unless_stopped(ctx: RunContext, step: Coroutine[Any, Any, Any]) -> None:
    """Await ``step``, or, once the run is asked to stop, give it ``STOP_GRACE_S`` to wind
    down and cancel it."""
    task = asyncio.ensure_future(step)
    stopped = asyncio.ensure_future(ctx.stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            await _finish_or_cancel(task, ctx.clock)
    if not task.cancelled():
        task.result()  # re-raise the step's error


async def _finish_or_cancel(task: asyncio.Task[Any] | asyncio.Future[Any], clock: Clock) -> None:
    """Wait ``STOP_GRACE_S`` (on ``clock``) for ``task``, then cancel it and wait for it to
    unwind; its error (not its cancellation) propagates."""
    if not task.done():
        grace = asyncio.ensure_future(clock.sleep(STOP_GRACE_S))
        await asyncio.wait({task, grace}, return_when=asyncio.FIRST_COMPLETED)
        grace.cancel()
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


def _settle_run(ctx: RunContext, cap_reached: bool, held: str | None = None) -> DriveResult:
    """Finish the run if nothing is left, else pause it with its reason (``held``: the
    reason a held run pauses with when nothing else stopped it)."""
    pending, in_flight, follow_up = _open_work(ctx)
    at = ctx.now()
    if pending == 0 and in_flight == 0 and follow_up == 0:
        ctx.journal.finish(at)
        return DriveResult(finished=True)
    if cap_reached and not ctx.stopping:
        resume = next_service_day(at)
        ctx.journal.pause("daily_cap", at, resume_after=resume)
        return DriveResult(finished=False, pause_reason="daily_cap", resume_after=resume)
    reason = ctx.stop_reason or held or ("no_wait" if ctx.options.no_wait else "interrupted")
    ctx.journal.pause(reason, at)
    return DriveResult(finished=False, pause_reason=reason)


def _sync_calls(ctx: RunContext) -> None:
    """Add the client's API calls since the last sync to the journal's counters."""
    delta: dict[tuple[str, int | str], int] = {}
    for endpoint, by_status in ctx.client.call_counts.items():
        for status, count in by_status.items():
            before = ctx.calls_synced.get((endpoint, status), 0)
            if count > before:
                delta[(endpoint, status)] = count - before
                ctx.calls_synced[(endpoint, status)] = count
    if delta:
        ctx.journal.add_api_calls(delta)


def _install_signals(ctx: RunContext) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, _on_signal, ctx, sig)


def _on_signal(ctx: RunContext, sig: signal.Signals) -> None:
    if not ctx.stopping:
        log.info("%s: stopping; the calls in flight get %.1f s to finish", sig.name, STOP_GRACE_S)
    ctx.request_stop("interrupted")


def _remove_signals() -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(sig)


__all__ = ["DriveResult", "RunState", "drive", "progress_counts"]
