"""The Privacy Service UI upload file: its request options are honoured, nothing is dropped."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.errors import ConfigError, InputError
from pipeline.settings import load_settings
from tests.helpers.input import plan_file, settings_with

Write = Callable[..., Path]
ORG = "0123456789ABCDEF@AdobeOrg"


def _user(key: str, email: str, **extra: Any) -> dict[str, Any]:
    identity = {"namespace": "email", "value": email, "type": "standard"}
    return {"key": key, "action": ["access"], "userIDs": [identity], **extra}


def _doc(**top: Any) -> dict[str, Any]:
    users = [_user("A", "a@example.com"), _user("B", "b@example.com")]
    return {"users": users, "regulation": "gdpr", **top}


def _file(write: Write, doc: dict[str, Any]) -> Path:
    return write(orjson.dumps(doc), "upload.json")


def test_the_files_options_become_the_options_of_every_request(write: Write) -> None:
    path = _file(
        write,
        _doc(
            include=["Analytics", "AudienceManager"],
            priority="low",
            expandIds=True,
            mergePolicyId=124,
        ),
    )
    planned = plan_file(path)
    (options,) = {b.options for b in planned.batches}
    assert options.include == ("Analytics", "AudienceManager")
    assert (options.priority, options.expand_ids, options.merge_policy_id) == ("low", True, "124")
    wire = planned.batches[0].to_request().to_wire("ORG")
    assert wire["include"] == ["Analytics", "AudienceManager"]
    assert (wire["priority"], wire["expandIds"], wire["mergePolicyId"]) == ("low", True, "124")


def test_options_the_file_does_not_set_keep_the_configurations(write: Write) -> None:
    path = _file(write, _doc(include=["Analytics"]))
    planned = plan_file(path, settings_with(job={"priority": "low", "merge_policy_id": "7"}))
    (options,) = {b.options for b in planned.batches}
    assert options.include == ("Analytics",)
    assert (options.priority, options.merge_policy_id, options.expand_ids) == ("low", "7", False)


def test_an_info_line_names_the_options_taken_from_the_file(
    write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    path = _file(write, _doc(include=["Analytics"], expandIds="true"))
    with caplog.at_level(logging.INFO, logger="dsar.input"):
        planned = plan_file(path)
    assert planned.batches[0].options.expand_ids is True
    (line,) = [r.getMessage() for r in caplog.records if "taken from the file" in r.getMessage()]
    assert "include=[Analytics]" in line
    assert "expandIds=true" in line
    assert "regulation=gdpr" in line
    assert "priority" not in line


@pytest.mark.parametrize(
    ("job", "top", "named"),
    [
        ({"include": ["aepDataLake"]}, {"include": ["Analytics"]}, "[job] include = [aepDataLake]"),
        ({"priority": "normal"}, {"priority": "low"}, "priority = low"),
        ({"expand_ids": False}, {"expandIds": True}, "expandIds = true"),
        ({"merge_policy_id": "1"}, {"mergePolicyId": 2}, "[job] merge_policy_id = 1"),
        ({"regulation": "ccpa"}, {}, "[job] regulation = ccpa"),
    ],
)
def test_an_explicit_setting_that_differs_from_the_file_is_refused_naming_both(
    write: Write, job: dict[str, Any], top: dict[str, Any], named: str
) -> None:
    path = _file(write, _doc(**top))
    with pytest.raises(ConfigError, match="the file sets") as caught:
        plan_file(path, settings_with(job=job))
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_explicit_setting_equal_to_the_file_is_no_conflict(write: Write) -> None:
    doc = _doc(include=["analytics", "Target"], priority="low")
    doc["regulation"] = "ucpa_usa"  # deprecated spelling of the configured ucpa_ut_usa
    settings = settings_with(
        job={"include": ["target", "Analytics"], "priority": "low", "regulation": "ucpa_ut_usa"}
    )
    planned = plan_file(_file(write, doc), settings)
    (options,) = {b.options for b in planned.batches}
    assert (options.include, options.regulation) == (("analytics", "Target"), "ucpa_ut_usa")


def test_a_toml_setting_is_explicit_and_a_default_is_not(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[job]\npriority = "normal"\n', encoding="utf-8")
    settings = load_settings(cfg, env={})
    assert "job.priority" in settings.explicit
    assert "job.include" not in settings.explicit
    assert settings.digest() == load_settings(None, env={}).digest()


@pytest.mark.parametrize(
    ("top", "needle"),
    [
        ({"analyticsDeleteMethod": "anonymize"}, "'analyticsDeleteMethod'"),
        ({"include": ["Analytics", "Photoshop"]}, "unknown product 'Photoshop'"),
        ({"include": []}, "'include' must be a non-empty array"),
        ({"priority": "urgent"}, "'priority' must be one of normal, low"),
        ({"expandIds": "yes"}, "'expandIds' must be true or false"),
        ({"mergePolicyId": [1]}, "'mergePolicyId' must be a number or a string"),
        ({"regulation": 5}, "'regulation' must be a regulation name"),
        ({"companyContexts": [{"namespace": "Analytics", "value": "acme"}]}, "imsOrgID"),
    ],
)
def test_what_the_file_asks_for_and_dsar_cannot_honour_is_input_error(
    write: Write, top: dict[str, Any], needle: str
) -> None:
    with pytest.raises(InputError) as caught:
        plan_file(_file(write, _doc(**top)))
    assert needle in str(caught.value)


@pytest.mark.parametrize(
    ("user", "needle"),
    [
        (_user("C", "c@example.com", requestId="r-1"), "users[2] has the key 'requestId'"),
        ({"key": "C", "c@example.com": ["access"]}, "users[2] has the key (not shown"),
        (
            {"key": "C", "action": ["access"], "userIDs": [{"namespace": "email", "x": 1}]},
            "users[2].userIDs[0] has the key 'x'",
        ),
        (
            {
                "key": "C",
                "action": ["delete"],
                "userIDs": [
                    {"namespace": "email", "value": "c@example.com", "isDeletedClientSide": True}
                ],
            },
            "users[2].userIDs[0].isDeletedClientSide",
        ),
    ],
)
def test_a_user_or_identity_key_dsar_would_drop_is_refused(
    write: Write, user: dict[str, Any], needle: str
) -> None:
    doc = _doc()
    doc["users"].append(user)
    with pytest.raises(InputError) as caught:
        plan_file(_file(write, doc))
    assert needle in str(caught.value)
    assert "c@example.com" not in str(caught.value)


def test_is_deleted_client_side_false_changes_nothing_and_is_accepted(write: Write) -> None:
    doc = _doc()
    doc["users"][0]["userIDs"][0]["isDeletedClientSide"] = False
    assert len(plan_file(_file(write, doc)).users) == 2


def test_the_files_ims_org_must_be_the_configured_org(write: Write) -> None:
    path = _file(write, _doc(companyContexts=[{"namespace": "imsOrgID", "value": ORG}]))
    assert len(plan_file(path, load_settings(None, env={"ADOBE_ORG_ID": ORG})).users) == 2
    assert len(plan_file(path).users) == 2  # no org configured (validate, dry run): no check
    other = load_settings(None, env={"ADOBE_ORG_ID": "FEDCBA9876543210@AdobeOrg"})
    with pytest.raises(ConfigError, match="another IMS org than ADOBE_ORG_ID"):
        plan_file(path, other)


def test_the_deprecated_regulation_warning_names_the_value_it_maps_to(
    write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    path = write("email,regulation\na@example.com,ucpa_usa\n")
    with caplog.at_level(logging.WARNING, logger="dsar.input"):
        plan_file(path)
    (line,) = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert "'ucpa_usa'" in line
    assert "'ucpa_ut_usa'" in line
