"""Settings: layering, secrets from the environment only, masked reprs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import Secret, load_settings


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
