"""``dsar bench --quick``: every section runs, prints its table and writes bench.json.

The figures themselves are not asserted (they depend on the machine); their shape is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.bench import SECTIONS
from pipeline.cli.main import main

FIGURE_KEYS = {"section", "name", "value", "unit", "baseline", "baseline_name", "target", "ok"}


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_quick_bench_prints_a_table_and_writes_every_section_to_bench_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    code = main(["bench", "--quick", "--out", str(out)])
    assert code in (0, 1)  # 1 only when a figure misses its target
    table = capsys.readouterr().out
    header = table.splitlines()[0].split()
    assert header == ["section", "figure", "value", "baseline", "target", "ok"]
    report = json.loads(out.read_text())
    assert report["quick"] is True
    figures = report["figures"]
    assert {f["section"] for f in figures} == set(SECTIONS)
    for figure in figures:
        assert set(figure) >= FIGURE_KEYS
        assert isinstance(figure["value"], int | float)
        assert figure["value"] >= 0
        assert figure["name"] in table
