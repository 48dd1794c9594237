"""The report files of a run directory, as the hand-off (report, manifest, export) reads them.

One place knows the file names of DESIGN.md section 6 and the shape of ``summary.json``, so
that a change in the reports writer touches this module only. ``summary.json`` is read
tolerantly: a key the writer has not produced yet reads as absent, never as a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ..constants import DEFAULT_DAILY_JOB_CAP
from ..errors import DamagedRunFile, InputError
from ..files import atomic_file as atomic_file
from .writers import PRODUCTS_FILE as PRODUCTS_FILE
from .writers import REJECTS_FILE as REJECTS_FILE
from .writers import STATUS_FILE as STATUS_FILE
from .writers import STATUSES as STATUSES
from .writers import SUMMARY_FILE as SUMMARY_FILE

RESULTS_DIR = "results"
# a result as downloaded, and as stored encrypted to age recipients ([results] encrypt_to)
RESULT_SUFFIXES = (".zip", ".zip.age")


def result_name(job_id: str, *, encrypted: bool) -> str:
    """The file name of a job's result in ``results/``: ``<job_id>.zip`` or ``.zip.age``."""
    return f"{job_id}{RESULT_SUFFIXES[1] if encrypted else RESULT_SUFFIXES[0]}"


def result_job_id(name: str) -> str | None:
    """The job id of a result file name (``results/<job_id>.zip[.age]``), else None."""
    for suffix in reversed(RESULT_SUFFIXES):
        if name.startswith(f"{RESULTS_DIR}/") and name.endswith(suffix):
            return name[len(RESULTS_DIR) + 1 : -len(suffix)]
    return None


REPORT_FILE = "report.html"
MANIFEST_FILE = "manifest.json"
REPORT_FILES = (STATUS_FILE, PRODUCTS_FILE, REJECTS_FILE, SUMMARY_FILE)


def remedy(run_dir: Path, name: str) -> str:
    """What to do when the run file ``name`` of ``run_dir`` is damaged or gone."""
    if name in (STATUS_FILE, PRODUCTS_FILE, SUMMARY_FILE, REPORT_FILE):
        return f"`dsar resume {run_dir}` rewrites it from the journal"
    if name == REJECTS_FILE:
        return (
            "it is written once, when the run is planned: restore it from a backup "
            "(`dsar validate INPUT --out DIR` lists the same rejects again)"
        )
    if name == MANIFEST_FILE:
        return (
            f"`dsar report {run_dir}` writes a new one, which vouches only for the files "
            "as they are now"
        )
    job_id = result_job_id(name)
    if job_id is not None:
        return (
            f"`dsar jobs download {job_id} --out {run_dir / RESULTS_DIR}` fetches it again "
            f"(the service keeps results 60 days), then `dsar report {run_dir}` records it"
        )
    return "restore it from a backup"


def damaged(path: Path, problem: str) -> DamagedRunFile:
    """The error for a damaged run file: which file, what is wrong, what to do."""
    return DamagedRunFile(str(path), problem, remedy(path.parent, path.name))


def read_json(path: Path, *, missing: str) -> dict[str, Any]:
    """A JSON object file; :class:`InputError` (``missing`` says why) when absent,
    :class:`DamagedRunFile` when not a JSON object."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise InputError(f"{path}: missing ({missing})") from None
    except orjson.JSONDecodeError as exc:
        raise damaged(path, f"not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise damaged(path, "not a JSON object")
    return data


def read_summary(run_dir: Path) -> dict[str, Any]:
    """``RUN_DIR/summary.json`` as a dict; :class:`InputError` when missing or not JSON."""
    return read_json(run_dir / SUMMARY_FILE, missing="has the run written its reports?")


def read_table(run_dir: Path, name: str, columns: list[str] | None = None) -> pa.Table | None:
    """One Parquet report (optionally only ``columns`` that exist); None when the file is absent,
    :class:`DamagedRunFile` when it cannot be read."""
    path = run_dir / name
    if not path.exists():
        return None
    try:
        pf = pq.ParquetFile(path)
        if columns is not None:
            present = set(pf.schema_arrow.names)
            columns = [c for c in columns if c in present]
        return pf.read(columns=columns)
    except (OSError, pa.ArrowInvalid) as exc:
        raise damaged(path, f"not a readable Parquet file: {exc}") from None


def column_or_nulls(table: pa.Table, name: str, type_: pa.DataType) -> pa.ChunkedArray:
    """Column ``name`` of ``table``, or an all-null column of ``type_`` when it lacks it."""
    if name in table.column_names:
        return table.column(name)
    return pa.chunked_array([pa.nulls(table.num_rows, type_)], type_)


def headline_counts(summary: Mapping[str, Any]) -> dict[str, int]:
    """The run's headline counts from summary.json: every status of status.parquet, and total.

    The reports writer nests them as ``summary["counts"]["status"]``; a flat
    ``summary["counts"]`` (status -> count) is read too. Missing statuses are 0.
    """
    counts: Any = summary.get("counts", {})
    if isinstance(counts, Mapping) and isinstance(counts.get("status"), Mapping):
        counts = counts["status"]
    out = {s: int(counts.get(s, 0)) if isinstance(counts, Mapping) else 0 for s in STATUSES}
    out["total"] = sum(out.values())
    return out


def _first(summary: Mapping[str, Any], *paths: str) -> Any:
    """The value at the first dotted path present in ``summary``."""
    for path in paths:
        node: Any = summary
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            return node
    return None


def summary_text(summary: Mapping[str, Any], *paths: str) -> str | None:
    """A string field of summary.json under any of ``paths`` (dotted), or None."""
    value = _first(summary, *paths)
    return None if value is None else str(value)


def summary_int(summary: Mapping[str, Any], *paths: str) -> int | None:
    """An integer field of summary.json under any of ``paths`` (dotted), or None."""
    value = _first(summary, *paths)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def summary_time(summary: Mapping[str, Any], *paths: str) -> datetime | None:
    """An ISO-8601 time of summary.json under any of ``paths`` (dotted), or None."""
    value = _first(summary, *paths)
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def run_id(summary: Mapping[str, Any]) -> str | None:
    """The run's id."""
    return summary_text(summary, "run_id", "run.run_id")


def tool_version(summary: Mapping[str, Any]) -> str | None:
    """The dsar version that wrote the reports."""
    return summary_text(summary, "tool_version", "version", "run.tool_version")


def config_digest(summary: Mapping[str, Any]) -> str | None:
    """The digest of the run's configuration (secrets excluded by the writer)."""
    return summary_text(summary, "config_digest", "run.config_digest")


def input_facts(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The input file's name, sha256 and data-row count as summary.json records them."""
    return {
        "path": summary_text(summary, "input.path", "input_path"),
        "sha256": summary_text(summary, "input.sha256", "input_sha256"),
        "rows": summary_int(summary, "input.rows", "input_rows"),
    }


def daily_job_cap(summary: Mapping[str, Any]) -> int:
    """The daily job cap the run planned with (the service's default when not recorded)."""
    cap = summary_int(summary, "limits.daily_job_cap", "daily_job_cap", "budget.daily_job_cap")
    return cap if cap and cap > 0 else DEFAULT_DAILY_JOB_CAP


def purges(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run's purges as summary.json records them (``what``, ``at``, ``files``: each with
    ``path``, ``sha256``, ``bytes``), oldest first; entries not shaped so are left out."""
    found = summary.get("purges")
    out = []
    for purge in found if isinstance(found, list) else []:
        if isinstance(purge, Mapping) and isinstance(purge.get("files"), list):
            out.append(dict(purge))
    return out


def canary(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run's canary as summary.json records it (settings and verdict), or None."""
    found = summary.get("canary")
    return dict(found) if isinstance(found, Mapping) else None


def orgs(summary: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each org's section of summary.json (figures, cap timeline, pauses), in run order;
    empty for a summary written before it had one."""
    found = summary.get("orgs")
    if not isinstance(found, Mapping):
        return {}
    return {str(k): dict(v) for k, v in found.items() if isinstance(v, Mapping)}


def created_at(summary: Mapping[str, Any]) -> datetime | None:
    """When the run was planned: the receipt time of subjects without ``received_at``."""
    return summary_time(summary, "created_at", "run.created_at", "timings.created_at")


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically, as the reports writer does."""
    with atomic_file(path) as fh:
        fh.write(text.encode("utf-8"))
