"""Several orgs in one run: one submitter per org, side by side on one event loop.

Each org's :class:`~pipeline.run.context.RunContext` (see
:meth:`~pipeline.run.context.RunContext.for_org`) has its own client (token, limiter,
retries) and its own daily budget in the ledger, keyed by its IMS org id. So:

- an org at its daily cap stops only its own submissions; the others go on, and the org
  waits for its next service day (:attr:`OrgSubmitters.paused`, with its resume time);
- an org whose credentials are refused has its unsubmitted rows failed with
  :data:`AUTH_FAILED` (reported like any other failed job) and stops; the others go on.
  Only when every org failed is the run an authentication failure (exit 5).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from ..errors import AuthError, PermissionDeniedError
from .budget import next_service_day
from .canary import CanaryGate
from .context import RunContext
from .poller import Poller, PollRound
from .submitter import SubmitReport, Submitter

log = logging.getLogger("dsar.submit")

# the error code of the jobs of an org whose credentials the service refused
AUTH_FAILED = "AUTH_FAILED"


class OrgSubmitters:
    """One :class:`Submitter` per org context; :meth:`submit_all` drives them together.

    The canary is the run's: one gate (made from the first org's run-wide context) is shared
    by every org's submitter, so its verdict lets every org's rest go, or holds them all.
    """

    def __init__(self, contexts: Sequence[RunContext]) -> None:
        if not contexts or any(ctx.org is None or ctx.parent is None for ctx in contexts):
            raise ValueError("OrgSubmitters needs one context per org (RunContext.for_org)")
        self.submitters = {str(ctx.org): Submitter(ctx) for ctx in contexts}
        self.canary = CanaryGate(contexts[0].parent or contexts[0])
        for submitter in self.submitters.values():
            submitter.canary = self.canary
        self.auth_failed: dict[str, str] = {}  # org name -> the error class's message kind

    async def submit_all(self) -> dict[str, SubmitReport]:
        """Submit every org's planned batches at once, each through its own client; returns
        each org's report (an org whose auth failed reports its failed batches)."""
        names = [n for n in self.submitters if n not in self.auth_failed]
        reports = await asyncio.gather(*(self._submit_org(n) for n in names))
        return dict(zip(names, reports, strict=True))

    async def _submit_org(self, name: str) -> SubmitReport:
        submitter = self.submitters[name]
        try:
            return await submitter.submit_all()
        except (AuthError, PermissionDeniedError) as exc:
            kind = "authentication" if isinstance(exc, AuthError) else "permission"
            self.auth_failed[name] = kind
            report = SubmitReport(failed=self._fail_org(submitter.ctx, kind))
            report.reasons[AUTH_FAILED] = report.failed
            return report

    @staticmethod
    def _fail_org(ctx: RunContext, kind: str) -> int:
        """Fail every planned batch of the org (its users' jobs get :data:`AUTH_FAILED`)."""
        message = f"org {ctx.org}: the service refused its credentials ({kind})"
        batches = ctx.journal.batches_to_submit(org=ctx.org)
        for batch_id in batches:
            ctx.journal.mark_failed(batch_id, AUTH_FAILED, message, ctx.now())
        log.error(
            "%s; its %d unsubmitted batches failed, the other orgs go on", message, len(batches)
        )
        return len(batches)

    @property
    def cap_reached(self) -> bool:
        """True when some org stopped at its daily cap and no other org has a batch left to
        submit or reconcile: the run waits for the capped orgs' next day."""
        return bool(self.paused) and not self.can_submit

    @property
    def can_submit(self) -> bool:
        """True when some org, neither at its cap nor refused, has a batch to submit or to
        reconcile (a refused org's ambiguous batches wait for a resume with good credentials)."""
        for name, submitter in self.submitters.items():
            if name in self.auth_failed or submitter.cap_reached:
                continue
            journal = submitter.ctx.journal
            if journal.batches_to_submit(1, org=name) or journal.unresolved_batches(org=name):
                return True
        return False

    @property
    def paused(self) -> dict[str, datetime]:
        """Each org at its daily cap -> when its next service day begins (resume then)."""
        return {
            name: next_service_day(s.ctx.now())
            for name, s in self.submitters.items()
            if s.cap_reached and name not in self.auth_failed
        }

    @property
    def all_failed(self) -> bool:
        """True when every org's credentials were refused (the run is an auth failure)."""
        return set(self.auth_failed) == set(self.submitters)


def pause_message(paused: Mapping[str, datetime]) -> str:
    """One line naming each paused org and its resume time (for exit 4)."""
    parts = [
        f"org {name} at its daily cap until {at:%Y-%m-%d %H:%M} UTC" for name, at in paused.items()
    ]
    return "paused: " + "; ".join(parts)


class OrgPollers:
    """One :class:`Poller` per org context: each round sweeps, reads details and downloads
    every org's jobs through the org's own client, the orgs side by side."""

    def __init__(self, contexts: Sequence[RunContext], run_dir: Path) -> None:
        self.pollers = {str(ctx.org): Poller(ctx, run_dir) for ctx in contexts}

    async def round(self) -> list[PollRound]:
        """One round of every org's poller; their outcomes in org order."""
        return list(await asyncio.gather(*(p.round() for p in self.pollers.values())))

    def stats(self) -> dict[str, object]:
        """Polling figures for summary.json: the orgs' totals, and each org's figures."""
        per_org = {name: p.stats() for name, p in self.pollers.items()}
        return {
            "rounds": max(p.rounds for p in self.pollers.values()),
            "sweeps_total": sum(p.sweeps_total for p in self.pollers.values()),
            "sweeps_over_bound": sum(p.sweeps_over_bound for p in self.pollers.values()),
            "orgs": per_org,
        }
