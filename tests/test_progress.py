"""Progress output: plain lines off a terminal, rate-limited by the injected clock."""

from __future__ import annotations

import io
import logging

import pytest

from pipeline.progress import Counts, ProgressReporter


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
