"""Report writing stays in bounded memory on a large journal (measured in a fresh process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .measure import measure


@pytest.mark.slow
def test_reports_of_20000_subjects_stream_in_bounded_memory(tmp_path: Path) -> None:
    result = measure(20_000, tmp_path)
    assert result["status_rows"] == 40_000
    assert result["products_rows"] == 3 * 24_000  # 60% of the jobs are complete
    # about 80 MB is the interpreter with pyarrow; 100,000 subjects measure the same peak
    assert result["peak_rss_mb"] < 300, result
