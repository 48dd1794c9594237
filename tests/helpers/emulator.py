"""Shared helpers for tests/emulator: an in-loop emulator on a frozen clock, a raw-HTTP API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from pipeline.emulator.backend import PrivacyBackend
from pipeline.emulator.config import ClientConfig, EmulatorConfig, LimitsConfig
from pipeline.emulator.server import RunningEmulator, start_emulator

START = "2026-03-02T10:00:00"
ORG = "DSAREMULATOR0000000000000@AdobeOrg"
OTHER = ClientConfig(
    client_id="other-client", client_secret="other-secret", org_id="OTHER0@AdobeOrg"
)


def frozen_config(**changes: Any) -> EmulatorConfig:
    """A deterministic config: frozen clock at START, seed 1, no per-second limit."""
    base = EmulatorConfig(
        seed=1,
        clock_frozen=True,
        clock_start=START,
        clients=(ClientConfig(), OTHER),
        limits=LimitsConfig(requests_per_second=0),
    )
    return base.updated(changes) if changes else base


class FakeMonotonic:
    """A monotonic clock that only moves when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Reply:
    status: int
    headers: Any
    body: Any


@dataclass
class Api:
    """Raw calls to the emulator as one client (token fetched lazily)."""

    session: aiohttp.ClientSession
    emu: RunningEmulator
    client: ClientConfig = field(default_factory=ClientConfig)
    token: str | None = None

    def token_form(self) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": self.client.client_id,
            "client_secret": self.client.client_secret,
            "scope": "openid,AdobeID",
        }

    async def fetch_token(self) -> str:
        reply = await self.raw("POST", f"{self.emu.ims_url}ims/token/v3", data=self.token_form())
        assert reply.status == 200, reply.body
        self.token = str(reply.body["access_token"])
        return self.token

    async def headers(self) -> dict[str, str]:
        token = self.token or await self.fetch_token()
        return {
            "Authorization": f"Bearer {token}",
            "x-api-key": self.client.client_id,
            "x-gw-ims-org-id": self.client.org_id,
        }

    async def raw(self, method: str, url: str, **kwargs: Any) -> Reply:
        async with self.session.request(method, url, **kwargs) as resp:
            if resp.content_type == "application/json":
                body: Any = await resp.json()
            else:
                body = await resp.read()
            return Reply(resp.status, resp.headers, body)

    async def call(self, method: str, path: str, **kwargs: Any) -> Reply:
        headers = await self.headers()
        headers.update(kwargs.pop("headers", {}))
        return await self.raw(method, self.emu.base_url + path, headers=headers, **kwargs)

    async def create(self, payload: dict[str, Any]) -> Reply:
        return await self.call("POST", "jobs", json=payload)

    async def control(self, method: str, name: str, body: Any = None) -> Reply:
        return await self.raw(method, f"{self.emu.root_url}_emulator/{name}", json=body)


def payload(
    users: int = 1,
    actions: tuple[str, ...] = ("access",),
    org: str = ORG,
    include: tuple[str, ...] = ("Analytics", "AudienceManager", "profileService"),
    regulation: str = "gdpr",
    prefix: str = "user",
) -> dict[str, Any]:
    """A valid POST /jobs body with ``users`` users."""
    return {
        "companyContexts": [{"namespace": "imsOrgID", "value": org}],
        "users": [
            {
                "key": f"{prefix}{i}",
                "action": list(actions),
                "userIDs": [
                    {"namespace": "email", "value": f"{prefix}{i}@example.com", "type": "standard"},
                    {"namespace": "ECID", "value": f"{i:038d}", "type": "standard"},
                ],
            }
            for i in range(users)
        ],
        "include": list(include),
        "regulation": regulation,
    }


@pytest.fixture
def monotonic() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def config() -> EmulatorConfig:
    return frozen_config()


@pytest.fixture
async def emu(config: EmulatorConfig, monotonic: FakeMonotonic) -> AsyncIterator[RunningEmulator]:
    backend = PrivacyBackend(config, monotonic=monotonic)
    async with await start_emulator(backend=backend) as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def api(session: aiohttp.ClientSession, emu: RunningEmulator) -> Api:
    return Api(session, emu)


@pytest.fixture
def other_api(session: aiohttp.ClientSession, emu: RunningEmulator) -> Api:
    return Api(session, emu, OTHER)
