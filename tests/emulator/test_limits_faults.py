"""Limits (client rate, document rate, daily cap) and seeded faults, with the stats they leave."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.helpers.emulator import Api, FakeMonotonic, payload

DAY = 86_400


async def test_going_over_the_per_client_rate_gets_429_with_retry_after(
    api: Api, monotonic: FakeMonotonic
) -> None:
    api.emu.backend.reconfigure({"limits": {"requests_per_second": 3}})
    statuses = [(await api.call("GET", "jobs?regulation=gdpr")).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    refused = await api.call("GET", "jobs?regulation=gdpr")
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.body == {"error_code": "429050", "message": "Too many requests"}
    monotonic.now += 1.0
    assert (await api.call("GET", "jobs?regulation=gdpr")).status == 200
    stats = (await api.control("GET", "stats")).body
    assert stats["throttled"] == 1
    assert stats["requests"]["GET jobs"] == {"200": 4, "429": 1}


async def test_the_rate_limit_is_per_client(
    api: Api, other_api: Api, monotonic: FakeMonotonic
) -> None:
    api.emu.backend.reconfigure({"limits": {"requests_per_second": 1}})
    assert (await api.call("GET", "jobs?regulation=gdpr")).status == 200
    assert (await api.call("GET", "jobs?regulation=gdpr")).status == 429
    assert (await other_api.call("GET", "jobs?regulation=gdpr")).status == 200


async def test_the_document_rate_limit_answers_prvcy_1030_with_retry_after(
    api: Api, monotonic: FakeMonotonic
) -> None:
    api.emu.backend.reconfigure({"limits": {"doc_rate_limit_per_minute": 10}})
    assert (await api.create(payload(users=8))).status == 202
    refused = await api.create(payload(users=3, prefix="more"))
    assert refused.status == 400
    errors = refused.body["errors"]
    assert errors["code"] == "PRVCY-1030-400"
    assert "PRVCY-1030-400" in errors["detail"]
    assert int(refused.headers["Retry-After"]) == 60
    monotonic.now += 30
    assert int((await api.create(payload(users=3, prefix="more"))).headers["Retry-After"]) == 30
    monotonic.now += 30
    assert (await api.create(payload(users=3, prefix="more"))).status == 202
    assert api.emu.backend.stats.jobs_created == 11


async def test_the_daily_cap_refuses_a_whole_post_with_400_not_429(api: Api) -> None:
    api.emu.backend.reconfigure({"limits": {"daily_job_cap": 10}})
    assert (await api.create(payload(users=4, actions=("access", "delete")))).status == 202
    refused = await api.create(payload(users=2, actions=("access", "delete"), prefix="b"))
    assert refused.status == 400
    assert refused.body["errors"]["title"] == "Daily upload limit exceeded"
    assert "10" in refused.body["errors"]["detail"]
    assert api.emu.backend.stats.jobs_created == 8
    assert (
        await api.create(payload(users=1, actions=("access", "delete"), prefix="c"))
    ).status == 202


async def test_the_daily_cap_resets_on_the_next_utc_day(api: Api) -> None:
    api.emu.backend.reconfigure({"limits": {"daily_job_cap": 5}})
    assert (await api.create(payload(users=5))).status == 202
    assert (await api.create(payload(users=1, prefix="b"))).status == 400
    await api.control("POST", "advance", {"days": 1})
    await api.fetch_token()
    assert (await api.create(payload(users=5, prefix="b"))).status == 202


async def test_the_default_daily_cap_is_20000_jobs_per_org(api: Api, other_api: Api) -> None:
    for batch in range(20):
        assert (await api.create(payload(users=1000, prefix=f"b{batch}-"))).status == 202
    refused = await api.create(payload(users=1, prefix="over"))
    assert "20000" in refused.body["errors"]["detail"]
    other = await other_api.create(payload(users=1, org="OTHER0@AdobeOrg"))
    assert other.status == 202


async def _set_faults(api: Api, **faults: object) -> None:
    reply = await api.control("POST", "config", {"seed": 5, "faults": faults})
    assert reply.status == 200, reply.body


async def test_a_5xx_fault_answers_a_server_error_without_creating_jobs(api: Api) -> None:
    await _set_faults(api, error_5xx_rate=1.0)
    reply = await api.create(payload())
    assert reply.status in (500, 503, 504)
    assert api.emu.backend.stats.jobs_created == 0


async def test_a_reset_fault_drops_the_connection_without_an_answer(api: Api) -> None:
    await api.headers()
    await _set_faults(api, reset_rate=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.create(payload())
    stats = (await api.control("GET", "stats")).body
    assert stats["requests"]["POST jobs"] == {"reset": 1}
    assert stats["faults"] == {"reset": 1}
    assert stats["jobs_created"] == 0


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
async def test_an_ambiguous_post_creates_the_jobs_then_fails(api: Api, seed: int) -> None:
    await api.headers()
    await api.control("POST", "config", {"seed": seed, "faults": {"ambiguous_post_rate": 1.0}})
    try:
        reply = await api.create(payload(users=2))
        outcome = str(reply.status)
    except aiohttp.ClientConnectionError:
        outcome = "reset"
    assert outcome in ("500", "504", "reset")
    assert api.emu.backend.stats.jobs_created == 2
    listed = await api.call("GET", "jobs?regulation=gdpr")
    assert listed.body["totalRecords"] == 2


async def test_ambiguous_posts_cover_500_504_and_reset(api: Api) -> None:
    await api.headers()
    await _set_faults(api, ambiguous_post_rate=1.0)
    outcomes = set()
    for i in range(12):
        try:
            outcomes.add(str((await api.create(payload(prefix=f"u{i}-"))).status))
        except aiohttp.ClientConnectionError:
            outcomes.add("reset")
    assert outcomes == {"500", "504", "reset"}
    stats = (await api.control("GET", "stats")).body
    assert stats["jobs_created"] == 12
    assert stats["duplicate_user_keys"] == []


async def test_a_resubmitted_key_shows_up_as_a_duplicate(api: Api) -> None:
    await api.create(payload(users=2))
    await api.create(payload(users=1))
    stats = (await api.control("GET", "stats")).body
    assert stats["posts_per_user_key"] == {"user0": {"access": 2}, "user1": {"access": 1}}
    assert stats["duplicate_user_keys"] == ["user0"]


async def test_a_throttle_burst_answers_429_for_its_length(api: Api) -> None:
    await api.headers()
    await _set_faults(api, throttle_burst_rate=1.0, throttle_burst_length=3)
    statuses = [(await api.call("GET", "jobs?regulation=gdpr")).status for _ in range(3)]
    assert statuses == [429, 429, 429]
    await _set_faults(api, throttle_burst_rate=0.0)
    assert (await api.call("GET", "jobs?regulation=gdpr")).status == 200


async def test_latency_delays_the_answer(api: Api) -> None:
    await api.headers()
    await _set_faults(api, latency_s=[0.05, 0.05])
    loop_time = asyncio.get_running_loop().time
    started = loop_time()
    assert (await api.call("GET", "jobs?regulation=gdpr")).status == 200
    assert loop_time() - started >= 0.05


async def test_faults_are_reproducible_for_a_seed(api: Api) -> None:
    await api.headers()

    async def run() -> list[str]:
        await api.control("POST", "reset")
        await _set_faults(api, error_5xx_rate=0.4)
        seen = []
        for _ in range(15):
            seen.append(str((await api.call("GET", "jobs?regulation=gdpr")).status))
        return seen

    first = await run()
    assert set(first) - {"200"}
    assert first == await run()
