"""Serving: the threaded server, `dsar emulator` as a subprocess, config files, persistence."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pipeline.emulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_ORG_ID,
    ConfigValueError,
    load_config,
)
from pipeline.emulator.demo import seed_payload
from pipeline.emulator.server import EmulatorServer
from tests.helpers.emulator import frozen_config


def _http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    form: bool = False,
) -> tuple[int, Any]:
    data = None
    headers = dict(headers or {})
    if body is not None:
        if form:
            data = "&".join(f"{k}={v}" for k, v in body.items()).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _seed_requests(root: str, client_id: str, secret: str, org: str) -> list[tuple[int, Any]]:
    """The seed's three curl requests (list page 2 size 50, create, get one job)."""
    _, token = _http(
        "POST",
        f"{root}ims/token/v3",
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
         "scope": "openid"},
        form=True,
    )  # fmt: skip
    headers = {
        "Authorization": f"Bearer {token['access_token']}",
        "x-api-key": client_id,
        "x-gw-ims-org-id": org,
    }
    base = f"{root}data/core/privacy/"
    listed = _http("GET", f"{base}jobs?regulation=gdpr&page=2&size=50", headers=headers)
    created = _http("POST", f"{base}jobs", seed_payload(org), headers=headers)
    job_id = created[1]["jobs"][0]["jobId"]
    fetched = _http("GET", f"{base}jobs/{job_id}", headers=headers)
    return [listed, created, fetched]


def test_the_threaded_server_serves_the_seed_requests() -> None:
    with EmulatorServer(frozen_config()) as emu:
        assert emu.base_url == f"{emu.root_url}data/core/privacy/"
        listed, created, fetched = _seed_requests(
            emu.ims_url, DEFAULT_CLIENT_ID, "dsar-emulator-secret", DEFAULT_ORG_ID
        )
        assert listed == (200, {"jobDetails": [], "totalRecords": 0})
        assert created[0] == 202
        assert [j["customer"]["user"]["key"] for j in created[1]["jobs"]] == [
            "DavidSmith", "user12345", "user12345",
        ]  # fmt: skip
        assert fetched[0] == 200
        assert fetched[1]["userKey"] == "DavidSmith"
        assert len(emu.backend.store) == 3
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", emu.port), timeout=1).close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dsar_emulator_serves_on_the_given_port_with_the_env_client(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "ADOBE_CLIENT_ID": "env-client",
        "ADOBE_CLIENT_SECRET": "env-secret",
        "ADOBE_ORG_ID": "ENVORG@AdobeOrg",
    }
    with subprocess.Popen(
        [sys.executable, "-m", "pipeline", "emulator", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()  # the readiness line, logged once the port is bound
            assert "emulator serving" in line, line
            root = f"http://127.0.0.1:{port}/"
            replies = _seed_requests(root, "env-client", "env-secret", "ENVORG@AdobeOrg")
            assert [status for status, _ in replies] == [200, 202, 200]
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=15)
        assert proc.returncode == 0


def test_a_toml_file_configures_limits_faults_and_clients(tmp_path: Path) -> None:
    path = tmp_path / "emu.toml"
    path.write_text(
        "seed = 9\nclock_frozen = true\n[limits]\ndaily_job_cap = 50\n"
        "[faults]\nreset_rate = 0.1\nlatency_s = [0.0, 0.2]\n"
        '[[clients]]\nclient_id = "a"\nclient_secret = "b"\norg_id = "C@AdobeOrg"\n'
    )
    config = load_config(path, {"ADOBE_CLIENT_ID": "ignored-when-clients-are-listed"})
    assert config.seed == 9
    assert config.limits.daily_job_cap == 50
    assert config.faults.latency_s == (0.0, 0.2)
    assert [c.client_id for c in config.clients] == ["a"]


def test_the_default_client_comes_from_the_environment() -> None:
    config = load_config(None, {"ADOBE_CLIENT_ID": "x", "ADOBE_ORG_ID": "Y@AdobeOrg"})
    client = config.clients[0]
    assert (client.client_id, client.org_id) == ("x", "Y@AdobeOrg")
    assert "secret" not in repr(client)


def test_the_shipped_emulator_config_loads() -> None:
    config = load_config(Path(__file__).parents[2] / "configs" / "emulator.toml", {})
    assert config.limits.daily_job_cap == 20_000


def test_an_unknown_toml_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "emu.toml"
    path.write_text("[limits]\nrequests_per_minute = 3\n")
    with pytest.raises(ConfigValueError):
        load_config(path, {})


def test_persistence_keeps_jobs_tokens_and_clock_across_a_restart(tmp_path: Path) -> None:
    config = frozen_config(persistence_path=str(tmp_path / "emu.sqlite"))
    with EmulatorServer(config) as emu:
        root = emu.root_url
        first = _seed_requests(root, DEFAULT_CLIENT_ID, "dsar-emulator-secret", DEFAULT_ORG_ID)
        _http("POST", f"{root}_emulator/advance", {"seconds": 7200})
        created_ids = [j["jobId"] for j in first[1][1]["jobs"]]
    with EmulatorServer(config) as emu:
        assert len(emu.backend.store) == 3
        assert emu.backend.clock.offset_s == 7200
        backend = emu.backend
        token = next(t for t, _c, _e in backend.tokens.items())
        headers = {
            "Authorization": f"Bearer {token}",
            "x-api-key": DEFAULT_CLIENT_ID,
            "x-gw-ims-org-id": DEFAULT_ORG_ID,
        }
        status, body = _http("GET", f"{emu.base_url}jobs/{created_ids[0]}", headers=headers)
        assert status == 200
        assert body["status"] == "complete"
        listed = _http("GET", f"{emu.base_url}jobs?regulation=ccpa", headers=headers)[1]
        assert [j["jobId"] for j in listed["jobDetails"]] == created_ids
        _, again = _http(
            "POST", f"{emu.base_url}jobs", seed_payload(DEFAULT_ORG_ID), headers=headers
        )
        assert not set(created_ids) & {j["jobId"] for j in again["jobs"]}
