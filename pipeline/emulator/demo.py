"""Replay the seed document's three requests against an in-process emulator and print the answers.

``python -m pipeline.emulator.demo``: gets a token, lists jobs (``page=2&size=50``), creates the
seed's access/delete jobs, advances the emulator clock, and fetches one job. Identity values in
the printed bodies are the seed's own example values.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, TextIO

import aiohttp

from .config import EmulatorConfig
from .server import RunningEmulator, start_emulator

SEED_PAYLOAD_USERS: list[dict[str, Any]] = [
    {
        "key": "DavidSmith",
        "action": ["access"],
        "userIDs": [
            {"namespace": "email", "value": "dsmith@acme.com", "type": "standard"},
            {
                "namespace": "ECID",
                "type": "standard",
                "value": "443636576799758681021090721276",
                "isDeletedClientSide": False,
            },
        ],
    },
    {
        "key": "user12345",
        "action": ["access", "delete"],
        "userIDs": [
            {"namespace": "email", "value": "ajones@acme.com", "type": "standard"},
            {"namespace": "loyaltyAccount", "value": "12AD45FE30R29", "type": "integrationCode"},
        ],
    },
]


def seed_payload(org_id: str) -> dict[str, Any]:
    """The seed document's POST /jobs example for ``org_id``."""
    return {
        "companyContexts": [{"namespace": "imsOrgID", "value": org_id}],
        "users": SEED_PAYLOAD_USERS,
        "include": ["Analytics", "AudienceManager", "profileService"],
        "expandIds": False,
        "priority": "normal",
        "mergePolicyId": 124,
        "regulation": "ccpa",
    }


async def auth_headers(session: aiohttp.ClientSession, emu: RunningEmulator) -> dict[str, str]:
    """Headers of an authenticated call for the emulator's first client."""
    client = emu.backend.config.clients[0]
    form = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "scope": "openid,AdobeID,read_organizations",
    }
    async with session.post(f"{emu.ims_url}ims/token/v3", data=form) as resp:
        token = (await resp.json())["access_token"]
    return {
        "Authorization": f"Bearer {token}",
        "x-api-key": client.client_id,
        "x-gw-ims-org-id": client.org_id,
    }


def _show(out: TextIO, title: str, status: int, body: Any) -> None:
    out.write(f"\n== {title}\nHTTP {status}\n{json.dumps(body, indent=2)}\n")


async def replay(out: TextIO = sys.stdout) -> list[int]:
    """Run the three requests; returns their HTTP statuses."""
    statuses: list[int] = []
    async with await start_emulator(EmulatorConfig(seed=7)) as emu:
        out.write(f"emulator serving {emu.base_url}\n")
        async with aiohttp.ClientSession() as session:
            headers = await auth_headers(session, emu)
            url = f"{emu.base_url}jobs"
            async with session.get(
                url, params={"regulation": "gdpr", "page": "2", "size": "50"}, headers=headers
            ) as resp:
                statuses.append(resp.status)
                _show(
                    out, "GET jobs?regulation=gdpr&page=2&size=50", resp.status, await resp.json()
                )
            org = emu.backend.config.clients[0].org_id
            async with session.post(url, json=seed_payload(org), headers=headers) as resp:
                created = await resp.json()
                statuses.append(resp.status)
                _show(out, "POST jobs (access/delete)", resp.status, created)
            emu.backend.advance(4 * 86_400)
            headers = await auth_headers(session, emu)  # the old token expired with the advance
            job_id = created["jobs"][0]["jobId"]
            async with session.get(f"{url}/{job_id}", headers=headers) as resp:
                statuses.append(resp.status)
                _show(
                    out,
                    f"GET jobs/{job_id} (clock advanced 4 days)",
                    resp.status,
                    await resp.json(),
                )
    return statuses


def main() -> int:
    """Entry point: 0 when the three answers are 200, 202 and 200."""
    statuses = asyncio.run(replay())
    return 0 if statuses == [200, 202, 200] else 1


if __name__ == "__main__":
    sys.exit(main())
