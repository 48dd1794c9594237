"""The suite-wide privacy scan itself: it fails a test whose output or reports leak."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.privacy.scan import PrivacyScan

REPO = Path(__file__).resolve().parents[2]


def test_a_registered_value_in_output_or_a_report_is_a_hit_naming_the_place_not_the_value(
    tmp_path: Path,
) -> None:
    scan = PrivacyScan()
    scan.register(["alice.leak@example.org"])
    scan.register(["emu-abcdefghijklmnop"], "token")
    scan.register(["short"])  # too short to scan for without false hits
    scan.add_text("captured stderr", "INFO sent 3 jobs for alice.leak@example.org")
    scan.add_text("captured stdout", "all fine, short and sweet")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text('{"auth": "emu-abcdefghijklmnop"}')
    scan.files_under(tmp_path)
    hits = scan.hits()
    assert hits == [
        "identity value found in captured stderr",
        "token value found in summary.json",
    ]
    assert not any("alice" in hit for hit in hits)


def test_the_plugin_fails_tests_that_leak_and_passes_the_others(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makepyfile(
        test_inner="""
import logging
from tests.privacy import scan

def test_prints_an_identity(capsys):
    scan.register(["leaky.person@example.org"])
    print("hello leaky.person@example.org")
    assert capsys.readouterr().out  # read by the test: still scanned

def test_writes_a_token_into_summary_json(tmp_path):
    scan.register(["emu-token-abcdefgh"], "token")
    (tmp_path / "summary.json").write_text('{"t": "emu-token-abcdefgh"}')

def test_logs_to_stderr_an_identity():
    scan.register(["logged.person@example.org"])
    logging.getLogger("x").warning("user logged.person@example.org")

def test_quiet(tmp_path):
    scan.register(["quiet.person@example.org"])
    (tmp_path / "summary.json").write_text('{"rows": 1}')
    print("nothing to see")
"""
    )
    result = pytester.runpytest_subprocess("-p", "tests.conftest", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, errors=3)
    text = result.stdout.str()
    assert "identity value found in captured stdout" in text
    assert "token value found in summary.json" in text
    assert "identity value found in call log" in text
    assert "leaky.person@example.org" not in text.split("short test summary")[-1]
