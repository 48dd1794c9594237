"""Each org of a run submits its own batches through its own client and daily budget; one
org at its cap or with refused credentials does not hold up the others."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from pipeline.api.client import EP_CREATE, EP_GET, EP_LIST
from pipeline.journal.ledger import Ledger
from pipeline.journal.models import JobState
from pipeline.journal.store import Journal
from pipeline.models import PlannedBatch
from pipeline.run.context import RunContext, RunOptions
from pipeline.run.orgs import AUTH_FAILED, OrgSubmitters, pause_message
from pipeline.run.poller import Poller
from pipeline.run.submitter import SubmitReport
from pipeline.run.target import Target
from pipeline.settings import Settings, load_settings
from tests.helpers.plans import OPTIONS, at, meta, user
from tests.helpers.run import ORG_CLIENTS, Emu, org_env, org_tables


def _settings(tmp_path: Path, emu: Emu, names: tuple[str, ...], **kw: Any) -> Settings:
    wrong = kw.pop("wrong_secret", ())
    (tmp_path / "c.toml").write_text(org_tables(names, **kw), encoding="utf-8")
    return load_settings(tmp_path / "c.toml", env=org_env(emu, names, wrong))


def _plan(journal: Journal, names: tuple[str, ...], per_org: int = 2) -> None:
    batches = []
    for n in range(per_org):
        for k, org in enumerate(names):
            options = dataclasses.replace(OPTIONS, org=org)
            users = tuple(user(100 * k + 10 * n + i) for i in range(3))  # 6 jobs a batch
            batches.append(PlannedBatch(batch_id=f"b-{org}-{n}", options=options, users=users))
    journal.write_plan(meta(), batches, rejects_count=0)


def _drive(
    tmp_path: Path,
    emu: Emu,
    settings: Settings,
    then: Callable[[list[RunContext]], Awaitable[None]] | None = None,
    ambiguous: tuple[str, ...] = (),
) -> tuple[OrgSubmitters, dict[str, SubmitReport], Journal, Ledger]:
    """Plan two batches per org and run the orgs' submitters once, side by side; then
    ``then`` with the orgs' contexts."""
    names = tuple(o.name for o in settings.org_list())
    target = Target(settings=settings, embedded=False)
    journal = Journal.open(tmp_path / "run")
    ledger = Ledger.open(tmp_path)
    _plan(journal, names)
    for batch_id in ambiguous:  # a POST whose outcome an earlier process never learnt
        journal.record_intent(batch_id, "d", emu.clock.utc_now() if emu.clock else at(0))
        journal.mark_ambiguous(batch_id, emu.clock.utc_now() if emu.clock else at(0))

    async def main() -> tuple[OrgSubmitters, dict[str, SubmitReport]]:
        async with AsyncExitStack() as stack:
            orgs = settings.org_list()
            clients = [
                await stack.enter_async_context(target.for_org(o).client(clock=emu.clock))
                for o in orgs
            ]
            run = RunContext(
                journal=journal,
                ledger=ledger,
                client=clients[0],
                settings=settings,
                options=RunOptions(clock=emu.clock),
                org_id="",
                regulations=("gdpr",),
            )
            contexts = [
                run.for_org(o.name, client=c, settings=settings.for_org(o), org_id=o.org_id)
                for o, c in zip(orgs, clients, strict=True)
            ]
            submitters = OrgSubmitters(contexts)
            reports = await submitters.submit_all()
            if then is not None:
                await then(contexts)
            return submitters, reports

    submitters, reports = asyncio.run(main())
    return submitters, reports, journal, ledger


def _today(emu: Emu) -> int:
    return int(emu.clock.utc_now().timestamp() // 86400) if emu.clock else 0


def test_each_org_submits_only_its_batches_through_its_client_and_budget(
    tmp_path: Path, emulator_factory: Any
) -> None:
    emu = emulator_factory(clients=[ORG_CLIENTS[n] for n in ("eu", "us")])
    submitters, reports, journal, ledger = _drive(
        tmp_path, emu, _settings(tmp_path, emu, ("eu", "us"))
    )
    with journal, ledger:
        assert {n: r.jobs_created for n, r in reports.items()} == {"eu": 12, "us": 12}
        for s in submitters.submitters.values():  # each org's client posted its own batches
            assert sum(s.ctx.client.call_counts[EP_CREATE].values()) == 2
        assert journal.batches_to_submit() == []
        day = emu.clock.utc_now().date() if emu.clock else None
        for name in ("eu", "us"):
            assert ledger.usage(ORG_CLIENTS[name]["org_id"], day).used == 12
        assert not submitters.cap_reached
        assert not submitters.auth_failed
    for name in ("eu", "us"):  # the service saw each org's jobs under that org
        assert emu.server.backend.store.jobs_on_day(ORG_CLIENTS[name]["org_id"], _today(emu)) == 12


def test_one_org_at_its_cap_and_one_refused_leave_the_third_to_finish(
    tmp_path: Path, emulator_factory: Any
) -> None:
    names = ("eu", "us", "apac")
    emu = emulator_factory(clients=[ORG_CLIENTS[n] for n in names])
    settings = _settings(tmp_path, emu, names, us={"daily_job_cap": 6}, wrong_secret=("apac",))
    submitters, reports, journal, ledger = _drive(tmp_path, emu, settings)
    with journal, ledger:
        assert reports["eu"].jobs_created == 12  # the clean org: everything submitted
        assert reports["us"].jobs_created == 6
        assert reports["us"].cap_reached
        assert set(submitters.paused) == {"us"}  # only the capped org waits
        assert submitters.auth_failed == {"apac": "authentication"}
        assert not submitters.all_failed
        assert journal.batches_to_submit(org="eu") == []
        assert journal.batches_to_submit(org="apac") == []  # failed, not left to pause
        assert len(journal.batches_to_submit(org="us")) == 1  # the rest waits for its day
        apac = [journal.batch_info(b) for b in ("b-apac-0", "b-apac-1")]
        assert {i.state.value for i in apac} <= {"failed", "reconciled"}
        assert journal.counts().jobs["failed"] == 12  # every apac job, none of the others
        assert {journal.batch_info("b-apac-1").error_code} == {AUTH_FAILED}
        message = pause_message(submitters.paused)
        assert message.startswith("paused: org us at its daily cap until ")
        assert "org eu" not in message
    today = _today(emu)
    assert emu.server.backend.store.jobs_on_day(ORG_CLIENTS["apac"]["org_id"], today) == 0


def test_every_org_refused_is_an_authentication_failure_of_the_run(
    tmp_path: Path, emulator_factory: Any
) -> None:
    names = ("eu", "us")
    emu = emulator_factory(clients=[ORG_CLIENTS[n] for n in names])
    settings = _settings(tmp_path, emu, names, wrong_secret=names)
    submitters, reports, journal, ledger = _drive(tmp_path, emu, settings)
    with journal, ledger:
        assert submitters.all_failed
        assert {n: r.reasons for n, r in reports.items()} == {
            "eu": {AUTH_FAILED: 2},
            "us": {AUTH_FAILED: 2},
        }
        assert journal.counts().jobs["failed"] == 24


def test_each_org_polls_and_downloads_its_jobs_through_its_client(
    tmp_path: Path, emulator_factory: Any
) -> None:
    names = ("eu", "us")
    emu = emulator_factory(clients=[ORG_CLIENTS[n] for n in names])
    rounds: dict[str, int] = {}

    async def poll(contexts: list[RunContext]) -> None:
        async def until_done(ctx: RunContext) -> None:
            poller = Poller(ctx, tmp_path / "run")
            org = ctx.org
            for rounds[str(org)] in range(1, 200):  # a round is HTTP: the emulator moves on
                await poller.round()
                open_ = sum(w.open_jobs for w in ctx.journal.open_windows(org=org))
                follow_up = ctx.journal.jobs_needing_details(
                    org=org
                ) + ctx.journal.jobs_needing_download(org=org)
                if not open_ and not follow_up:
                    return

        await asyncio.gather(*(until_done(ctx) for ctx in contexts))
        for ctx in contexts:  # each org listed and read its own jobs with its own client
            calls = ctx.client.call_counts
            assert sum(calls[EP_LIST].values()) >= 1
            assert set(calls[EP_GET]) == {"200"}  # never another org's job (a 404)

    _, _, journal, ledger = _drive(tmp_path, emu, _settings(tmp_path, emu, names), then=poll)
    with journal, ledger:
        jobs = journal.counts().jobs
        assert jobs[JobState.SUBMITTED] + jobs[JobState.PROCESSING] == 0
        assert sum(jobs.values()) == 24
        assert journal.downloads_waiting() == 0
    assert max(rounds.values()) < 199


def test_a_refused_orgs_ambiguous_batch_waits_and_submits_nothing_more(
    tmp_path: Path, emulator_factory: Any
) -> None:
    names = ("eu", "apac")
    emu = emulator_factory(clients=[ORG_CLIENTS[n] for n in names])
    settings = _settings(tmp_path, emu, names, wrong_secret=("apac",))
    submitters, _, journal, ledger = _drive(tmp_path, emu, settings, ambiguous=("b-apac-0",))
    with journal, ledger:
        assert submitters.auth_failed == {"apac": "authentication"}
        assert [i.batch_id for i in journal.unresolved_batches()] == ["b-apac-0"]
        assert journal.batch_info("b-apac-1").error_code == AUTH_FAILED
        assert not submitters.can_submit  # the engine starts no submitter round for it
        assert not submitters.cap_reached
