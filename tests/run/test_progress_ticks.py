"""Off a terminal, a run's progress lines keep their interval while one call takes long.

The engine runs the reporter's ``tick`` beside the run, on the run's clock. Here that clock is
a stepping one: each wait lets the event loop run for 10 ms of real time, then moves the clock
by the wait's length. Every API call of the emulator takes 0.5 s, so
one POST in flight, and then one list call, each span many 30-second intervals of that clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.run import assert_every_row_once, run_cli, write_config, write_subjects


class SteppingClock:
    """A clock that a sleeper moves by the length of its sleep after 10 ms of real time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.start = datetime.now(UTC)

    def monotonic(self) -> float:
        return self.now

    def utc_now(self) -> datetime:
        return self.start + timedelta(seconds=self.now)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0.01)
        self.now += seconds


def test_progress_lines_keep_coming_while_a_post_and_a_sweep_are_in_flight(
    tmp_path: Path,
    emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emu = emulator_factory(faults={"latency_s": [0.5, 0.5]})
    n = 10
    write_subjects(tmp_path / "in.csv", n, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml", poll={"interval_s": 0.1})
    clock = SteppingClock()
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(tmp_path)]
    argv += ["--run-dir", str(tmp_path / "run"), "--yes"]
    code = run_cli(argv, emu.env, monkeypatch, clock=clock)
    assert code == 0
    assert_every_row_once(tmp_path / "run", n)
    lines = [line for line in capsys.readouterr().err.splitlines() if "progress:" in line]
    posting = [line for line in lines if f"submitted 0/{n}," in line]
    polling = [line for line in lines if f"submitted {n}/{n}, terminal 0/{n}," in line]
    # a POST of 0.5 s (50 ticks of 10 ms), then list and GET calls: 10 minutes each at least
    assert len(posting) >= 20, f"{len(posting)} lines while the POST was in flight"
    assert len(polling) >= 20, f"{len(polling)} lines while polling"
    assert emu.stats()["requests"]["POST jobs"] == {"202": 1}
