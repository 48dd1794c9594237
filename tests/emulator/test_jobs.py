"""GET /jobs/{id}, its lifecycle, the results ZIP, retention, org isolation, and POST /consent."""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

import pytest

from pipeline.emulator.config import ConfigValueError
from tests.helpers.emulator import ORG, OTHER, Api, frozen_config, payload

DAY = 86_400
DATE = re.compile(r"\d\d/\d\d/\d{4} \d\d:\d\d [AP]M GMT")


def _all(outcome: str) -> dict[str, Any]:
    rates = {"product_error_rate": 0.0, "ids_not_found_rate": 0.0, "partial_rate": 0.0}
    if outcome == "error":
        rates["product_error_rate"] = 1.0
    elif outcome == "partial":
        rates["partial_rate"] = 1.0
    return {"simulation": rates}


async def _create_one(api: Api, **kwargs: Any) -> str:
    reply = await api.create(payload(**kwargs))
    assert reply.status == 202, reply.body
    return str(reply.body["jobs"][0]["jobId"])


async def _finished(api: Api, changes: dict[str, Any], **kwargs: Any) -> tuple[str, dict[str, Any]]:
    """Reconfigure, create one job, let it finish, and return its id and details."""
    api.emu.backend.reconfigure(changes)
    job_id = await _create_one(api, **kwargs)
    api.emu.backend.advance(4)
    body = (await api.call("GET", f"jobs/{job_id}")).body
    return job_id, body


async def test_the_create_response_has_the_seed_shape(api: Api) -> None:
    reply = await api.create(payload(users=2, actions=("access", "delete")))
    body = reply.body
    assert reply.status == 202
    assert set(body) == {"jobs", "requestStatus", "totalRecords", "requestId"}
    assert body["requestStatus"] == 1
    assert body["totalRecords"] == 4
    assert [j["customer"]["user"] for j in body["jobs"]] == [
        {"key": "user0", "action": ["access"]},
        {"key": "user0", "action": ["delete"]},
        {"key": "user1", "action": ["access"]},
        {"key": "user1", "action": ["delete"]},
    ]
    assert re.fullmatch(r"\d{17}RX-\d{3}", body["requestId"])
    assert len({j["jobId"] for j in body["jobs"]}) == 4


async def test_a_new_job_is_submitted_with_every_product_pending(api: Api) -> None:
    job_id = await _create_one(api)
    body = (await api.call("GET", f"jobs/{job_id}")).body
    assert body["status"] == "submitted"
    assert body["userKey"] == "user0"
    assert body["action"] == "access"
    assert body["regulation"] == "gdpr"
    assert body["userIds"][0] == {
        "namespace": "email",
        "value": "user0@example.com",
        "type": "standard",
        "namespaceId": 6,
        "isDeletedClientSide": False,
    }
    assert body["userIds"][1]["namespaceId"] == 4
    assert [p["product"] for p in body["productResponses"]] == [
        "Analytics", "AudienceManager", "Profile",
    ]  # fmt: skip
    assert {p["productStatusResponse"]["status"] for p in body["productResponses"]} == {"submitted"}
    assert not {"downloadURL", "downloadUrl"} & body.keys()


async def test_an_access_job_completes_with_a_download_url(api: Api) -> None:
    api.emu.backend.reconfigure(_all("success"))
    job_id = await _create_one(api)
    # Acks come within 1 simulated hour, processing takes at least one more: at 1 h + ε the
    # first product has acknowledged and none can have finished.
    api.emu.backend.advance(3_601 / 86_400)
    middle = (await api.call("GET", f"jobs/{job_id}")).body
    assert middle["status"] == "processing"
    api.emu.backend.advance(4)
    body = (await api.call("GET", f"jobs/{job_id}")).body
    assert body["status"] == "complete"
    for product in body["productResponses"]:
        status = product["productStatusResponse"]
        assert status["responseMsgCode"] == "PRVCY-6000-200"
        assert status["status"] == "complete"
        assert DATE.fullmatch(product["processedDate"])
        assert product["retryCount"] == 0
    # the seed's example spells the link downloadURL
    assert body["downloadURL"] == f"{api.emu.base_url}jobs/{job_id}/content"
    assert "downloadUrl" not in body
    assert DATE.fullmatch(body["lastModifiedDate"])


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (["downloadUrl"], {"downloadUrl"}),
        (["downloadURL", "downloadUrl"], {"downloadURL", "downloadUrl"}),
    ],
)
async def test_a_setting_switches_the_download_link_to_the_specs_spelling_or_emits_both(
    api: Api, keys: list[str], expected: set[str]
) -> None:
    job_id, body = await _finished(api, {**_all("success"), "download_url_keys": keys})
    assert {k for k in body if k.lower() == "downloadurl"} == expected
    assert {body[k] for k in expected} == {f"{api.emu.base_url}jobs/{job_id}/content"}


@pytest.mark.parametrize("keys", [[], ["downloadurl"], ["downloadURL", "downloadURL"]])
def test_download_url_keys_must_name_known_spellings_once(keys: list[str]) -> None:
    with pytest.raises(ConfigValueError):
        frozen_config(download_url_keys=keys)


async def test_a_delete_job_has_no_download_url(api: Api) -> None:
    job_id, body = await _finished(api, _all("success"), actions=("delete",))
    assert body["status"] == "complete"
    assert not {"downloadURL", "downloadUrl"} & body.keys()
    assert (await api.call("GET", f"jobs/{job_id}/content")).status == 404


async def test_a_job_whose_products_fail_ends_in_error(api: Api) -> None:
    job_id, body = await _finished(api, _all("error"))
    assert body["status"] == "error"
    codes = {p["productStatusResponse"]["responseMsgCode"] for p in body["productResponses"]}
    assert codes <= {"PRVCY-1000-400", "PRVCY-1022-400", "PRVCY-1024-400"}
    assert not {"downloadURL", "downloadUrl"} & body.keys()
    assert (await api.call("GET", f"jobs/{job_id}/content")).status == 404


async def test_the_first_jobs_can_be_made_to_fail_whatever_the_rates_say(api: Api) -> None:
    api.emu.backend.reconfigure(
        {"simulation": {**_all("success")["simulation"], "error_first_jobs": 3}}
    )
    first = await api.create(payload(users=2, actions=("access", "delete")))
    second = await api.create(payload(users=2, actions=("delete",), prefix="later"))
    api.emu.backend.advance(4)
    statuses = []
    for reply in (first, second):
        for job in reply.body["jobs"]:
            body = (await api.call("GET", f"jobs/{job['jobId']}")).body
            statuses.append(body["status"])
    assert statuses == ["error", "error", "error", "complete", "complete", "complete"]


def test_error_first_jobs_is_never_negative() -> None:
    with pytest.raises(ConfigValueError):
        frozen_config(simulation={"error_first_jobs": -1})


async def test_partial_results_list_processed_and_ignored_ids(api: Api) -> None:
    _job_id, body = await _finished(api, _all("partial"))
    status = body["productResponses"][0]["productStatusResponse"]
    assert status["responseMsgCode"] == "PRVCY-6054-200"
    assert status["results"] == {"processed": ["user0@example.com"], "ignored": [f"{0:038d}"]}


async def test_products_the_org_lacks_answer_not_provisioned(api: Api) -> None:
    # The token stays valid: the client keeps its id, only its provisioning changes.
    _job_id, body = await _finished(
        api, {**_all("success"), "clients": [{"provisioned_products": ["analytics"]}]}
    )
    codes = [p["productStatusResponse"]["responseMsgCode"] for p in body["productResponses"]]
    assert codes == ["PRVCY-6000-200", "PRVCY-6051-200", "PRVCY-6051-200"]
    assert body["status"] == "complete"


async def test_an_unknown_standard_namespace_answers_invalid_namespace(api: Api) -> None:
    api.emu.backend.reconfigure(_all("success"))
    body = payload()
    body["users"][0]["userIDs"] = [{"namespace": "shoeSize", "value": "42", "type": "standard"}]
    job_id = (await api.create(body)).body["jobs"][0]["jobId"]
    api.emu.backend.advance(4)
    job = (await api.call("GET", f"jobs/{job_id}")).body
    assert {p["productStatusResponse"]["responseMsgCode"] for p in job["productResponses"]} == {
        "PRVCY-6053-200"
    }
    assert "namespaceId" not in job["userIds"][0]


async def test_an_unknown_job_is_404(api: Api) -> None:
    reply = await api.call("GET", "jobs/6fc09b53-c24f-4a6c-9ca2-c6076bd023j1")
    assert reply.status == 404
    assert reply.body["errors"]["errorCode"] == 404


async def test_another_orgs_job_is_404(api: Api, other_api: Api) -> None:
    job_id = await _create_one(other_api, org=OTHER.org_id)
    assert (await other_api.call("GET", f"jobs/{job_id}")).status == 200
    assert (await api.call("GET", f"jobs/{job_id}")).status == 404


async def test_job_data_is_gone_30_days_after_completion_and_content_after_60(api: Api) -> None:
    api.emu.backend.reconfigure(_all("success"))
    job_id = await _create_one(api)
    backend = api.emu.backend
    done_at = backend.store.get(job_id).done_at  # type: ignore[union-attr]
    backend.advance(done_at - backend.clock.now() + 30 * DAY - 1)
    await api.fetch_token()
    assert (await api.call("GET", f"jobs/{job_id}")).status == 200
    backend.advance(1)
    assert (await api.call("GET", f"jobs/{job_id}")).status == 404
    assert (await api.call("GET", f"jobs/{job_id}/content")).status == 200
    backend.advance(30 * DAY)
    await api.fetch_token()
    assert (await api.call("GET", f"jobs/{job_id}/content")).status == 404


async def test_the_content_is_a_zip_with_one_folder_per_product(api: Api) -> None:
    api.emu.backend.reconfigure(
        {**_all("success"), "clients": [{"provisioned_products": ["analytics", "profileService"]}]}
    )
    job_id = await _create_one(api)
    api.emu.backend.advance(4)
    reply = await api.call("GET", f"jobs/{job_id}/content", headers={"Accept": "application/json"})
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(reply.body)) as archive:
        names = sorted(archive.namelist())
        docs = {n.split("/")[1]: json.loads(archive.read(n)) for n in names}
    assert names == [f"{job_id}/{p}/data.json" for p in ("Analytics", "AudienceManager", "Profile")]
    assert docs["AudienceManager"] == []  # not provisioned: nothing found
    found = docs["Analytics"]["privacyResponse"]
    assert found["jobId"] == job_id
    assert {r["namespace"] for r in found["response"]} == {"email", "ECID"}


async def test_content_of_a_job_still_processing_is_404(api: Api) -> None:
    job_id = await _create_one(api)
    assert (await api.call("GET", f"jobs/{job_id}/content")).status == 404


async def test_consent_accepts_a_valid_opt_out_with_an_empty_202(api: Api) -> None:
    body = {
        "optOutOfSale": True,
        "entities": [
            {"nameSpace": "email", "values": ["a@example.com", "b@example.com"]},
            {"nameSpace": "ECID", "values": ["443636576799758681021090721276"]},
        ],
    }
    reply = await api.call("POST", "consent", json=body)
    assert reply.status == 202
    assert reply.body == b""
    assert api.emu.backend.stats.consent_requests == 1


@pytest.mark.parametrize(
    "body",
    [
        {"entities": [{"nameSpace": "email", "values": ["a@x.org"]}]},
        {"optOutOfSale": "yes", "entities": [{"nameSpace": "email", "values": ["a@x.org"]}]},
        {"optOutOfSale": True},
        {"optOutOfSale": True, "entities": []},
        {"optOutOfSale": True, "entities": ["email"]},
        {"optOutOfSale": True, "entities": [{"nameSpace": "loyalty", "values": ["1"]}]},
        {"optOutOfSale": True, "entities": [{"nameSpace": "email", "values": []}]},
        {"optOutOfSale": True, "entities": [{"nameSpace": "email", "values": [1]}]},
        {"optOutOfSale": True, "entities": [{"nameSpace": "email", "values": ["a", "a"]}]},
        ["not", "an", "object"],
        *(
            {"optOutOfSale": True, "entities": [{"nameSpace": "email", "values": ["a"]}], k: v}
            for k in ("requestId", "transactionId", "orgId")
            for v in (42, None)
        ),
    ],
)
async def test_consent_breaking_a_rule_is_refused(api: Api, body: Any) -> None:
    """Includes the spec's optional string fields sent with another type."""
    reply = await api.call("POST", "consent", json=body)
    assert reply.status == 400
    assert reply.body["errors"]["errorType"] == "uri=/data/core/privacy/consent"


async def test_consent_accepts_its_optional_string_fields(api: Api) -> None:
    body = {
        "optOutOfSale": True,
        "entities": [{"nameSpace": "email", "values": ["a@x.org"]}],
        "requestId": "req-1",
        "transactionId": "tx-1",
        "orgId": ORG,
    }
    assert (await api.call("POST", "consent", json=body)).status == 202
