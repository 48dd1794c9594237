"""Progress output: plain lines off a terminal at a fixed interval of the injected clock,
rates over a window."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
import logging
import re

import pytest

from pipeline.run.progress import Counts, ProgressReporter, WindowedRate
from tests.helpers.vclock import VirtualClock


def test_plain_lines_are_rate_limited_and_final_line_always_shows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    reporter = ProgressReporter(stream=io.StringIO(), every_s=30, clock=lambda: now[0])
    counts = Counts(jobs_total=10, submitted=4, terminal=2, downloads_total=5, downloaded=1)
    with caplog.at_level(logging.INFO, logger="dsar.progress"), reporter:
        reporter.update(counts)
        now[0] = 10
        reporter.update(counts)
        now[0] = 31
        reporter.update(counts)
        reporter.update(counts, final=True)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert "submitted 4/10, terminal 2/10, downloaded 1/5" in lines[0]


def test_a_terminal_gets_bars_not_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    counts = Counts(jobs_total=10, submitted=10, terminal=10, downloads_total=0, downloaded=0)
    with (
        caplog.at_level(logging.INFO, logger="dsar.progress"),
        ProgressReporter(stream=stream) as reporter,
    ):
        reporter.update(counts, final=True)
    assert not caplog.records
    assert "submitted" in stream.getvalue()


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "dsar.progress"]


def test_the_rate_covers_the_last_minute_and_not_what_a_resumed_run_did_before() -> None:
    rate = WindowedRate(window_s=60, min_span_s=5)
    rate.observe(0.0, 10_000)  # a resumed run: 10,000 jobs were terminal before it started
    rate.observe(0.001, 10_000)
    assert rate.rate() is None  # no span yet: no rate, never 10,000 jobs in a millisecond
    rate.observe(30.0, 10_300)
    assert rate.rate() == pytest.approx(10.0)
    for t in range(31, 91):
        rate.observe(float(t), 10_300 + 2 * (t - 30))  # 2 jobs/s for a minute
    assert rate.rate() == pytest.approx(2.0, rel=0.05)
    rate.observe(160.0, 10_420)  # stalled for 70 s: the window sees no progress
    assert rate.rate() == pytest.approx(0.0)


def test_a_resumed_run_shows_no_rate_first_and_then_only_its_own_pace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    reporter = ProgressReporter(stream=io.StringIO(), every_s=30, clock=lambda: now[0])
    done = Counts(
        jobs_total=20_000, submitted=20_000, terminal=16_000, downloads_total=0, downloaded=0
    )
    with caplog.at_level(logging.INFO, logger="dsar.progress"), reporter:
        reporter.update(done)
        now[0] = 30.0
        reporter.update(dataclasses.replace(done, terminal=16_600))
    first, second = _lines(caplog)
    assert "terminal 16000/20000" in first
    assert ", - jobs/s, eta -" in first
    assert "20.0 jobs/s, eta 170s" in second


def test_plain_lines_come_every_30_s_of_a_10_minute_stall_on_the_reporters_clock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """tick() is what the engine runs beside the run: a sweep, a download or a POST that
    takes 10 minutes (here on a virtual clock) still gets a line every 30 s."""
    clock = VirtualClock(start=0.0)
    reporter = ProgressReporter(
        stream=io.StringIO(), every_s=30, clock=clock.monotonic, sleep=clock.sleep
    )

    def read() -> Counts:  # terminal = the virtual second the counts were read at
        return Counts(
            jobs_total=10**6,
            submitted=10**6,
            terminal=int(clock.now),
            downloads_total=0,
            downloaded=0,
        )

    async def stalled_run() -> None:
        ticker = asyncio.ensure_future(reporter.tick(read))
        await clock.sleep(600.0)  # one call in flight for 10 minutes
        ticker.cancel()

    with caplog.at_level(logging.INFO, logger="dsar.progress"), reporter:
        asyncio.run(clock.run(stalled_run(), limit_s=700.0))
    times = [int(re.search(r"terminal (\d+)/", line).group(1)) for line in _lines(caplog)]
    assert times[0] == 0
    assert times[-1] >= 570
    assert len(times) >= 20
    assert max(b - a for a, b in itertools.pairwise(times)) <= 30


@pytest.mark.parametrize("start", [0.0, 504.515581501757, 0.1])
def test_tick_awaits_between_lines_on_a_clock_that_moves_only_when_awaited(
    start: float, caplog: pytest.LogCaptureFixture
) -> None:
    # 504.515581501757 + 30 - 534.515581501757 <= 0 while 534.515581501757 - 504.515581501757
    # < 30: two forms of "is a line due" disagreed there and tick spun without awaiting
    # (seen in CI as a run frozen for 300 s); each read must be followed by a wait
    now = [start]
    reads: list[float] = []
    fifty = asyncio.Event()

    async def sleep(seconds: float) -> None:
        now[0] += seconds
        await asyncio.sleep(0)

    def read() -> Counts:
        if reads and reads[-1] == now[0]:
            raise AssertionError(f"tick read twice at {now[0]!r} without awaiting")
        reads.append(now[0])
        if len(reads) >= 50:
            fifty.set()
        return Counts(jobs_total=1, submitted=0, terminal=0, downloads_total=0, downloaded=0)

    async def main() -> None:
        reporter = ProgressReporter(
            stream=io.StringIO(), every_s=30, clock=lambda: now[0], sleep=sleep
        )
        task = asyncio.create_task(reporter.tick(read))
        enough = asyncio.ensure_future(fifty.wait())
        await asyncio.wait({task, enough}, return_when=asyncio.FIRST_COMPLETED)
        enough.cancel()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task  # an AssertionError of read() surfaces here instead

    with caplog.at_level(logging.INFO, logger="dsar.progress"):
        asyncio.run(main())
    assert len(_lines(caplog)) >= 50
