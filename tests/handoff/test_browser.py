"""report.html in a real browser: headless Chromium, network blocked, opened from disk.

The page must render its headline counts (equal to summary.json), request nothing but its own
file, and log no console error. A control page with an external image proves that the test
would see a request that fails. Runs whenever ``chromium`` is on PATH; in CI (``CI=true``) a
missing browser is a failure, elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from .cdp import chromium_path, launch
from .rundir import SyntheticRun

pytestmark = pytest.mark.slow

if chromium_path() is None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI must run the browser test: chromium is not installed", pytrace=False)
    pytest.skip(
        "chromium is not installed (apt-get install chromium); CI runs this test",
        allow_module_level=True,
    )

_COUNTS_JS = """JSON.stringify(Object.fromEntries(
  [...document.querySelectorAll('[id^="count-"]')].map(card => [
    card.id.slice(6),
    {text: card.querySelector('dd').textContent, value: card.querySelector('dd').dataset.count,
     visible: card.getBoundingClientRect().width > 0}])))"""


async def test_report_renders_offline_with_the_summary_counts_and_no_errors(
    run: SyntheticRun, tmp_path: Path
) -> None:
    report = run.run_dir / "report.html"
    shot = run.run_dir.parent / "report.png"
    async with launch(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.open(report.as_uri())
        shown = await page.evaluate(_COUNTS_JS)
        title = await page.evaluate("document.title")
        svgs = await page.evaluate("document.querySelectorAll('svg').length")
        png = await page.screenshot()
    await asyncio.to_thread(shot.write_bytes, png)  # kept beside the run for a human to look at
    counts = dict(run.summary["counts"]["status"], total=run.summary["counts"]["total"])
    cards = json.loads(shown)
    assert {k: int(v["value"]) for k, v in cards.items()} == counts
    assert {k: v["text"] for k, v in cards.items()} == {k: f"{n:,}" for k, n in counts.items()}
    assert all(v["visible"] for v in cards.values())
    assert title == f"DSAR run {run.summary['run_id']}"
    assert svgs >= 4
    assert page.record.requests == [report.as_uri()]
    assert page.record.failed == []
    assert page.record.console_errors == []
    assert page.record.exceptions == []
    assert len(png) > 10_000
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


async def test_a_page_that_reaches_for_the_network_is_caught(tmp_path: Path) -> None:
    page_file = tmp_path / "leaky.html"
    page_file.write_text(
        '<!DOCTYPE html><html><body><img src="http://example.com/pixel.png">'
        "<script>console.error('boom')</script></body></html>"
    )
    async with launch(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.open(page_file.as_uri())
    assert "http://example.com/pixel.png" in page.record.requests
    assert [f["errorText"] for f in page.record.failed]  # the dead proxy refused it
    assert page.record.console_errors
