"""Shared helpers for run-engine tests: an emulator on its own thread, inputs, and a CLI runner.

Each emulator of :func:`emulator_factory` runs on its own :class:`RunClock`, and
:func:`run_cli` drives dsar on the clock of the emulator its environment points at: the
run's waits (poll interval, back-offs, ``--max-runtime``) and the emulator's job timeline move
together in virtual time, so runs do not wait in real time.
"""

from __future__ import annotations

import builtins
import json
import random
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.api.clock import Clock
from pipeline.cli.main import main
from pipeline.emulator import EmulatorConfig, EmulatorServer
from tests.helpers.runclock import RunClock, virtual_backend
from tests.privacy import scan as privacy

# Simulated processing of minutes to an hour: with a simulated day per real second, every job
# is done within ~0.05 s of real time, so runs finish fast without touching the clock.
FAST_SIMULATION = {"ack_delay_s": [1.0, 60.0], "processing_s": [60.0, 3600.0]}


@dataclass
class Emu:
    """A running emulator, the clock it runs on, and what a dsar process needs to talk to it."""

    server: EmulatorServer
    env: dict[str, str]
    clock: RunClock | None = None  # None: the emulator runs on the real clock

    def control(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Call ``/_emulator/<path>`` (POST with a JSON body, GET without)."""
        url = f"{self.server.root_url}_emulator/{path}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def stats(self) -> dict[str, Any]:
        """The emulator's request and job statistics."""
        result: dict[str, Any] = self.control("stats")
        return result


# base URL of a running emulator_factory emulator -> the clock it runs on
_CLOCKS: dict[str, RunClock] = {}


def emulator_config(**changes: Any) -> EmulatorConfig:
    """A deterministic emulator config with fast jobs and no rate limit, plus ``changes``."""
    base: dict[str, Any] = {
        "seed": 7,
        "simulation": dict(FAST_SIMULATION),
        "limits": {"requests_per_second": 0},
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return EmulatorConfig().updated(base)


def env_for(server: EmulatorServer) -> dict[str, str]:
    """The environment that points dsar at ``server`` with its default client."""
    client = server.config.clients[0]
    return {
        "DSAR_API_BASE_URL": server.base_url,
        "DSAR_IMS_URL": server.ims_url,
        "ADOBE_CLIENT_ID": client.client_id,
        "ADOBE_CLIENT_SECRET": client.client_secret,
        "ADOBE_ORG_ID": client.org_id,
    }


@pytest.fixture
def emulator_factory() -> Iterator[Any]:
    """Start emulators with :func:`emulator_config` changes; all are stopped at the end."""
    started: list[EmulatorServer] = []

    def start(**changes: Any) -> Emu:
        clock = RunClock()
        backend = virtual_backend(emulator_config(**changes), clock)
        server = EmulatorServer(backend=backend).start()
        started.append(server)
        _CLOCKS[server.base_url] = clock
        return Emu(server=server, env=env_for(server), clock=clock)

    yield start
    for server in started:
        _CLOCKS.pop(server.base_url, None)
        server.stop()
        # the privacy scan looks for every token the emulator issued, and the client secret
        privacy.register((token for token, _, _ in server.backend.tokens.items()), "token")
        privacy.register((c.client_secret for c in server.config.clients), "secret")


def write_subjects(
    path: Path,
    n: int,
    *,
    seed: int = 1,
    actions: tuple[str, ...] = ("access", "delete", "access+delete"),
    bad_every: int = 0,
    orgs: tuple[str, ...] = (),
) -> list[str]:
    """A wide CSV of ``n`` subjects (email + ECID); returns the identity values written.

    Every ``bad_every``-th row (when set) carries an invalid email, to be rejected. With
    ``orgs`` an ``org`` column deals the rows to those ``[[orgs]]`` names in turn.
    """
    rng = random.Random(seed)
    values: list[str] = []
    with path.open("w", encoding="utf-8") as fh:
        fh.write("subject_key,email,ecid,action" + (",org\n" if orgs else "\n"))
        for i in range(n):
            email = f"person.{i}.{rng.randrange(10**6)}@example.org"
            if bad_every and i % bad_every == bad_every - 1:
                email = f"broken-{i}-at-example.org"
            ecid = "".join(rng.choice("0123456789") for _ in range(38))
            values += [email, ecid]
            org = f",{orgs[i % len(orgs)]}" if orgs else ""
            fh.write(f"S{i:07d},{email},{ecid},{rng.choice(actions)}{org}\n")
    privacy.register(values)
    return values


def write_config(path: Path, **sections: Mapping[str, Any]) -> Path:
    """A TOML config with fast polling and a high request rate, plus ``sections``."""
    merged: dict[str, dict[str, Any]] = {
        "poll": {"interval_s": 0.2},
        "limits": {"requests_per_second": 1000, "max_in_flight": 16},
    }
    for name, body in sections.items():
        merged.setdefault(name, {}).update(body)
    lines = []
    for name, body in merged.items():
        lines.append(f"[{name}]")
        for key, value in body.items():
            lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_cli(
    argv: list[str],
    env: Mapping[str, str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    clock: Clock | None = None,
) -> int:
    """``dsar ARGV`` in-process with ``env`` set, on ``clock`` (default: the clock of the
    :func:`emulator_factory` emulator that ``env`` points at, else the real one); returns the
    exit code."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    clock = clock or _CLOCKS.get(env.get("DSAR_API_BASE_URL", ""))
    return main(argv) if clock is None else main(argv, clock=clock)


def accounted_rows(run_dir: Path) -> tuple[list[int], list[int]]:
    """(input rows in status.parquet, one entry per subject; input rows in rejects.parquet)."""
    status = pq.read_table(
        run_dir / "status.parquet", columns=["subject_key", "part", "input_rows"]
    )
    seen: dict[tuple[str, int], list[int]] = {}
    for row in status.to_pylist():
        seen.setdefault((row["subject_key"], row["part"]), row["input_rows"] or [])
    planned = [r for rows in seen.values() for r in rows]
    rejects = pq.read_table(run_dir / "rejects.parquet", columns=["input_row"])
    return planned, rejects.column("input_row").to_pylist()


def assert_every_row_once(run_dir: Path, n_rows: int) -> None:
    """Every data row of the input is in exactly one subject of status.parquet or in rejects."""
    planned, rejected = accounted_rows(run_dir)
    together = sorted(planned + rejected)
    assert together == list(range(n_rows)), "input rows lost or duplicated"


def only_run(workspace: Path) -> Path:
    """The one run directory of ``workspace`` (its ``dataset`` of every run and its hidden
    folders are not runs)."""
    runs = [
        p
        for p in workspace.iterdir()
        if p.is_dir() and p.name != "dataset" and not p.name.startswith(".")
    ]
    assert len(runs) == 1
    return runs[0]


def posts(emu: Emu) -> int:
    """Every POST that could act on a person's data (jobs and consent), whatever its answer."""
    requests = emu.stats()["requests"]
    return sum(
        sum(by.values())
        for ep, by in requests.items()
        if ep.startswith("POST ") and ("jobs" in ep or "consent" in ep)
    )


def fake_terminal(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    """stdin turns a terminal whose user answers ``answers`` in turn; returns the prompts
    asked (filled in as they are asked)."""
    asked: list[str] = []
    replies = iter(answers)

    def answer(prompt: str) -> str:
        asked.append(prompt)
        return next(replies)

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(builtins, "input", answer)
    return asked


# emulator [[clients]] for runs with [[orgs]] tables: name -> client settings
ORG_CLIENTS: dict[str, dict[str, str]] = {
    name: {
        "client_id": f"{name}-id",
        "client_secret": f"{name}-secret-value",
        "org_id": f"{name.upper()}@AdobeOrg",
    }
    for name in ("eu", "us", "apac")
}


def org_tables(names: tuple[str, ...], **per_org: Mapping[str, Any]) -> str:
    """``[[orgs]]`` tables for the :data:`ORG_CLIENTS` of ``names`` (variables NAME_ID and
    NAME_SECRET), plus each org's extra keys in ``per_org``."""
    out = []
    for name in names:
        body = {
            "name": name,
            "org_id": ORG_CLIENTS[name]["org_id"],
            "client_id_env": f"{name.upper()}_ID",
            "client_secret_env": f"{name.upper()}_SECRET",
            **per_org.get(name, {}),
        }
        out.append("[[orgs]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in body.items()))
    return "".join(out)


def org_env(emu: Emu, names: tuple[str, ...], wrong_secret: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment for ``org_tables(names)`` against ``emu`` (no ADOBE_* variables); the
    orgs of ``wrong_secret`` get a secret the emulator refuses."""
    env = {k: emu.env[k] for k in ("DSAR_API_BASE_URL", "DSAR_IMS_URL")}
    for name in names:
        client = ORG_CLIENTS[name]
        env[f"{name.upper()}_ID"] = client["client_id"]
        secret = client["client_secret"]
        env[f"{name.upper()}_SECRET"] = "wrong-" + secret if name in wrong_secret else secret
    privacy.register((env[f"{n.upper()}_SECRET"] for n in names), "secret")
    return env
