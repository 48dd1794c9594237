"""Each call's wire shape and typed answer, including the variants only a mock can produce."""

from __future__ import annotations

import hashlib
import itertools
import logging
import stat
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from aioresponses import aioresponses

from pipeline.api.client import PrivacyServiceClient
from pipeline.api.responses import parse_service_date
from pipeline.api.wire import date_windows
from pipeline.errors import ConfigError
from pipeline.models import Action, Identity, JobStatus
from pipeline.regulations import normalize_regulation
from tests.helpers.api import (
    BASE,
    CLIENT_ID,
    EMAIL,
    JOBS_RE,
    JOBS_URL,
    ORG,
    TOKEN,
    USER_KEY,
    Recorder,
    a_request,
    answer,
    created_body,
    job_body,
    job_url,
)
from tests.helpers.vclock import VirtualClock


@pytest.mark.parametrize(("status", "key"), [(202, "jobs"), (200, "jobDetails"), (201, "jobs")])
async def test_create_jobs_maps_user_key_and_action_to_job_ids(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses, status: int, key: str
) -> None:
    request = a_request(users=2)
    api = Recorder(clock, answer(status, created_body(request, key)))
    mocked.post(JOBS_URL, callback=api)
    result = await clock.run(client.create_jobs(request))
    assert result.request_id == "REQ-1"
    assert result.job_ids() == {
        (USER_KEY, Action.ACCESS): "job-0-access",
        (USER_KEY, Action.DELETE): "job-0-delete",
        (f"{USER_KEY}-1", Action.ACCESS): "job-1-access",
        (f"{USER_KEY}-1", Action.DELETE): "job-1-delete",
    }
    sent = api.calls[0]
    assert orjson.loads(sent["data"]) == request.to_wire(ORG)
    headers = sent["headers"]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["x-api-key"] == CLIENT_ID
    assert headers["x-gw-ims-org-id"] == ORG
    assert headers["Content-Type"] == "application/json"
    assert client.call_counts == {"POST jobs": {str(status): 1}}
    assert client.last_server_date == datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


async def test_get_job_parses_dates_products_and_either_download_url_spelling(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses
) -> None:
    mocked.get(job_url("job-1"), callback=Recorder(clock, answer(200, job_body())))
    job = await clock.run(client.get_job("job-1"))
    assert job.status is JobStatus.COMPLETE
    assert job.created_at == datetime(2019, 10, 2, 20, 25, tzinfo=UTC)
    assert job.last_modified_at == datetime(2019, 10, 3, 0, 5, tzinfo=UTC)
    assert job.download_url == f"{BASE}jobs/job-1/content"
    (product,) = job.products
    assert (product.product, product.response_code, product.outcome) == (
        "Profile",
        "PRVCY-6054-200",
        "partial",
    )
    assert (product.processed_count, product.ignored_count) == (1, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10/02/2019 08:25 PM GMT", datetime(2019, 10, 2, 20, 25, tzinfo=UTC)),
        ("01/31/2026 12:00 AM GMT", datetime(2026, 1, 31, 0, 0, tzinfo=UTC)),
        ("01/31/2026 12:30 PM GMT", datetime(2026, 1, 31, 12, 30, tzinfo=UTC)),
        ("2026-01-31T12:30:00Z", datetime(2026, 1, 31, 12, 30, tzinfo=UTC)),
        ("yesterday", None),
        (None, None),
    ],
)
def test_service_dates_parse_to_utc(text: str | None, expected: datetime | None) -> None:
    assert parse_service_date(text) == expected


def test_date_ranges_split_into_windows_of_at_most_thirty_days() -> None:
    windows = date_windows(date(2026, 1, 1), date(2026, 3, 15), 30)
    assert windows[0] == (date(2026, 1, 1), date(2026, 1, 30))
    assert windows[-1][1] == date(2026, 3, 15)
    assert all((b - a).days <= 29 for a, b in windows)
    assert all((c - b).days == 1 for (_, b), (c, _) in itertools.pairwise(windows))


async def test_list_jobs_pages_each_window_until_a_short_page(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses
) -> None:
    def page(n: int, prefix: str) -> dict[str, object]:
        jobs = [job_body(f"{prefix}-{i}", "processing") for i in range(n)]
        # totalRecords is the overall count here; the client must not read it as page length
        return {"jobs": jobs, "totalRecords": 999}

    api = Recorder(
        clock,
        answer(200, page(2, "a")),
        answer(200, page(2, "b")),
        answer(200, page(0, "c")),
        answer(200, page(1, "d")),
    )
    mocked.get(JOBS_RE, callback=api, repeat=True)

    async def collect() -> list[str]:
        return [
            job.job_id
            async for job in client.list_jobs(
                "ucpa_usa", from_date=date(2026, 1, 1), to_date=date(2026, 2, 14), page_size=2
            )
        ]

    ids = await clock.run(collect())
    assert ids == ["a-0", "a-1", "b-0", "b-1", "d-0"]
    queries = [parse_qs(urlsplit(c["url"]).query) for c in api.calls]
    assert [(q["fromDate"][0], q["toDate"][0], q["page"][0]) for q in queries] == [
        ("2026-01-01", "2026-01-30", "0"),
        ("2026-01-01", "2026-01-30", "1"),
        ("2026-01-01", "2026-01-30", "2"),
        ("2026-01-31", "2026-02-14", "0"),
    ]
    assert {q["regulation"][0] for q in queries} == {"ucpa_ut_usa"}


async def test_a_server_that_ignores_the_page_parameter_is_detected(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses
) -> None:
    same = {"jobDetails": [job_body("x-0"), job_body("x-1")]}
    mocked.get(JOBS_RE, callback=Recorder(clock, answer(200, same)), repeat=True)

    async def drain() -> None:
        async for _ in client.list_jobs("gdpr", page_size=2):
            pass

    with pytest.raises(Exception, match="paging does not advance"):
        await clock.run(drain())


async def test_download_streams_to_a_private_file_and_returns_its_sha256(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses, tmp_path: Path
) -> None:
    payload = b"PK\x03\x04" + bytes(range(256)) * 1000
    api = Recorder(clock, answer(200, payload, {"Content-Type": "application/zip"}))
    mocked.get(f"{BASE}jobs/job-1/content", callback=api, repeat=True)
    dest = tmp_path / "results" / "job-1.zip"
    digest = await clock.run(client.download_content(f"{BASE}jobs/job-1/content", dest))
    assert digest == hashlib.sha256(payload).hexdigest()
    assert dest.read_bytes() == payload
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert stat.S_IMODE(dest.parent.stat().st_mode) == 0o700
    assert api.calls[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert list(dest.parent.iterdir()) == [dest]


async def test_a_foreign_download_url_gets_no_credentials(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses, tmp_path: Path
) -> None:
    api = Recorder(clock, answer(200, b"zip"))
    mocked.get("https://bucket.example/presigned/abc", callback=api)
    await clock.run(client.download_content("https://bucket.example/presigned/abc", tmp_path / "a"))
    assert "Authorization" not in api.calls[0]["headers"]
    assert client.call_counts == {"GET download-url": {"200": 1}}


async def test_opt_out_posts_consent_grouped_by_namespace(
    client: PrivacyServiceClient, clock: VirtualClock, mocked: aioresponses
) -> None:
    api = Recorder(clock, answer(202, ""))
    mocked.post(BASE + "consent", callback=api)
    identities = [Identity("email", EMAIL), Identity("ECID", "1" * 38), Identity("email", EMAIL)]
    await clock.run(client.opt_out(identities))
    assert orjson.loads(api.calls[0]["data"]) == {
        "optOutOfSale": True,
        "entities": [
            {"nameSpace": "email", "values": [EMAIL]},
            {"nameSpace": "ECID", "values": ["1" * 38]},
        ],
    }


def test_deprecated_regulations_map_to_current_with_a_warning_naming_only_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="dsar"):
        assert normalize_regulation(" UCPA_USA ") == "ucpa_ut_usa"
        assert normalize_regulation("gdpr") == "gdpr"
    (record,) = caplog.records
    assert "'ucpa_usa'" in record.getMessage()
    assert "'ucpa_ut_usa'" in record.getMessage()
    with pytest.raises(ConfigError, match="unknown regulation"):
        normalize_regulation("not_a_law")
