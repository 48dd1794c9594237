"""Bench section ``input``: read + validate + batch, against a read-only baseline.

Each measurement runs in a fresh child process (``python -m pipeline.bench.input``) so that its
peak RSS (``VmHWM`` from ``/proc/self/status``) is its own. The baseline is pyarrow streaming
the same file with the same reader options and doing nothing else, measured in the same run.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from . import Figure
from .children import child_json
from .files import write_subjects

MIN_ROWS_PER_S = 300_000
MAX_RSS_MB = 600
SECTION = "input"


@dataclass(frozen=True)
class Sizes:
    """Rows of the throughput files and of the peak-RSS files."""

    throughput: int
    rss: tuple[tuple[int, str], ...]  # (rows, format)


FULL = Sizes(
    throughput=2_000_000,
    rss=((1_000_000, "csv"), (10_000_000, "csv"), (10_000_000, "parquet")),
)
QUICK = Sizes(throughput=50_000, rss=((50_000, "csv"),))


def measure(path: Path, mode: str) -> dict[str, float]:
    """Run one measurement of ``path`` in a child process.

    ``mode``: "read" (the baseline), "plan" (validate and batch into columnar requests)
    or "typed" (validate and batch into PlannedBatch objects).
    """
    return child_json("pipeline.bench.input", [mode, str(path)])


def _rate(result: dict[str, float]) -> float:
    return result["rows"] / result["wall_s"] if result["wall_s"] else 0.0


def run(quick: bool, workdir: Path) -> list[Figure]:
    """Generate the files, measure them, and return the figures of this section."""
    sizes = QUICK if quick else FULL
    figures: list[Figure] = []
    for fmt in ("csv", "parquet"):
        path = write_subjects(workdir / f"subjects-{sizes.throughput}.{fmt}", sizes.throughput)
        base = measure(path, "read")
        plan = measure(path, "plan")
        rate = _rate(plan)
        figures.append(
            Figure(
                section=SECTION,
                name=f"{fmt} {sizes.throughput:,} rows: validate+batch",
                value=rate,
                unit="rows/s",
                baseline=_rate(base),
                baseline_name="pyarrow read only",
                target=f">= {MIN_ROWS_PER_S:,} rows/s",
                ok=rate >= MIN_ROWS_PER_S if not quick else None,
            )
        )
        if fmt == "csv":
            typed = measure(path, "typed")
            figures.append(
                Figure(
                    section=SECTION,
                    name=f"{fmt} {sizes.throughput:,} rows: typed PlannedBatch objects",
                    value=_rate(typed),
                    unit="rows/s",
                    baseline=rate,
                    baseline_name="columnar batches",
                )
            )
        path.unlink()
    for rows, fmt in sizes.rss:
        path = write_subjects(workdir / f"subjects-{rows}.{fmt}", rows)
        base = measure(path, "read")
        plan = measure(path, "plan")
        name = f"{fmt} {rows:,} rows: peak RSS ({_rate(plan):,.0f} rows/s)"
        capped = rows >= 10_000_000
        figures.append(peak_rss(SECTION, name, plan, base, "pyarrow read only", capped=capped))
        path.unlink()
    return figures


def peak_rss(
    section: str,
    name: str,
    measured: dict[str, float],
    base: dict[str, float],
    base_name: str,
    *,
    capped: bool,
) -> Figure:
    """The peak RSS figure of a measurement beside its baseline's; held to the 600 MB target
    when ``capped``."""
    peak = measured["peak_rss_mb"]
    return Figure(
        section=section,
        name=name,
        value=peak,
        unit="MB",
        baseline=base["peak_rss_mb"],
        baseline_name=base_name,
        target=f"<= {MAX_RSS_MB} MB" if capped else "",
        ok=peak <= MAX_RSS_MB if capped else None,
    )


def _peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _child(mode: str, path: Path) -> dict[str, float]:
    # imported here so that the parent's import cost is not in the child's figures
    import tempfile

    from ..input.planning import plan_input
    from ..input.sources import open_source
    from ..settings import load_settings

    crm = {"namespace": "crmId", "type": "custom"}
    settings = load_settings(None, env={}, overrides={"input": {"columns": {"crm_id": crm}}})
    started = time.perf_counter()
    cpu = time.process_time()
    if mode == "read":
        rows = sum(b.num_rows for b in open_source(path).batches(settings.input.batch_rows))
        users = requests = 0
    else:
        users = requests = 0
        with tempfile.TemporaryDirectory(prefix="dsar-bench-plan-") as tmp:
            rejects = Path(tmp) / "rejects.parquet"
            with plan_input(path, settings, run_id="bench", rejects_path=rejects, env={}) as plan:
                if mode == "typed":  # one object per user (the run engine journals the frames)
                    for batch in plan.batches():
                        requests += 1
                        users += len(batch.users)
                else:
                    for frame in plan.frames():
                        requests += 1
                        users += frame.users.num_rows
                rows = plan.summary.rows
    return {
        "rows": rows,
        "users": users,
        "requests": requests,
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_mb": _peak_rss_mb(),
    }


if __name__ == "__main__":
    print(orjson.dumps(_child(sys.argv[1], Path(sys.argv[2]))).decode())
