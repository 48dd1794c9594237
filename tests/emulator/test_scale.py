"""Scale: a million jobs held under 1.5 GB peak RSS, with list and get in milliseconds."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipeline.emulator.scale import measure


def test_a_small_fill_lists_and_gets_every_job() -> None:
    figures = measure(4_000)
    assert figures["jobs"] == 4_000
    assert figures["get_job_ms"]["max"] < 50


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_million_jobs_fit_in_memory_and_answer_in_milliseconds() -> None:
    # A separate process, so that peak RSS is the emulator's alone.
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.emulator.scale", "--jobs", "1000000"],
        capture_output=True,
        text=True,
        check=True,
        timeout=110,
    ).stdout
    figures = json.loads(out)
    assert figures["jobs"] == 1_000_000
    assert figures["peak_rss_mb"] < 1536
    # Generous bounds: the machine is shared; typical figures are ~10 ms and ~0.05 ms.
    assert figures["list_page_1000_ms"]["median"] < 100
    assert figures["list_page_100_ms"]["median"] < 20
    assert figures["get_job_ms"]["median"] < 2
