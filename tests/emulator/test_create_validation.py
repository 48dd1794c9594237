"""POST /jobs validation: every documented rule answers 400 in the privacy error envelope."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers.emulator import Api, payload

Mutation = Callable[[dict[str, Any]], None]


def _user(body: dict[str, Any]) -> dict[str, Any]:
    user: dict[str, Any] = body["users"][0]
    return user


def _uid(body: dict[str, Any]) -> dict[str, Any]:
    uid: dict[str, Any] = _user(body)["userIDs"][0]
    return uid


RULES: dict[str, Mutation] = {
    "missing companyContexts": lambda b: b.pop("companyContexts"),
    "empty companyContexts": lambda b: b.update(companyContexts=[]),
    "no imsOrgID context": lambda b: b.update(
        companyContexts=[{"namespace": "Campaign", "value": "acme"}]
    ),
    "imsOrgID differs from the org header": lambda b: b.update(
        companyContexts=[{"namespace": "imsOrgID", "value": "SOMEONEELSE@AdobeOrg"}]
    ),
    "extra company context without a value": lambda b: b["companyContexts"].append(
        {"namespace": "Campaign"}
    ),
    "extra company context without a namespace": lambda b: b["companyContexts"].append(
        {"value": "acme-stg-us1"}
    ),
    "extra company context with a blank value": lambda b: b["companyContexts"].append(
        {"namespace": "Campaign", "value": " "}
    ),
    "company context that is not an object": lambda b: b["companyContexts"].append("Campaign"),
    "missing users": lambda b: b.pop("users"),
    "empty users": lambda b: b.update(users=[]),
    "more than 1000 users": lambda b: b.update(users=payload(users=1001)["users"]),
    "user is not an object": lambda b: b.update(users=["user0"]),
    "missing key": lambda b: _user(b).pop("key"),
    "blank key": lambda b: _user(b).update(key="  "),
    "missing action": lambda b: _user(b).pop("action"),
    "empty action": lambda b: _user(b).update(action=[]),
    "unknown action": lambda b: _user(b).update(action=["erase"]),
    "repeated action": lambda b: _user(b).update(action=["access", "access"]),
    "opt-out mixed with access": lambda b: _user(b).update(action=["access", "opt-out-of-sale"]),
    "missing userIDs": lambda b: _user(b).pop("userIDs"),
    "empty userIDs": lambda b: _user(b).update(userIDs=[]),
    "more than 9 userIDs": lambda b: _user(b).update(
        userIDs=[
            {"namespace": "email", "value": f"u{i}@x.org", "type": "standard"} for i in range(10)
        ]
    ),
    "userID missing namespace": lambda b: _uid(b).pop("namespace"),
    "userID missing value": lambda b: _uid(b).pop("value"),
    "userID empty value": lambda b: _uid(b).update(value=""),
    "userID missing type": lambda b: _uid(b).pop("type"),
    "userID unknown type": lambda b: _uid(b).update(type="global"),
    "userID isDeletedClientSide not a boolean": lambda b: _uid(b).update(isDeletedClientSide="no"),
    "userID namespaceId not an integer": lambda b: _uid(b).update(namespaceId="six"),
    "missing include": lambda b: b.pop("include"),
    "empty include": lambda b: b.update(include=[]),
    "unknown product": lambda b: b.update(include=["Analytics", "photoshop"]),
    "repeated product": lambda b: b.update(include=["Analytics", "Analytics"]),
    "repeated product in another case": lambda b: b.update(include=["Analytics", "analytics"]),
    "expandIds not boolean-like": lambda b: b.update(expandIds="yes"),
    "unknown priority": lambda b: b.update(priority="urgent"),
    "mergePolicyId of the wrong type": lambda b: b.update(mergePolicyId=[124]),
    "missing regulation": lambda b: b.pop("regulation"),
    "unknown regulation": lambda b: b.update(regulation="gdpr_moon"),
    "requestId not a string": lambda b: b.update(requestId=17),
    "empty requestId": lambda b: b.update(requestId=""),
    "null requestId": lambda b: b.update(requestId=None),
}


@pytest.mark.parametrize("rule", list(RULES))
async def test_a_payload_breaking_a_rule_is_refused_with_400(api: Api, rule: str) -> None:
    body = copy.deepcopy(payload())
    RULES[rule](body)
    reply = await api.create(body)
    assert reply.status == 400
    errors = reply.body["errors"]
    assert errors["errorType"] == "uri=/data/core/privacy/jobs"
    assert errors["errorCode"] == 400
    assert errors["title"] == "Invalid Request"
    assert errors["detail"]
    assert "code" not in errors
    assert api.emu.backend.stats.jobs_created == 0


async def test_a_deprecated_regulation_is_refused_naming_its_replacement(api: Api) -> None:
    reply = await api.create(payload(regulation="ucpa_usa"))
    assert reply.status == 400
    assert "ucpa_ut_usa" in reply.body["errors"]["detail"]


async def test_a_body_that_is_not_json_is_refused(api: Api) -> None:
    reply = await api.call(
        "POST", "jobs", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert reply.status == 400
    assert "JSON" in reply.body["errors"]["detail"]


async def test_a_body_that_is_not_an_object_is_refused(api: Api) -> None:
    reply = await api.call("POST", "jobs", json=[payload()])
    assert reply.status == 400


@pytest.mark.parametrize(
    "variant",
    [
        {"expandIds": "true"},
        {"expandIds": True},
        {"priority": "low"},
        {"include": ["ANALYTICS", "audiencemanager"]},
        {
            "companyContexts": [
                {"namespace": "imsOrgId", "value": "DSAREMULATOR0000000000000@AdobeOrg"}
            ]
        },
        {"mergePolicyId": 124, "analyticsDeleteMethod": "purge"},
        {
            "companyContexts": [
                {"namespace": "imsOrgID", "value": "DSAREMULATOR0000000000000@AdobeOrg"},
                {"namespace": "Campaign", "value": "acme-stg-us1"},
            ]
        },
    ],
)
async def test_documented_variants_are_accepted(api: Api, variant: dict[str, Any]) -> None:
    body = payload()
    body.update(variant)
    reply = await api.create(body)
    assert reply.status == 202, reply.body


async def test_opt_out_of_sale_alone_is_accepted(api: Api) -> None:
    reply = await api.create(payload(actions=("opt-out-of-sale",)))
    assert reply.status == 202
    assert reply.body["jobs"][0]["customer"]["user"]["action"] == ["opt-out-of-sale"]


async def test_exactly_1000_users_and_9_ids_are_accepted(api: Api) -> None:
    body = payload(users=1000)
    _user(body)["userIDs"] = [
        {"namespace": "email", "value": f"u{i}@x.org", "type": "standard"} for i in range(9)
    ]
    reply = await api.create(body)
    assert reply.status == 202
    assert reply.body["totalRecords"] == 1000


async def test_a_caller_supplied_request_id_is_kept_on_every_job(api: Api) -> None:
    body = payload(users=2, actions=("access", "delete"))
    body["requestId"] = "crm-batch-0042"
    reply = await api.create(body)
    assert reply.status == 202
    assert reply.body["requestId"] == "crm-batch-0042"
    for job in reply.body["jobs"]:
        details = await api.call("GET", f"jobs/{job['jobId']}")
        assert details.body["requestId"] == "crm-batch-0042"
    listed = await api.call("GET", "jobs?regulation=gdpr")
    assert {j["requestId"] for j in listed.body["jobDetails"]} == {"crm-batch-0042"}


async def test_without_a_request_id_the_service_generates_one(api: Api) -> None:
    reply = await api.create(payload())
    assert re.fullmatch(r"\d{17}RX-\d{3}", reply.body["requestId"])
