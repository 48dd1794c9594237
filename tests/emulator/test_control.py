"""The control plane: reset, config, advance, stats; and determinism for a seed."""

from __future__ import annotations

from typing import Any

from pipeline.emulator.backend import PrivacyBackend
from pipeline.emulator.server import start_emulator
from tests.helpers.emulator import Api, frozen_config, payload


async def test_control_endpoints_need_no_auth_and_are_not_counted(api: Api) -> None:
    await api.call("GET", "jobs?regulation=gdpr")
    for _ in range(3):
        assert (await api.control("GET", "config")).status == 200
    stats = (await api.control("GET", "stats")).body
    assert set(stats["requests"]) == {"GET jobs", "POST ims/token/v3"}
    assert stats["requests"]["GET jobs"] == {"200": 1}
    assert stats["first_request_monotonic"] <= stats["last_request_monotonic"]


async def test_config_masks_secrets_and_merges_partial_updates(api: Api) -> None:
    before = (await api.control("GET", "config")).body
    assert {c["client_secret"] for c in before["clients"]} == {"***"}
    reply = await api.control(
        "POST", "config", {"limits": {"daily_job_cap": 7}, "faults": {"latency_s": [0, 0.01]}}
    )
    assert reply.status == 200
    assert reply.body["limits"]["daily_job_cap"] == 7
    assert reply.body["limits"]["max_page_size"] == 1000
    assert reply.body["faults"]["latency_s"] == [0, 0.01]
    assert api.emu.backend.config.limits.daily_job_cap == 7


async def test_config_refuses_unknown_keys_and_wrong_types(api: Api) -> None:
    assert (await api.control("POST", "config", {"limits": {"speed": 1}})).status == 400
    assert (await api.control("POST", "config", {"seed": "one"})).status == 400
    assert (await api.control("POST", "config", [1])).status == 400
    assert (await api.control("POST", "config", {"clock_start": "soon"})).status == 400
    assert (await api.control("POST", "config", {"faults": {"reset_rate": 2}})).status == 400
    assert (await api.control("POST", "config", {"faults": {"latency_s": [2, 1]}})).status == 400
    assert (await api.control("POST", "config", {"simulation": {"time_scale": 0}})).status == 400
    assert (await api.control("POST", "config", {"clients": []})).status == 400
    assert api.emu.backend.config.seed == 1


async def test_advance_moves_the_clock_by_seconds_or_days(api: Api) -> None:
    start = api.emu.backend.clock.now()
    reply = await api.control("POST", "advance", {"seconds": 30})
    assert reply.body["now"] == start + 30
    reply = await api.control("POST", "advance", {"days": 2})
    assert reply.body["now"] == start + 30 + 2 * 86_400
    assert reply.body["date"].endswith("GMT")


async def test_advance_refuses_going_backwards_or_non_numbers(api: Api) -> None:
    assert (await api.control("POST", "advance", {"seconds": -1})).status == 400
    assert (await api.control("POST", "advance", {"days": "1"})).status == 400


async def test_reset_forgets_jobs_and_counters_but_keeps_tokens(api: Api) -> None:
    await api.create(payload(users=3))
    await api.control("POST", "advance", {"days": 1})
    assert (await api.control("POST", "reset")).status == 200
    assert api.emu.backend.stats.jobs_created == 0
    reply = await api.call("GET", "jobs?regulation=gdpr")
    assert reply.status == 200
    assert reply.body["totalRecords"] == 0
    health = (await api.control("GET", "health")).body
    assert health["jobs"] == 0
    assert health["date"] == "Mon, 02 Mar 2026 10:00:00 GMT"


async def _session_outcomes(api: Api) -> list[Any]:
    """A fixed sequence of requests; returns every status and job outcome seen."""
    seen: list[Any] = []
    for i in range(3):
        reply = await api.create(payload(users=5, actions=("access", "delete"), prefix=f"r{i}-"))
        seen.append((reply.status, [j["jobId"] for j in reply.body["jobs"]]))
    api.emu.backend.advance(4)
    listed = await api.call("GET", "jobs?regulation=gdpr&size=1000")
    for job in listed.body["jobDetails"]:
        detail = (await api.call("GET", f"jobs/{job['jobId']}")).body
        codes = [p["productStatusResponse"]["responseMsgCode"] for p in detail["productResponses"]]
        seen.append((job["status"], detail["lastModifiedDate"], codes))
    return seen


async def test_the_same_seed_and_requests_give_the_same_statuses_and_outcomes(api: Api) -> None:
    config = frozen_config(seed=42, simulation={"product_error_rate": 0.2})
    runs = []
    for _ in range(2):
        async with await start_emulator(backend=PrivacyBackend(config)) as emu:
            runs.append(await _session_outcomes(Api(api.session, emu)))
    assert runs[0] == runs[1]
    statuses = {entry[0] for entry in runs[0][3:]}
    assert statuses == {"complete", "error"}
    other = frozen_config(seed=43, simulation={"product_error_rate": 0.2})
    async with await start_emulator(backend=PrivacyBackend(other)) as emu:
        assert await _session_outcomes(Api(api.session, emu)) != runs[0]


async def test_returning_to_an_earlier_seed_never_reuses_a_job_id(api: Api) -> None:
    first = await api.create(payload(users=5))
    await api.control("POST", "config", {"seed": 2})
    await api.control("POST", "config", {"seed": 1})
    second = await api.create(payload(users=5, prefix="again"))
    ids = [j["jobId"] for j in first.body["jobs"] + second.body["jobs"]]
    assert len(set(ids)) == 10
    assert len(api.emu.backend.store) == 10
