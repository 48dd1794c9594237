"""Measure report writing on a large journal: seconds and peak RSS of a fresh process.

    .venv/bin/python -m tests.reports.measure --subjects 100000

Builds a journal of N subjects x (access, delete) through the journal API (plan, submit,
sweeps), gives 60% of the jobs three product outcomes by bulk SQL (a fixture shortcut: one
GET per job is the runner's business), then writes the reports in a child process and prints
its wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.journal.models import JobObservation
from pipeline.journal.store import Journal
from pipeline.reports.writers import write_reports
from tests.helpers.peak_rss import peak_kib
from tests.helpers.plans import T0, at, iter_plan, meta


def populate(run_dir: Path, subjects: int) -> None:
    """A journal whose jobs are complete (60%), error (10%) and processing (30%)."""
    with Journal.open(run_dir) as journal:
        journal.write_plan(meta(rows=subjects), iter_plan(subjects), rejects_count=0)
        job_ids: list[str] = []
        for batch_id in journal.batches_to_submit():
            batch = journal.load_batch(batch_id)
            jobs = {
                (u.user_key, a): f"{u.user_key}-{a.value}"
                for u in batch.users
                for a in u.request.actions
            }
            journal.record_intent(batch_id, "d", at(1))
            journal.mark_submitted(batch_id, f"req-{batch_id}", jobs, at(2))
            job_ids.extend(jobs.values())
        for start in range(0, len(job_ids), 1000):
            sweep = []
            for n, job_id in enumerate(job_ids[start : start + 1000], start=start):
                status = "complete" if n % 10 < 6 else "error" if n % 10 == 6 else "processing"
                sweep.append(JobObservation(job_id=job_id, status=status))
            journal.observe(sweep, at(3600))
    with sqlite3.connect(run_dir / "journal.sqlite") as c:
        for product, code in (("Profile", "PRVCY-6000-200"), ("Identity", "PRVCY-6052-200"),
                              ("AEPDataLake", "PRVCY-6054-200")):  # fmt: skip
            c.execute(
                "INSERT INTO product SELECT job_id, ?, 'complete', ?, 'Finished', completed_at, 0"
                " FROM job WHERE state = 'complete'",
                (product, code),
            )
        c.execute(
            "UPDATE job SET details_at = completed_at, products_total = 3, products_complete = 3"
            " WHERE state = 'complete'"
        )
    c.close()


def report_only(run_dir: Path) -> None:
    """Child process: write the reports once and print seconds, peak RSS and row counts."""
    start = time.perf_counter()
    with Journal.open(run_dir) as journal:
        summary = write_reports(journal, run_dir, now=T0)
    elapsed = time.perf_counter() - start
    # VmHWM, not ru_maxrss: Linux carries a forking parent's peak over exec into ru_maxrss
    peak_mb = peak_kib() / 1024
    print(json.dumps({
        "seconds": round(elapsed, 2), "peak_rss_mb": round(peak_mb, 1),
        "status_rows": summary["counts"]["total"],
        "products_rows": sum(summary["counts"]["outcomes"].values()),
    }))  # fmt: skip


def measure(subjects: int, work: Path) -> dict[str, float]:
    """Populate a journal under ``work`` and measure one report write in a child process."""
    run_dir = work / "run"
    t = time.perf_counter()
    populate(run_dir, subjects)
    built = time.perf_counter() - t
    out = subprocess.run(
        [sys.executable, "-m", "tests.reports.measure", "--report-only", str(run_dir)],
        check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout)
    result["populate_seconds"] = round(built, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--report-only", type=Path)
    args = parser.parse_args()
    if args.report_only:
        report_only(args.report_only)
        return
    with tempfile.TemporaryDirectory() as work:
        print(json.dumps({"subjects": args.subjects, **measure(args.subjects, Path(work))}))


if __name__ == "__main__":
    main()
