"""``dsar bench``: measure this machine, each figure beside a baseline from the same run.

Sections are pluggable: a section is a module under ``pipeline.bench`` named in
:data:`SECTIONS` whose ``run(quick: bool, workdir: Path) -> list[Figure]`` measures something.
Another part of dsar adds its section by adding its module name here.

May import: kernel, api, input, journal, run, emulator.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from ..errors import ConfigError

# section name -> module (relative to this package) with a ``run(quick, workdir)`` function
SECTIONS: dict[str, str] = {
    "input": ".input",
    "e2e": ".e2e",
    "polling": ".polling",
    "rate": ".rate",
    "resume": ".resume",
    "recurring": ".recurring",
    "multiorg": ".multiorg",
}


@dataclass(frozen=True)
class Figure:
    """One measured figure, with the baseline it should be read against and its target."""

    section: str
    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    ok: bool | None = None  # None when there is no target


def _num(value: float) -> str:
    """Whole numbers from 100 up, three significant digits below (ratios, seconds, shares)."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def render_table(figures: Sequence[Figure]) -> str:
    """The figures as an aligned text table."""
    header = ("section", "figure", "value", "baseline", "target", "ok")
    rows = [header]
    for f in figures:
        baseline = f"{_num(f.baseline)} ({f.baseline_name})" if f.baseline is not None else ""
        ok = "" if f.ok is None else ("yes" if f.ok else "NO")
        rows.append((f.section, f.name, f"{_num(f.value)} {f.unit}", baseline, f.target, ok))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def run_bench(*, quick: bool, only: Sequence[str] = (), out: Path | None = None) -> int:
    """Run the chosen sections (all by default); print the table, write JSON to ``out``.

    Returns 0 when every figure with a target meets it, 1 otherwise.
    """
    unknown = [name for name in only if name not in SECTIONS]
    if unknown:
        raise ConfigError(f"unknown bench section(s) {unknown}; known: {', '.join(SECTIONS)}")
    figures: list[Figure] = []
    started = time.time()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="dsar-bench-") as tmp:
        for name in only or tuple(SECTIONS):
            module = importlib.import_module(SECTIONS[name], __name__)
            figures.extend(module.run(quick, Path(tmp) / name))
    load_after = os.getloadavg()
    print(render_table(figures))
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}: other")
    print("processes on this machine slow every figure; compare each with its baseline")
    if out is not None:
        report = {
            "quick": quick,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_1min": {"before": load_before[0], "after": load_after[0]},
            "figures": [asdict(f) for f in figures],
        }
        out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0 if all(f.ok is not False for f in figures) else 1
