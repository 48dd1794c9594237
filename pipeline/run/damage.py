"""Damage in a run directory, found without trusting it: report files that cannot be read,
result ZIPs that status.parquet lists but the disk has lost, a journal that is not SQLite.

Each finding is a :class:`~pipeline.errors.DamagedRunFile` (or
:class:`~pipeline.errors.DamagedJournal`) whose message is one line naming the file, the
problem and what to do. ``dsar status`` and ``dsar resume`` print them, ``dsar report`` refuses
to write a manifest that would forget a lost result, and ``dsar verify`` lists them beside the
manifest's differences.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import DamagedJournal, DamagedRunFile, InputError, one_line
from ..handoff.manifest import Difference
from ..journal.schema import JOURNAL_FILE
from ..reports import files as rf

SQLITE_MAGIC = b"SQLite format 3\x00"
# the report files every checkpoint rewrites from the journal
REWRITTEN = frozenset({rf.STATUS_FILE, rf.PRODUCTS_FILE, rf.SUMMARY_FILE})
_HEADER = 100


def journal_problem(path: Path) -> str | None:
    """Why the SQLite file at ``path`` is not sound, judged from its header and length
    (a file cut short, or not SQLite at all); None when it looks whole or is absent."""
    try:
        with path.open("rb") as fh:
            header = fh.read(_HEADER)
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None  # SQLite writes the header with the first transaction
    if len(header) < _HEADER or not header.startswith(SQLITE_MAGIC):
        return "not an SQLite database"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65_536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return "not an SQLite database (bad page size)"
    if size % page_size:
        return "cut short (its length is not a whole number of pages)"
    pages = int.from_bytes(header[28:32], "big")
    header_valid = header[24:28] == header[92:96]  # the in-header size is current
    if header_valid and pages and size < pages * page_size:
        return f"cut short ({size // page_size} of {pages} pages)"
    return None


def check_journal(run_dir: Path) -> None:
    """:class:`DamagedJournal` when RUN_DIR/journal.sqlite is plainly not a sound database."""
    path = run_dir / JOURNAL_FILE
    problem = journal_problem(path)
    if problem:
        raise DamagedJournal(str(path), problem)


def unreadable_reports(run_dir: Path) -> list[DamagedRunFile]:
    """The report files present in ``run_dir`` that cannot be read (Parquet footer, JSON)."""
    found: list[DamagedRunFile] = []
    for name in (rf.STATUS_FILE, rf.PRODUCTS_FILE, rf.REJECTS_FILE):
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            pq.ParquetFile(path).schema_arrow  # noqa: B018  (reads and checks the footer)
        except (OSError, pa.ArrowException) as exc:
            found.append(rf.damaged(path, f"not a readable Parquet file: {exc}"))
    if (run_dir / rf.SUMMARY_FILE).is_file():
        try:
            rf.read_summary(run_dir)
        except DamagedRunFile as exc:
            found.append(exc)
    return found


def lost_results(run_dir: Path) -> list[DamagedRunFile]:
    """One finding per result ZIP that status.parquet records but ``results/`` lacks (a ZIP
    that ``dsar purge`` removed, ``result_purged_at`` set, is not lost).

    Nothing when status.parquet is absent or unreadable (:func:`unreadable_reports` says so).
    """
    try:
        table = rf.read_table(run_dir, rf.STATUS_FILE, ["result_path", "result_purged_at"])
    except InputError:
        return []
    if table is None or "result_path" not in table.column_names:
        return []
    if "result_purged_at" in table.column_names:
        table = table.filter(pc.is_null(table.column("result_purged_at")))
    paths = pc.unique(table.column("result_path").drop_null()).to_pylist()
    found = []
    for name in sorted(str(p) for p in paths):
        if rf.RESULTS_DIR not in Path(name).parts[:1] or (run_dir / name).is_file():
            continue
        found.append(
            DamagedRunFile(
                str(run_dir / name), "missing: status.parquet lists it", rf.remedy(run_dir, name)
            )
        )
    return found


def findings(run_dir: Path) -> list[DamagedRunFile]:
    """Every damaged report file and every lost result ZIP of ``run_dir``."""
    return [*unreadable_reports(run_dir), *lost_results(run_dir)]


def verify_lines(run_dir: Path, differences: list[Difference]) -> list[str]:
    """``dsar verify``'s lines: each difference from the manifest with what to do about it,
    then what the manifest cannot show (a journal that is not SQLite, a result ZIP lost from
    a run whose manifest was rewritten after the loss)."""
    lines = []
    for difference in differences:
        if not difference.failed:
            continue  # a file `dsar purge` removed: the caller says so, it is not damage
        if difference.kind in ("missing", "changed"):
            lines.append(f"{difference}; {rf.remedy(run_dir, difference.path)}")
        else:
            lines.append(str(difference))
    journal = run_dir / JOURNAL_FILE
    problem = journal_problem(journal)
    if problem:
        lines.append(str(DamagedJournal(str(journal), problem)))
    named = {d.path for d in differences}
    for lost in lost_results(run_dir):
        if Path(lost.path).relative_to(run_dir).as_posix() not in named:
            lines.append(str(lost))
    return lines


def before_resume(run_dir: Path) -> list[str]:
    """What ``dsar resume`` / ``retry`` say before they drive a run: :class:`DamagedJournal`
    for a journal that is plainly damaged; then one line per damaged report file (those the
    journal rewrites, and the one it cannot: rejects.parquet) and per lost result ZIP."""
    if not run_dir.is_dir():
        return []  # resume_run says what is wrong
    check_journal(run_dir)
    lines = []
    for damaged in unreadable_reports(run_dir):
        if Path(damaged.path).name in REWRITTEN:
            problem = one_line(damaged.problem)
            lines.append(f"{damaged.path} is damaged ({problem}): rewriting it from the journal")
        else:
            lines.append(str(damaged))
    return lines + [str(lost) for lost in lost_results(run_dir)]
