"""Suite-wide plugin: the privacy scan (see ``tests/privacy/scan.py``).

Every test gets a scan; tests and shared helpers register the identity values, tokens and
secrets they used, and the test fails at teardown if any of them appears in its output, logs,
exception messages or reports.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest.capture import CaptureFixture

from tests.privacy import scan as privacy

pytest_plugins = ["pytester"]  # tests/privacy runs the plugin on tests that leak

_SCAN = pytest.StashKey[privacy.PrivacyScan]()


@pytest.fixture(autouse=True)
def own_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own directory: a default workspace (``./dsar-runs``, with its
    daily-cap ledger and its registry of earlier submissions) never joins two tests, two
    pytest workers, or a test and the checkout. Repository files are read by absolute path."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def privacy_scan(request: pytest.FixtureRequest) -> Iterator[privacy.PrivacyScan]:
    """The running test's privacy scan; ``privacy_scan.register(values)`` adds to it."""
    scan = privacy.begin()
    request.node.stash[_SCAN] = scan
    original = CaptureFixture.readouterr

    def readouterr(self: CaptureFixture[Any]) -> Any:
        result = original(self)
        scan.add_text("captured stdout", str(result.out))
        scan.add_text("captured stderr", str(result.err))
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CaptureFixture, "readouterr", readouterr)
        yield scan
    tmp = request.node.funcargs.get("tmp_path")
    if tmp is not None:
        scan.files_under(tmp)
    privacy.end(scan)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    scan = item.stash.get(_SCAN, None)
    if scan is None:
        return
    scan.add_text(f"{report.when} stdout", report.capstdout)
    scan.add_text(f"{report.when} stderr", report.capstderr)
    scan.add_text(f"{report.when} log", report.caplog)
    if call.excinfo is not None:
        scan.add_text("an exception message", str(call.excinfo.value))
    if report.when == "teardown" and report.passed:
        hits = scan.hits()
        if hits:
            report.outcome = "failed"
            report.longrepr = "privacy scan: " + "; ".join(hits)
