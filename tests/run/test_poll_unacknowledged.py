"""The poller and jobs the products have not acknowledged yet (status still ``submitted``).

The emulator's ``status=processing`` returns only ``processing`` jobs (the seed), so these
jobs are on no processing list; the poller must still account for every one of them without
a GET per job, and give each job exactly one GET once it is done.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pipeline.run.runner import run_poller
from tests.helpers.run import Emu, run_cli, write_config, write_subjects

HOUR = 3_600


def _slow_ack_emulator(emulator_factory: Any) -> Emu:
    """Frozen clock; products acknowledge 1 to 2 h after creation and finish a day later."""
    emu: Emu = emulator_factory(
        clock_frozen=True,
        clock_start="2026-03-02T09:00:00",
        token_lifetime_s=30 * 86_400,
        simulation={
            "time_scale": 1.0,
            "ack_delay_s": [HOUR, 2 * HOUR],
            "processing_s": [86_400.0, 86_400.0],
        },
    )
    return emu


def _calls(emu: Emu, endpoint: str) -> int:
    return sum(emu.stats()["requests"].get(endpoint, {}).values())


async def _rounds(emu: Emu, run_dir: Path, advances_s: list[float]) -> list[dict[str, Any]]:
    """Advance the emulator clock and run one poll round per entry; what each round left."""
    seen: list[dict[str, Any]] = []
    async with run_poller(run_dir, emu.env) as poller:
        for seconds in advances_s:
            emu.control("advance", {"seconds": seconds})
            await poller.round()
            seen.append(
                {
                    "jobs": dict(poller.ctx.journal.counts().jobs),
                    "gets": _calls(emu, "GET jobs/{jobId}"),
                    "lists": _calls(emu, "GET jobs"),
                }
            )
    return seen


@pytest.mark.timeout(120)
def test_jobs_not_yet_acknowledged_are_followed_without_a_get_until_they_finish(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = _slow_ack_emulator(emulator_factory)
    write_subjects(tmp_path / "in.csv", 40)
    cfg = write_config(tmp_path / "c.toml")
    run_dir = tmp_path / "run"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--run-dir", str(run_dir)]
    argv += ["--workspace", str(tmp_path / "ws"), "--no-wait"]
    assert run_cli(argv, emu.env, monkeypatch) == 4
    jobs = emu.stats()["jobs_created"]
    lists_before, gets_before = _calls(emu, "GET jobs"), _calls(emu, "GET jobs/{jobId}")
    # now: every job submitted; +1.5 h: some acknowledged; +2.1 h: all processing; +2 days: done
    rounds = asyncio.run(_rounds(emu, run_dir, [0, 1.5 * HOUR, 0.6 * HOUR, 2 * 86_400]))
    unacknowledged, mixed, acknowledged, done = rounds
    for state in (unacknowledged, mixed, acknowledged):
        assert state["gets"] == gets_before  # no job was taken for finished, none was lost
        assert state["jobs"]["submitted"] + state["jobs"]["processing"] == jobs
    assert unacknowledged["jobs"]["submitted"] == jobs
    assert 0 < mixed["jobs"]["processing"] < jobs
    assert acknowledged["jobs"]["processing"] == jobs
    assert done["jobs"]["submitted"] + done["jobs"]["processing"] == 0
    assert done["gets"] - gets_before == jobs  # exactly one GET per job, once it is done
    # one list call per round (fewer jobs than a page), plus the one that read the service's date
    assert done["lists"] - lists_before <= len(rounds) + 1
