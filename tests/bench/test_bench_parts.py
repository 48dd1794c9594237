"""The benchmark's own plumbing: inputs, config, the emulator process and its first-call watch."""

from __future__ import annotations

import time
import tomllib
import urllib.parse
import urllib.request
from pathlib import Path

import pyarrow.csv as pcsv
import pytest

from pipeline.bench.children import dsar_config, run_dsar, write_subjects_csv
from pipeline.bench.emuproc import NO_LIMITS, EmulatorProcess
from pipeline.bench.rate import LIMIT_RPS, Outcome
from pipeline.settings import load_settings


def test_subject_files_hold_one_clean_row_per_subject(tmp_path: Path) -> None:
    path = write_subjects_csv(tmp_path / "s.csv", 5, action="access+delete")
    table = pcsv.read_csv(path)
    assert table.column_names == ["subject_key", "email", "action"]
    assert table.num_rows == 5
    assert len(set(table.column("subject_key").to_pylist())) == 5
    assert set(table.column("action").to_pylist()) == {"access+delete"}


def test_the_bench_config_lifts_dsar_limits_and_keeps_extra_sections(tmp_path: Path) -> None:
    path = dsar_config(tmp_path / "c.toml", poll={"page_size": 500})
    tomllib.loads(path.read_text())  # valid TOML
    settings = load_settings(path, env={})
    assert settings.limits.daily_job_cap == 1_000_000_000
    assert settings.poll.page_size == 500
    assert settings.poll.interval_s == 0.5


@pytest.mark.slow
def test_a_dsar_child_is_measured_on_its_own(tmp_path: Path) -> None:
    source = write_subjects_csv(tmp_path / "s.csv", 20)
    result = run_dsar(["validate", str(source), "--out", str(tmp_path / "v")], {}, tmp_path / "l")
    assert result.exit_code == 0, result.stderr_tail
    assert result.cpu_s > 0
    assert 20 < result.peak_rss_mb < 2_000


@pytest.mark.slow
def test_the_emulator_process_reports_the_first_call_of_a_watched_endpoint() -> None:
    with EmulatorProcess({"limits": dict(NO_LIMITS)}) as emu:
        assert emu.wait_seen(0.01) is None
        emu.watch("POST ims/token/v3")
        before = time.monotonic()
        form = {
            "grant_type": "client_credentials",
            "client_id": emu.urls["client_id"],
            "client_secret": emu.urls["client_secret"],
            "scope": "openid",
        }
        data = urllib.parse.urlencode(form).encode()
        with urllib.request.urlopen(emu.urls["ims_url"] + "ims/token/v3", data, timeout=10):
            pass
        seen = emu.wait_seen(10)
        assert seen is not None
        assert before <= seen <= time.monotonic()
        assert emu.requests() == {"POST ims/token/v3": 1}
        assert emu.cpu_s() > 0


def test_utilisation_is_successes_per_second_over_the_limit() -> None:
    outcome = Outcome(ok=LIMIT_RPS * 10, throttled=LIMIT_RPS * 30, elapsed_s=20.0)
    assert outcome.utilisation == 50.0
    assert outcome.throttled_share == 75.0
    assert Outcome(ok=0, throttled=0, elapsed_s=0.0).utilisation == 0.0
