"""The emulated Privacy Service: pure state and rules, callable without HTTP.

:class:`PrivacyBackend` owns the clock, the job store, the token store, the limits, the fault
injector and the stats. Its methods take already-authenticated clients and plain payloads and
return JSON-ready dicts (or raise :mod:`.errors` wire errors), like a moto ``models.py``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from . import render
from .auth import TokenStore
from .catalog import PRODUCTS, STANDARD_NAMESPACES
from .clock import EmulatorClock, Monotonic, utc_day
from .config import ClientConfig, EmulatorConfig
from .errors import DailyLimitExceeded, DocumentRateLimited, NotFound
from .faults import FaultInjector
from .limits import SlidingWindow
from .simulation import Simulator
from .stats import Stats
from .store import Job, JobStore, Request, User
from .validation import CreateSpec, parse_consent, parse_create, parse_list_query

DAY_S = 86_400


class PersistenceHooks(Protocol):
    """What a backend tells its persistence layer (see :mod:`.persistence`)."""

    def jobs_added(self, jobs: list[Job]) -> None: ...
    def token_issued(self, token: str, client_id: str, expires_at: float) -> None: ...
    def clock_moved(self, offset_s: float) -> None: ...
    def cleared(self) -> None: ...


class PrivacyBackend:
    """All emulator state; job status advances lazily from :attr:`clock` whenever it is read."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        clock: EmulatorClock | None = None,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.monotonic = monotonic
        self.clock = clock or self._new_clock(self.config)
        self.tokens = TokenStore(self.config.clients, self.config.token_lifetime_s)
        self.persistence: PersistenceHooks | None = None
        self._fresh_state()

    # -- lifecycle of the emulator itself -------------------------------------------------

    @staticmethod
    def _new_clock(config: EmulatorConfig) -> EmulatorClock:
        return EmulatorClock(frozen=config.clock_frozen, start=config.clock_start_epoch())

    def _fresh_state(self) -> None:
        cfg = self.config
        self.store = JobStore()
        self.stats = Stats()
        self.simulator = Simulator(cfg.simulation, cfg.seed)
        self.faults = FaultInjector(cfg.faults, cfg.seed)
        self.request_limiter = SlidingWindow(cfg.limits.requests_per_second, 1.0, self.monotonic)
        self.doc_limiter = SlidingWindow(cfg.limits.doc_rate_limit_per_minute, 60.0, self.monotonic)

    def reset(self) -> None:
        """Forget every job, counter and limit window; restart the clock. Tokens stay valid."""
        self.clock = self._new_clock(self.config)
        self._fresh_state()
        if self.persistence is not None:
            self.persistence.cleared()

    def reconfigure(self, changes: Mapping[str, Any]) -> EmulatorConfig:
        """Apply a partial config update; parts whose settings changed are rebuilt."""
        old, new = self.config, self.config.updated(changes)
        self.config = new
        if new.seed != old.seed or new.simulation != old.simulation:
            self.simulator = Simulator(new.simulation, new.seed)
        if new.seed != old.seed or new.faults != old.faults:
            self.faults = FaultInjector(new.faults, new.seed)
        if new.limits != old.limits:
            self.request_limiter = SlidingWindow(
                new.limits.requests_per_second, 1.0, self.monotonic
            )
            self.doc_limiter = SlidingWindow(
                new.limits.doc_rate_limit_per_minute, 60.0, self.monotonic
            )
        if (new.clock_frozen, new.clock_start) != (old.clock_frozen, old.clock_start):
            start = new.clock_start_epoch() if new.clock_start != old.clock_start else None
            self.clock = EmulatorClock(frozen=new.clock_frozen, start=start or self.clock.now())
        if new.clients != old.clients or new.token_lifetime_s != old.token_lifetime_s:
            tokens = TokenStore(new.clients, new.token_lifetime_s)
            for token, client_id, expires_at in self.tokens.items():
                if client_id in tokens.clients:
                    tokens.restore(token, client_id, expires_at)
            self.tokens = tokens
        return new

    def advance(self, seconds: float) -> float:
        """Move the emulator clock forward; returns the new time."""
        now = self.clock.advance(seconds)
        if self.persistence is not None:
            self.persistence.clock_moved(self.clock.offset_s)
        return now

    # -- the API ----------------------------------------------------------------------------

    def issue_token(self, form: Mapping[str, str]) -> dict[str, Any]:
        """POST /ims/token/v3."""
        now = self.clock.now()
        body = self.tokens.issue(form, now)
        if self.persistence is not None:
            self.persistence.token_issued(
                body["access_token"], form["client_id"], now + body["expires_in"]
            )
        return body

    def authenticate(self, headers: Mapping[str, str]) -> ClientConfig:
        """The gateway checks; returns the calling client."""
        return self.tokens.authenticate(headers, self.clock.now())

    def create_jobs(self, client: ClientConfig, payload: Any) -> dict[str, Any]:
        """POST /jobs: validate, apply the daily cap and document rate, create one job per
        (user, action)."""
        now = self.clock.now()
        spec = parse_create(payload, client.org_id, now, self.config)
        count = spec.job_count
        cap = self.config.limits.daily_job_cap
        used = self.store.jobs_on_day(client.org_id, utc_day(now))
        if used + count > cap:
            self.stats.daily_cap_refusals += 1
            raise DailyLimitExceeded(cap, used, count)
        retry_after = self.doc_limiter.try_acquire(client.org_id, count)
        if retry_after is not None:
            self.stats.doc_rate_limited += 1
            raise DocumentRateLimited(retry_after)
        jobs = self.add_jobs(client, spec, now)
        self.stats.record_created([(j.user.key, j.action) for j in jobs])
        return {
            "jobs": [
                {"jobId": j.job_id, "customer": {"user": {"key": j.user.key, "action": [j.action]}}}
                for j in jobs
            ],
            "requestStatus": 1,
            "totalRecords": len(jobs),
            "requestId": jobs[0].request.request_id,
        }

    def add_jobs(self, client: ClientConfig, spec: CreateSpec, now: float) -> list[Job]:
        """Create and store the jobs of a validated request (no limits applied)."""
        sim = self.simulator
        request = Request(
            spec.request_id or sim.request_id(now),
            client.org_id,
            spec.regulation,
            client.technical_account,
            spec.include,
            now,
        )
        provisioned = _provisioned(client, spec.include)
        store = self.store
        jobs: list[Job] = []
        for user_spec in spec.users:
            user = User(user_spec.key, user_spec.ids)
            invalid_ns = any(
                t == "standard" and ns.lower() not in STANDARD_NAMESPACES
                for ns, _v, t, _n, _d in user_spec.ids
            )
            for action in user_spec.actions:
                doomed = store.next_seq < self.config.simulation.error_first_jobs
                packed, summary = sim.draw(provisioned, invalid_ns, now, force_error=doomed)
                job_id = sim.job_id()
                while store.get(job_id) is not None:  # a seed reused after a config change
                    job_id = sim.job_id()
                job = Job(store.next_seq, job_id, request, user, action, packed, summary)
                store.add(job)
                jobs.append(job)
        if self.persistence is not None:
            self.persistence.jobs_added(jobs)
        return jobs

    def list_jobs(self, client: ClientConfig, query: Mapping[str, str]) -> dict[str, Any]:
        """GET /jobs: one page of the org's jobs for a regulation, oldest first.

        A job past its retention (``job_retention_days`` after completion) is left out, as
        GET /jobs/{jobId} answers 404 for it: job data is kept 30 days after completion.
        """
        now = self.clock.now()
        q = parse_list_query(query, now, self.config)
        store = self.store
        jobs, lo, hi = store.window(client.org_id, q.regulation, q.start, q.end)
        # Only a job created before the retention horizon can be done before it: just that
        # prefix of the window is filtered, the rest is sliced as is.
        horizon = now - self.config.job_retention_days * DAY_S
        cut = min(hi, max(lo, store.position(client.org_id, q.regulation, horizon)))
        first = q.page * q.size
        if q.status is None and cut == lo:
            total = hi - lo
            page = jobs[lo + first : min(hi, lo + first + q.size)] if first < total else []
        else:
            kept = [j for j in jobs[lo:cut] if j.done_at > horizon]
            kept.extend(jobs[cut:hi])
            matching = kept if q.status is None else _with_status(kept, q.status, now)
            total = len(matching)
            page = matching[first : first + q.size]
        return {"jobDetails": [render.basic(j, now) for j in page], "totalRecords": total}

    def find_job(self, client: ClientConfig, job_id: str, *, retention_days: int) -> Job:
        """The org's job ``job_id``, unless it is unknown, another org's, or past retention."""
        job = self.store.get(job_id)
        if job is None or job.request.org_id != client.org_id:
            raise NotFound("job not found")
        now = self.clock.now()
        if job.status_at(now) in ("complete", "error") and now >= (
            job.done_at + retention_days * DAY_S
        ):
            raise NotFound("job not found")
        return job

    def get_job(self, client: ClientConfig, job_id: str, content_url: str) -> dict[str, Any]:
        """GET /jobs/{jobId}: the full details; the results link while the content is kept."""
        job = self.find_job(client, job_id, retention_days=self.config.job_retention_days)
        now = self.clock.now()
        return render.details(job, now, content_url, self.config.download_url_keys)

    def job_content(self, client: ClientConfig, job_id: str) -> bytes:
        """GET /jobs/{jobId}/content: the results ZIP of a complete access job."""
        job = self.find_job(client, job_id, retention_days=self.config.content_retention_days)
        if job.action != "access" or job.status_at(self.clock.now()) != "complete":
            raise NotFound("no content for this job")
        return render.content_zip(job)

    def consent(self, client: ClientConfig, payload: Any) -> None:
        """POST /consent: validated and counted; there is nothing to look up afterwards."""
        parse_consent(payload)
        self.stats.consent_requests += 1


def _with_status(jobs: list[Job], status: str, now: float) -> list[Job]:
    # Inlined Job.status_at: this loop runs over whole windows (up to a million jobs).
    # The seed: a status filter "returns only privacy jobs that match that status type", so a
    # job not yet acknowledged (status submitted) is not in the processing filter; the spec's
    # fourth filter value, submitted, lists it (conflicts table: accept all four values).
    if status == "submitted":
        return [j for j in jobs if now < j.ack_at]
    if status == "processing":
        return [j for j in jobs if j.ack_at <= now < j.done_at]
    failed = status == "error"
    return [j for j in jobs if j.done_at <= now and j.failed is failed]


def _provisioned(client: ClientConfig, products: tuple[str, ...]) -> list[bool]:
    if not client.provisioned_products:
        return [True] * len(products)
    allowed = {PRODUCTS.get(code.lower(), code) for code in client.provisioned_products}
    return [name in allowed for name in products]
