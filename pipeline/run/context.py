"""What the stages of a run share: journal, ledger, client, settings, clocks and the stop flag.

Times written to the journal are the service's: the local UTC clock corrected by the offset
of the last HTTP ``Date`` header the service sent. The daily cap is counted per UTC day of
that clock, so a skewed local clock cannot mis-budget it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..api.client import PrivacyServiceClient
from ..api.clock import SYSTEM_CLOCK, Clock
from ..journal.ledger import Ledger
from ..journal.store import Journal
from ..settings import Settings

DATE_PRECISION = timedelta(seconds=2)


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How a run is driven (the flags of ``dsar run`` / ``resume``)."""

    no_wait: bool = False
    max_runtime_s: float | None = None
    poll_interval_s: float | None = None  # None: the run's poll.interval_s
    plain_progress: bool = False  # log lines, never bars (--log-format json)
    checkpoint_every_s: float = 10.0
    progress_every_s: float = 30.0  # a plain progress line this often (not on a terminal)
    redact_keys: bool = False  # report.html shows keyed hashes instead of subject keys
    max_jobs: int | None = None  # --max-jobs: refuse a command that could create more jobs
    # for DSAR_KEY_SECRET; the environment holds secrets, so it never shows in ``repr``
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Testing switch: reconciliation off turns every ambiguous POST into a blind re-POST.
    # It exists to prove that the crash and fault tests can fail; never turn it off in use.
    reconcile: bool = True
    # dedupe across runs at planning (`dsar run --no-dedupe` turns it off for one run)
    dedupe: bool = True
    # Where time comes from: the client, limiter, drive loop, progress and journal times all
    # read it (tests pass a virtual clock that steps the emulator's clock with it).
    clock: Clock = field(default=SYSTEM_CLOCK, repr=False, compare=False)


@dataclass(kw_only=True)
class RunContext:
    """The shared state of one run while it is being driven."""

    journal: Journal
    ledger: Ledger
    client: PrivacyServiceClient
    settings: Settings
    options: RunOptions
    org_id: str
    regulations: tuple[str, ...]
    # the journal's org name this context drives (None: every batch, a single-org run)
    org: str | None = None
    # the run-wide context an org's context was made from (see :meth:`for_org`)
    parent: RunContext | None = field(default=None, repr=False)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: str | None = None
    calls_synced: dict[tuple[str, str], int] = field(default_factory=dict)
    _clock_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _offset: timedelta = timedelta(0)
    _seen_date: datetime | None = None

    @property
    def stopping(self) -> bool:
        """True once a signal, ``--max-runtime`` or a fatal error asked the run to stop."""
        return self.stop.is_set()

    def for_org(
        self, org: str, *, client: PrivacyServiceClient, settings: Settings, org_id: str
    ) -> RunContext:
        """One org's view of this run: the same journal, ledger, options and stop flag,
        with the org's own client (token, limiter, retries), its settings (rate, daily cap,
        products) and its IMS org id, which keys its budget in the ledger. The submitter,
        poller and engine given it read only that org's batches of the journal."""
        return dataclasses.replace(
            self,
            client=client,
            settings=settings,
            org_id=org_id,
            org=org,
            parent=self,
            calls_synced={},  # counts of the org's own client
            _clock_lock=asyncio.Lock(),
            _offset=timedelta(0),
            _seen_date=None,
        )

    def request_stop(self, reason: str) -> None:
        """Ask every stage (of every org) to finish its current step and stop."""
        if self.parent is not None:
            self.parent.request_stop(reason)
            return
        if not self.stop.is_set():
            self.stop_reason = reason
            self.stop.set()

    @property
    def clock(self) -> Clock:
        """The run's clock (:attr:`RunOptions.clock`)."""
        return self.options.clock

    @property
    def page_size(self) -> int:
        """The list page size to ask for."""
        return self.settings.poll.page_size

    def _sync_offset(self) -> None:
        seen = self.client.last_server_date
        if seen is not None and seen != self._seen_date:
            self._seen_date = seen
            offset = seen - self.clock.utc_now()
            # a Date header has whole seconds: only a real skew moves the clock
            self._offset = offset if abs(offset) > DATE_PRECISION else timedelta(0)

    def now(self) -> datetime:
        """The service's current time as best known (local UTC clock + last Date offset)."""
        self._sync_offset()
        return self.clock.utc_now() + self._offset

    async def service_now(self) -> datetime:
        """Like :meth:`now`, after one cheap call if the service's clock is not known yet
        (one call however many workers ask at once)."""
        async with self._clock_lock:
            if self.client.last_server_date is None:
                pages = self.client.list_jobs(self.regulations[0], page_size=1)
                async for _ in pages:
                    break
                await pages.aclose()  # type: ignore[attr-defined]
        return self.now()
