"""GET /jobs: paging, the date window rules, status filters, and org isolation."""

from __future__ import annotations

import pytest

from tests.helpers.emulator import OTHER, Api, payload

DAY = 86_400


async def test_pages_cover_every_job_once_in_a_stable_order(api: Api) -> None:
    created = await api.create(payload(users=125, actions=("access", "delete")))
    expected = [j["jobId"] for j in created.body["jobs"]]
    seen: list[str] = []
    for page in range(3):
        reply = await api.call("GET", f"jobs?regulation=gdpr&page={page}&size=100")
        assert reply.status == 200
        assert reply.body["totalRecords"] == 250
        seen.extend(j["jobId"] for j in reply.body["jobDetails"])
    assert seen == expected
    beyond = await api.call("GET", "jobs?regulation=gdpr&page=3&size=100")
    assert beyond.body == {"jobDetails": [], "totalRecords": 250}


async def test_the_seed_request_page_2_size_50_returns_the_third_fifty(api: Api) -> None:
    created = await api.create(payload(users=180))
    reply = await api.call("GET", "jobs?regulation=gdpr&page=2&size=50")
    ids = [j["jobId"] for j in reply.body["jobDetails"]]
    assert ids == [j["jobId"] for j in created.body["jobs"][100:150]]


async def test_list_items_have_the_basic_job_fields(api: Api) -> None:
    await api.create(payload())
    item = (await api.call("GET", "jobs?regulation=gdpr")).body["jobDetails"][0]
    assert set(item) == {
        "jobId", "requestId", "userKey", "action", "status", "submittedBy", "createdDate",
        "lastModifiedDate",
    }  # fmt: skip
    assert item["createdDate"] == "03/02/2026 10:00 AM GMT"
    assert item["status"] == "submitted"


async def test_the_default_page_size_is_100(api: Api) -> None:
    await api.create(payload(users=120))
    reply = await api.call("GET", "jobs?regulation=gdpr")
    assert len(reply.body["jobDetails"]) == 100
    assert reply.body["totalRecords"] == 120


async def test_a_size_of_1000_is_allowed(api: Api) -> None:
    assert (await api.call("GET", "jobs?regulation=gdpr&size=1000")).status == 200


async def test_the_list_is_per_regulation(api: Api) -> None:
    await api.create(payload(regulation="ccpa"))
    assert (await api.call("GET", "jobs?regulation=gdpr")).body["totalRecords"] == 0
    assert (await api.call("GET", "jobs?regulation=ccpa")).body["totalRecords"] == 1


async def test_another_org_sees_none_of_these_jobs(api: Api, other_api: Api) -> None:
    await api.create(payload(users=3))
    reply = await other_api.call("GET", "jobs?regulation=gdpr")
    assert reply.body["totalRecords"] == 0
    await other_api.create(payload(users=2, org=OTHER.org_id))
    assert (await api.call("GET", "jobs?regulation=gdpr")).body["totalRecords"] == 3


async def test_without_dates_only_the_last_7_days_are_listed(api: Api) -> None:
    await api.create(payload(users=2, prefix="old"))
    api.emu.backend.advance(6 * DAY)
    await api.fetch_token()
    await api.create(payload(users=1, prefix="new"))
    assert (await api.call("GET", "jobs?regulation=gdpr")).body["totalRecords"] == 3
    api.emu.backend.advance(2 * DAY)
    await api.fetch_token()
    assert (await api.call("GET", "jobs?regulation=gdpr")).body["totalRecords"] == 1


async def test_a_date_window_finds_older_jobs_inclusively(api: Api) -> None:
    await api.create(payload(users=2))
    api.emu.backend.advance(20 * DAY)
    await api.fetch_token()
    window = "fromDate=2026-03-02&toDate=2026-03-02"
    reply = await api.call("GET", f"jobs?regulation=gdpr&{window}")
    assert reply.body["totalRecords"] == 2
    none = await api.call("GET", "jobs?regulation=gdpr&fromDate=2026-03-03&toDate=2026-03-20")
    assert none.body["totalRecords"] == 0


async def test_filter_date_selects_one_day(api: Api) -> None:
    await api.create(payload(users=1, prefix="a"))
    api.emu.backend.advance(DAY)
    await api.fetch_token()
    await api.create(payload(users=2, prefix="b"))
    reply = await api.call("GET", "jobs?regulation=gdpr&filterDate=2026-03-03")
    assert [j["userKey"] for j in reply.body["jobDetails"]] == ["b0", "b1"]


async def test_status_filter_follows_the_lifecycle(api: Api) -> None:
    api.emu.backend.reconfigure({"simulation": {"product_error_rate": 0.0}})
    await api.create(payload(users=4))
    assert (await api.call("GET", "jobs?regulation=gdpr&status=submitted")).body[
        "totalRecords"
    ] == 4
    api.emu.backend.advance(10)
    done = await api.call("GET", "jobs?regulation=gdpr&status=complete&size=2&page=1")
    assert done.body["totalRecords"] == 4
    assert len(done.body["jobDetails"]) == 2
    assert (await api.call("GET", "jobs?regulation=gdpr&status=submitted")).body[
        "totalRecords"
    ] == 0


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("", "regulation"),
        ("regulation=", "regulation"),
        ("regulation=moon", "regulation"),
        ("regulation=cpa_usa", "cpa_co_usa"),
        ("regulation=gdpr&size=1001", "Page size"),
        ("regulation=gdpr&size=0", "size"),
        ("regulation=gdpr&size=ten", "size"),
        ("regulation=gdpr&page=-1", "page"),
        ("regulation=gdpr&page=x", "page"),
        ("regulation=gdpr&page=2147483648", "page"),
        ("regulation=gdpr&status=done", "status"),
        ("regulation=gdpr&fromDate=2026-03-01", "together"),
        ("regulation=gdpr&toDate=2026-03-01", "together"),
        ("regulation=gdpr&fromDate=2026/03/01&toDate=2026-03-02", "YYYY-MM-DD"),
        ("regulation=gdpr&fromDate=2026-03-01&toDate=2026-02-30", "YYYY-MM-DD"),
        ("regulation=gdpr&fromDate=2026-W09-1&toDate=2026-03-02", "YYYY-MM-DD"),
        ("regulation=gdpr&fromDate=2026-03-02&toDate=2026-03-01", "before"),
        ("regulation=gdpr&fromDate=2026-01-30&toDate=2026-03-02", "30 days"),
        ("regulation=gdpr&fromDate=2026-01-15&toDate=2026-02-10", "45 days"),
        ("regulation=gdpr&filterDate=2026-01-01", "45 days"),
        ("regulation=gdpr&filterDate=yesterday", "YYYY-MM-DD"),
    ],
)
async def test_a_list_query_breaking_a_rule_is_refused(api: Api, query: str, fragment: str) -> None:
    reply = await api.call("GET", f"jobs?{query}")
    assert reply.status == 400
    assert reply.body["errors"]["errorType"] == "uri=/data/core/privacy/jobs"
    assert fragment in reply.body["errors"]["detail"]


async def test_a_30_day_span_within_45_days_is_allowed(api: Api) -> None:
    reply = await api.call("GET", "jobs?regulation=gdpr&fromDate=2026-01-16&toDate=2026-02-15")
    assert reply.status == 200


async def test_the_largest_int32_page_is_allowed_and_empty(api: Api) -> None:
    reply = await api.call("GET", "jobs?regulation=gdpr&page=2147483647")
    assert reply.status == 200
    assert reply.body["jobDetails"] == []


async def test_a_job_past_retention_leaves_the_list_when_its_lookup_turns_404(api: Api) -> None:
    backend = api.emu.backend
    backend.reconfigure({"simulation": {"product_error_rate": 0.0}})
    old = (await api.create(payload(prefix="old"))).body["jobs"][0]["jobId"]
    backend.advance(10 * DAY)
    await api.fetch_token()
    new = (await api.create(payload(prefix="new"))).body["jobs"][0]["jobId"]
    done_at = backend.store.get(old).done_at  # type: ignore[union-attr]
    backend.advance(done_at + 30 * DAY - 1 - backend.clock.now())
    await api.fetch_token()
    window = "jobs?regulation=gdpr&fromDate=2026-03-02&toDate=2026-03-31"

    async def listed(query: str) -> list[str]:
        reply = await api.call("GET", query)
        assert reply.body["totalRecords"] == len(reply.body["jobDetails"])
        return [j["jobId"] for j in reply.body["jobDetails"]]

    assert (await api.call("GET", f"jobs/{old}")).status == 200
    assert await listed(window) == [old, new]
    assert await listed(window + "&status=complete") == [old, new]
    backend.advance(1)
    assert (await api.call("GET", f"jobs/{old}")).status == 404
    assert await listed(window) == [new]
    assert await listed(window + "&status=complete") == [new]
    beyond = await api.call("GET", window + "&page=1&size=1")
    assert beyond.body == {"jobDetails": [], "totalRecords": 1}
