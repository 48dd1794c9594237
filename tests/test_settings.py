"""Settings: layering, secrets from the environment only, masked reprs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import RetryPolicy
from pipeline.api.wire import list_queries
from pipeline.errors import ConfigError
from pipeline.input.batching import Batcher
from pipeline.models import RequestOptions
from pipeline.regulations import normalize_regulation
from pipeline.run.context import RunOptions
from pipeline.settings import (
    SECTIONS,
    ColumnMapping,
    JobSettings,
    Secret,
    load_settings,
)
from pipeline.settings_check import RULES, checked


def test_defaults_hold_without_a_file() -> None:
    s = load_settings(None, env={})
    assert s.job.regulation == "gdpr"
    assert s.limits.users_per_request == 1000
    assert not s.credentials.complete


def test_toml_then_environment_then_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[job]\nregulation = "ccpa"\ninclude = ["analytics"]\n'
        '[input.columns]\ncrm = { namespace = "crmId", type = "custom" }\n'
        '[output]\nworkspace = "ws1"\n'
    )
    env = {"DSAR_API_BASE_URL": "http://127.0.0.1:1/data/core/privacy/"}
    s = load_settings(cfg, env=env, overrides={"output": {"workspace": "ws2"}})
    assert s.job.regulation == "ccpa"
    assert s.job.include == ("analytics",)
    assert s.input.columns["crm"].type == "custom"
    assert s.api.base_url == env["DSAR_API_BASE_URL"]
    assert s.output.workspace == "ws2"


def test_a_secret_in_the_toml_file_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[api]\nclient_secret = "s3cr3t-value"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={})
    assert "s3cr3t-value" not in str(err.value)


def test_unknown_keys_and_sections_are_named(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[limits]\nrequests_per_sec = 3\n")
    with pytest.raises(ConfigError, match="requests_per_sec"):
        load_settings(cfg, env={})
    cfg.write_text("[nope]\na = 1\n")
    with pytest.raises(ConfigError, match="nope"):
        load_settings(cfg, env={})


def test_credentials_come_from_the_environment_and_never_show() -> None:
    env = {
        "ADOBE_CLIENT_ID": "cid-123456",
        "ADOBE_CLIENT_SECRET": "p8e-TOPSECRET",
        "ADOBE_ORG_ID": "ABC@AdobeOrg",
    }
    s = load_settings(None, env=env)
    assert s.credentials.complete
    assert s.credentials.client_secret == Secret("p8e-TOPSECRET")
    shown = repr(s) + str(s.credentials) + f"{s.credentials.client_secret}"
    assert "TOPSECRET" not in shown
    assert "cid-123456" not in shown


def test_digest_ignores_credentials() -> None:
    a = load_settings(None, env={})
    b = load_settings(None, env={"ADOBE_CLIENT_SECRET": "x", "ADOBE_CLIENT_ID": "y"})
    assert a.digest() == b.digest()


def test_every_setting_has_a_rule_and_every_rule_a_setting() -> None:
    sections = SECTIONS
    assert set(RULES) == set(sections)
    for name, cls in sections.items():
        assert set(RULES[name]) == {f.name for f in dataclasses.fields(cls)}, name


def test_every_default_passes_its_own_rule() -> None:
    defaults = load_settings(None, env={})
    for section, rules in RULES.items():
        for key in rules:
            value = getattr(getattr(defaults, section), key)
            checked(section, key, value, where=f"[{section}] {key}")


@pytest.mark.parametrize("name", ["default.toml", "adobe.example.toml"])
def test_the_shipped_configs_load(name: str) -> None:
    load_settings(Path(__file__).parent.parent / "configs" / name, env={})


def test_loading_keeps_values_in_their_usable_form(caplog: pytest.LogCaptureFixture) -> None:
    s = load_settings(
        None,
        env={"DSAR_API_BASE_URL": "https://platform.adobe.io/data/core/privacy"},
        overrides={
            "job": {"regulation": "UCPA_USA", "include": ["analytics"]},
            "input": {"columns": {"crm": ColumnMapping(namespace="crmId", type="custom")}},
        },
    )
    assert s.api.base_url == "https://platform.adobe.io/data/core/privacy/"
    assert s.job.regulation == "ucpa_ut_usa"
    assert "'ucpa_usa'" in caplog.text
    assert s.job.include == ("analytics",)
    assert s.input.columns["crm"] == ColumnMapping(namespace="crmId", type="custom")


def test_a_run_snapshot_loads_back_to_the_same_settings(tmp_path: Path) -> None:
    from pipeline.run.runner import settings_from_snapshot, settings_snapshot

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[job]\ninclude = ["analytics"]\n[input.columns]\ncrm = { namespace = "crmId", '
        'type = "custom" }\n[limits]\nrequests_per_second = 2\n'
    )
    first = load_settings(cfg, env={})
    again = settings_from_snapshot(settings_snapshot(first), {})
    assert again.job == first.job
    assert again.input == first.input
    assert again.limits == first.limits


def test_run_options_never_show_the_environment() -> None:
    options = RunOptions(env={"ADOBE_CLIENT_SECRET": "p8e-REPR-SECRET", "DSAR_KEY_SECRET": "k"})
    assert "p8e-REPR-SECRET" not in repr(options)
    assert "DSAR_KEY_SECRET" not in repr(options)
    assert options.env["DSAR_KEY_SECRET"] == "k"


@pytest.mark.parametrize(
    "build",
    [
        lambda: RateLimiter(requests_per_second=-1, max_in_flight=4),
        lambda: RateLimiter(requests_per_second=5, max_in_flight=0),
        lambda: RetryPolicy(max_retries=-1),
        lambda: RetryPolicy(cap_s=0.1),
        lambda: Batcher(run_id="r", job=JobSettings(), users_per_request=0),
        lambda: list_queries(
            "gdpr", status=None, from_date=None, to_date=None, page_size=0, window_days=30
        ),
        lambda: list_queries(
            "gdpr",
            status=None,
            from_date=date(2026, 1, 2),
            to_date=None,
            page_size=10,
            window_days=30,
        ),
        lambda: RequestOptions(regulation="nope", include=("analytics",)),
        lambda: RequestOptions(regulation="gdpr", include=("x",)),
        lambda: RequestOptions(regulation="gdpr", include=("analytics",), priority="urgent"),
        lambda: normalize_regulation("nope"),
    ],
)
def test_library_checks_a_user_can_reach_raise_config_errors(build: Callable[[], object]) -> None:
    with pytest.raises(ConfigError):
        build()


ORGS_TOML = """
[api]
base_url = "https://platform.example/"
[limits]
daily_job_cap = 500
[job]
org = "us"
[[orgs]]
name = "us"
org_id = "US@AdobeOrg"
client_id_env = "US_ID"
client_secret_env = "US_SECRET"
[[orgs]]
name = "eu"
org_id = "EU@AdobeOrg"
client_id_env = "EU_ID"
client_secret_env = "EU_SECRET"
base_url = "https://eu.example/"
daily_job_cap = 7
requests_per_second = 2.5
include = ["analytics"]
"""


def test_orgs_take_their_own_keys_and_the_single_org_settings_for_the_rest(
    tmp_path: Path,
) -> None:
    from pipeline.run.runner import settings_snapshot

    (tmp_path / "c.toml").write_text(ORGS_TOML, encoding="utf-8")
    env = {"US_ID": "us-id", "US_SECRET": "us-secret", "EU_ID": "eu-id"}
    s = load_settings(tmp_path / "c.toml", env=env)
    us, eu = s.org_list()
    assert (us.name, us.org_id, us.base_url, us.daily_job_cap) == (
        "us",
        "US@AdobeOrg",
        "https://platform.example/",
        500,
    )
    assert us.include == s.job.include
    assert us.credentials.complete
    assert (eu.base_url, eu.daily_job_cap, eu.requests_per_second, eu.include) == (
        "https://eu.example/",
        7,
        2.5,
        ("analytics",),
    )
    assert not eu.credentials.complete  # EU_SECRET is not set: refused when a run starts
    assert s.default_org == "us"
    assert "us-secret" not in repr(s)
    assert "us-secret" not in json.dumps(settings_snapshot(s))


def test_the_single_org_settings_are_the_one_default_org() -> None:
    s = load_settings(None, env={"ADOBE_ORG_ID": "O@AdobeOrg"})
    (org,) = s.org_list()
    assert (org.name, org.org_id, s.default_org, s.multi_org) == (
        "default",
        "O@AdobeOrg",
        "default",
        False,
    )


def test_orgs_survive_the_journalled_snapshot(tmp_path: Path) -> None:
    from pipeline.run.runner import settings_from_snapshot, settings_snapshot

    (tmp_path / "c.toml").write_text(ORGS_TOML, encoding="utf-8")
    s = load_settings(tmp_path / "c.toml", env={})
    snap = json.loads(json.dumps(settings_snapshot(s)))
    again = settings_from_snapshot(snap, {"EU_ID": "x", "EU_SECRET": "y"})
    assert again.orgs == s.orgs
    assert again.org_named("eu").credentials.complete
    assert "orgs" not in settings_snapshot(load_settings(None, env={}))
