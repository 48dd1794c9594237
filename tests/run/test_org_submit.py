"""Each org of a run submits its own batches through its own client and daily budget."""

from __future__ import annotations

import asyncio
import dataclasses
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from pipeline.api.client import EP_CREATE
from pipeline.journal.ledger import Ledger
from pipeline.journal.store import Journal
from pipeline.models import PlannedBatch
from pipeline.run.context import RunContext, RunOptions
from pipeline.run.submitter import Submitter
from pipeline.run.target import Target
from pipeline.settings import Settings, load_settings
from tests.helpers.plans import OPTIONS, meta, user

CLIENTS = {
    "eu": {"client_id": "eu-id", "client_secret": "eu-secret", "org_id": "EU@AdobeOrg"},
    "us": {"client_id": "us-id", "client_secret": "us-secret", "org_id": "US@AdobeOrg"},
}


def org_settings(tmp_path: Path, emu: Any) -> Settings:
    """Settings with one ``[[orgs]]`` table per emulator client of :data:`CLIENTS`."""
    tables = "".join(
        f'[[orgs]]\nname = "{name}"\norg_id = "{c["org_id"]}"\n'
        f'client_id_env = "{name.upper()}_ID"\nclient_secret_env = "{name.upper()}_SECRET"\n'
        for name, c in CLIENTS.items()
    )
    (tmp_path / "c.toml").write_text(tables, encoding="utf-8")
    env = {k: emu.env[k] for k in ("DSAR_API_BASE_URL", "DSAR_IMS_URL")}
    for name, c in CLIENTS.items():
        env[f"{name.upper()}_ID"] = c["client_id"]
        env[f"{name.upper()}_SECRET"] = c["client_secret"]
    return load_settings(tmp_path / "c.toml", env=env)


def _plan(journal: Journal) -> None:
    batches = []
    for n, org in enumerate(("eu", "us", "eu", "us")):
        options = dataclasses.replace(OPTIONS, org=org)
        users = tuple(user(10 * n + i) for i in range(3))
        batches.append(PlannedBatch(batch_id=f"b-{org}-{n}", options=options, users=users))
    journal.write_plan(meta(), batches, rejects_count=0)


def test_each_org_submits_only_its_batches_through_its_client_and_budget(
    tmp_path: Path, emulator_factory: Any
) -> None:
    emu = emulator_factory(clients=list(CLIENTS.values()))
    settings = org_settings(tmp_path, emu)
    target = Target(settings=settings, embedded=False)

    async def main() -> None:
        with Journal.open(tmp_path / "run") as journal, Ledger.open(tmp_path) as ledger:
            _plan(journal)
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
                reports = await asyncio.gather(*(Submitter(ctx).submit_all() for ctx in contexts))
                assert [r.jobs_created for r in reports] == [12, 12]
                for ctx in contexts:  # each org's client posted its own org's two batches
                    assert sum(ctx.client.call_counts[EP_CREATE].values()) == 2
                assert journal.batches_to_submit() == []
                day = (await run.service_now()).date()
                for c in CLIENTS.values():
                    assert ledger.usage(c["org_id"], day).used == 12

    asyncio.run(main())
    today = int(emu.clock.utc_now().timestamp() // 86400)
    for c in CLIENTS.values():  # the service saw each org's jobs under that org
        assert emu.server.backend.store.jobs_on_day(c["org_id"], today) == 12
