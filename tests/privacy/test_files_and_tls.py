"""Files are private (run directory 0700, everything in it 0600), the journal never holds a
token or secret, and TLS verification cannot be turned off by any setting or variable."""

from __future__ import annotations

import shutil
import ssl
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pipeline.api.client import PrivacyServiceClient
from pipeline.errors import ApiError, ConfigError
from pipeline.settings import load_settings
from tests.helpers.run import run_cli, write_config, write_subjects

PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"


def test_a_run_keeps_its_files_private_and_its_journal_free_of_tokens(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(token_lifetime_s=60)
    write_subjects(tmp_path / "in.csv", 200, actions=("access",))
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli(argv, emu.env, monkeypatch) in (0, 1)
    (run_dir,) = [p.parent for p in ws.glob("*/journal.sqlite")]
    results = list((run_dir / "results").iterdir())
    assert results, "no access result was downloaded"
    for path in [run_dir, *run_dir.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path.name}: {oct(mode)}"
    secrets = [t for t, _, _ in emu.server.backend.tokens.items()]
    secrets += [c.client_secret for c in emu.server.config.clients]
    assert len(secrets) >= 2
    stored = [p for p in ws.rglob("*") if p.is_file() and ".sqlite" in p.name]
    assert any(p.name == "journal.sqlite" for p in stored)
    for path in stored:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"a token or secret is stored in {path.name}"


@pytest.mark.parametrize("key", ["verify_ssl", "ssl", "verify", "insecure", "tls_verify"])
def test_no_setting_turns_tls_verification_off(tmp_path: Path, key: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[api]\n{key} = false\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings(cfg, env={})


def test_no_code_path_disables_certificate_checks() -> None:
    forbidden = ("ssl=False", "verify_ssl", "CERT_NONE", "check_hostname", "_create_unverified")
    for module in PIPELINE.rglob("*.py"):
        text = module.read_text(encoding="utf-8")
        for word in forbidden:
            assert word not in text, f"{module.name} mentions {word}"


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server TLS context with a freshly made self-signed certificate for 127.0.0.1."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


INSECURE_ENV = {
    "PYTHONHTTPSVERIFY": "0",
    "DSAR_INSECURE": "1",
    "DSAR_VERIFY_SSL": "0",
    "DSAR_TLS_VERIFY": "false",
    "CURL_CA_BUNDLE": "",
    "REQUESTS_CA_BUNDLE": "",
    "AIOHTTP_NO_VERIFY": "1",
}


async def test_the_client_refuses_a_self_signed_server_whatever_the_environment(
    self_signed: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in INSECURE_ENV.items():
        monkeypatch.setenv(name, value)
    reached: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        reached.append(request.path)
        return web.json_response({"access_token": "x", "expires_in": 3600})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self_signed)
    await site.start()
    port = runner.addresses[0][1]
    env = {
        **INSECURE_ENV,
        "DSAR_API_BASE_URL": f"https://127.0.0.1:{port}/data/core/privacy/",
        "DSAR_IMS_URL": f"https://127.0.0.1:{port}/",
        "ADOBE_CLIENT_ID": "tls-test-client",
        "ADOBE_CLIENT_SECRET": "tls-test-secret-value",
        "ADOBE_ORG_ID": "TLSTEST@AdobeOrg",
    }
    settings = load_settings(None, env=env, overrides={"api": {"max_retries": 0}})

    async def first_page(client: PrivacyServiceClient) -> None:
        async for _ in client.list_jobs("gdpr", page_size=1):
            break

    try:
        async with PrivacyServiceClient.from_settings(settings) as client:
            with pytest.raises(ApiError) as refused:
                await first_page(client)
    finally:
        await runner.cleanup()
    assert reached == [], "an HTTP request went through a certificate nobody trusts"
    assert "Certificate" in str(refused.value) or "SSL" in str(refused.value), refused.value
