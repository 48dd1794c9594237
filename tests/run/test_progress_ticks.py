"""Off a terminal, a run's progress lines keep their interval while one call takes long.

The engine runs the reporter's ``tick`` beside the run, on the run's clock. Here that clock is
a stepping one: each wait lets the event loop run for 10 ms of real time, then moves the clock
by the wait's length. The emulator holds every API call until the run has written
``HELD_LINES`` more progress lines (observed, not timed: a loaded machine only makes it slower),
so one POST in flight, and then each polling call, spans many 30-second intervals of that clock;
a ticker that waited for the call would write no line and the call would never be answered.
"""

from __future__ import annotations

import asyncio
import logging
import time
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import pipeline.emulator.gateway as gateway
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


HELD_LINES = 22
HOLD_LIMIT_S = 60.0  # real seconds: a safety net; the assertions below then fail


class LineCounter(logging.Handler):
    """Counts the progress lines the run writes (read by the emulator's thread)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += record.getMessage().startswith("progress:")


def hold_calls_for_progress_lines(counter: LineCounter) -> types.SimpleNamespace:
    """The gateway's ``asyncio`` for its injected latency: a call waits for lines, not time."""
    real_sleep = asyncio.sleep

    async def held(_delay: float) -> None:
        until = counter.lines + HELD_LINES
        give_up = time.monotonic() + HOLD_LIMIT_S
        while counter.lines < until and time.monotonic() < give_up:
            await real_sleep(0.001)

    return types.SimpleNamespace(sleep=held)


def test_progress_lines_keep_coming_while_a_post_and_a_sweep_are_in_flight(
    tmp_path: Path,
    emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    counter = LineCounter()
    logging.getLogger("dsar.progress").addHandler(counter)
    monkeypatch.setattr(gateway, "asyncio", hold_calls_for_progress_lines(counter))
    emu = emulator_factory(faults={"latency_s": [0.5, 0.5]})  # held, see the docstring
    n = 10
    write_subjects(tmp_path / "in.csv", n, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml", poll={"interval_s": 0.1})
    clock = SteppingClock()
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(tmp_path)]
    argv += ["--run-dir", str(tmp_path / "run"), "--yes"]
    try:
        code = run_cli(argv, emu.env, monkeypatch, clock=clock)
    finally:
        logging.getLogger("dsar.progress").removeHandler(counter)
    assert code == 0
    assert_every_row_once(tmp_path / "run", n)
    lines = [line for line in capsys.readouterr().err.splitlines() if "progress:" in line]
    posting = [line for line in lines if f"submitted 0/{n}," in line]
    polling = [line for line in lines if f"submitted {n}/{n}, terminal 0/{n}," in line]
    # the POST, then list and GET calls: each held for HELD_LINES lines (10 minutes at least)
    assert len(posting) >= 20, f"{len(posting)} lines while the POST was in flight"
    assert len(polling) >= 20, f"{len(polling)} lines while polling"
    assert emu.stats()["requests"]["POST jobs"] == {"202": 1}
