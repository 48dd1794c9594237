"""Inline SVG charts: escaped labels, the cap line, and the days still needed."""

from __future__ import annotations

import re
from xml.etree import ElementTree

from pipeline.handoff.charts import cap_chart, line_chart, stacked_bars


def _rects(svg: str) -> list[ElementTree.Element]:
    root = ElementTree.fromstring(svg)
    return [e for e in root.iter() if e.tag.endswith("rect") and e.get("height")]


def test_cap_chart_draws_one_hatched_column_per_day_still_needed() -> None:
    svg = cap_chart([("2026-03-01", 15_000)], 20_000, 45_000, label="cap")
    hatched = [r for r in _rects(svg) if r.get("fill") == "url(#ahead)"]
    assert len(hatched) == 3  # 20,000 + 20,000 + 5,000
    heights = [float(r.get("height", "0")) for r in hatched]
    assert heights[0] == heights[1] > heights[2] > 0
    assert "cap 20,000</text>" in svg
    assert "3 days at the cap" in svg


def test_cap_line_is_replaced_by_a_note_when_the_cap_dwarfs_the_run() -> None:
    svg = cap_chart([("2026-03-01", 58)], 20_000, 43, label="cap")
    assert "<line" not in svg
    assert "cap 20,000: off scale" in svg
    assert "1 day at the cap" in svg


def test_nothing_pending_needs_no_day() -> None:
    svg = cap_chart([("2026-03-01", 10)], 20_000, 0, label="cap")
    assert not [r for r in _rects(svg) if r.get("fill") == "url(#ahead)"]
    assert "0 days at the cap" in svg


def test_labels_are_escaped_and_the_svg_is_well_formed() -> None:
    rows = {"<b>reg</b>": {"complete": 3, "error": 1}}
    svg = stacked_bars(rows, ("complete", "error"), label='A "quoted" <label>')
    ElementTree.fromstring(svg)
    assert "<b>" not in svg
    assert "&lt;b&gt;reg&lt;/b&gt;" in svg
    widths = [float(r.get("width", "0")) for r in _rects(svg) if r.get("y") == "0"]
    assert widths[0] == 3 * widths[1]


def test_line_chart_plots_every_point_of_every_series() -> None:
    svg = line_chart(["d1", "d2", "d3"], {"submitted": [1, 5, 9], "finished": [0, 2, 9]}, label="t")
    ElementTree.fromstring(svg)
    points = re.findall(r'points="([^"]+)"', svg)
    assert [len(p.split()) for p in points] == [3, 3]
