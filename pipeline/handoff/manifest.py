"""manifest.json: the evidence of what a run produced, and :func:`verify_run` to check it later.

The manifest records the tool version, the config digest (the reports writer digests the
settings without secrets), the input file's sha256 and row count, the counts by status, the
first and last API call times, and the sha256 and size of every report file and every result
ZIP. Covered files: status.parquet, products.parquet, rejects.parquet, summary.json,
report.html (written just before the manifest, so its checksum is part of the evidence) and
``results/*.zip``. Not covered: manifest.json itself (it cannot hold its own checksum; keep a
copy, or its sha256, elsewhere to protect it) and journal.sqlite (the run's working state, which
holds identity values and changes on every resume).

:func:`verify_run` recomputes every checksum and returns the differences: files changed,
missing, or present but not listed (a result ZIP added after the fact).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from ..errors import InputError
from ..files import sha256_file
from ..reports import files as rf

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Difference:
    """One way a run directory differs from its manifest.

    ``kind`` is ``changed`` (the sha256 differs), ``missing`` (listed, not on disk),
    ``unlisted`` (on disk, not listed) or ``invalid`` (an entry names a path outside the run).
    """

    path: str
    kind: str
    expected: str | None = None
    actual: str | None = None

    def __str__(self) -> str:
        if self.kind == "changed":
            return f"{self.path}: changed (sha256 {self.actual}, manifest says {self.expected})"
        return f"{self.path}: {self.kind}"


def covered_files(run_dir: Path) -> list[str]:
    """Run-relative POSIX paths of the files the manifest covers that exist now, sorted."""
    names = [n for n in (*rf.REPORT_FILES, rf.REPORT_FILE) if (run_dir / n).is_file()]
    results = run_dir / rf.RESULTS_DIR
    if results.is_dir():
        names += [f"{rf.RESULTS_DIR}/{p.name}" for p in results.glob("*.zip") if p.is_file()]
    return sorted(names)


def build_manifest(
    run_dir: Path, *, now: datetime, api_window: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The manifest of ``run_dir`` as it stands (report.html must already be written).

    ``api_window`` (``first_at``, ``last_at``, ``source``) overrides what summary.json says
    about the first and last API calls.
    """
    summary = rf.read_summary(run_dir)
    files = {}
    for name in covered_files(run_dir):
        path = run_dir / name
        files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return {
        "manifest_version": MANIFEST_VERSION,
        "written_at": _iso(now),
        "run_id": rf.run_id(summary),
        "tool_version": rf.tool_version(summary),
        "config_digest": rf.config_digest(summary),
        "input": rf.input_facts(summary),
        "counts": rf.headline_counts(summary),
        "api_calls": dict(api_window) if api_window else api_window_from_summary(summary),
        "files": files,
    }


def api_window_from_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """First and last API call times from summary.json, with where they came from.

    Exact times (``timings.first_api_call_at`` / ``last_api_call_at``) win. Without them the
    window is bounded by the journal's timings: the first submit intent (the POST follows it)
    and the last submit or job completion seen; ``source`` says which was used.
    """
    first = rf.summary_time(summary, "timings.first_api_call_at")
    last = rf.summary_time(summary, "timings.last_api_call_at")
    if first or last:
        return {"first_at": _iso(first), "last_at": _iso(last), "source": "api calls"}
    starts = [rf.summary_time(summary, f"timings.{k}") for k in _FIRST_KEYS]
    ends = [rf.summary_time(summary, f"timings.{k}") for k in _LAST_KEYS]
    return {
        "first_at": _iso(min((t for t in starts if t), default=None)),
        "last_at": _iso(max((t for t in ends if t), default=None)),
        "source": "journal timings (first submit intent; last submit or completion)",
    }


_FIRST_KEYS = ("first_intent_at", "first_submitted_at")
_LAST_KEYS = ("last_submitted_at", "last_completed_at")


def write_manifest(
    run_dir: Path, *, now: datetime, api_window: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Build the manifest and write ``RUN_DIR/manifest.json`` atomically; returns it."""
    manifest = build_manifest(run_dir, now=now, api_window=api_window)
    data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    rf.atomic_write(run_dir / rf.MANIFEST_FILE, data.decode() + "\n")
    return manifest


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """``RUN_DIR/manifest.json``; :class:`InputError` when missing or malformed."""
    path = run_dir / rf.MANIFEST_FILE
    manifest = rf.read_json(path, missing="the run has not written its hand-off")
    if not isinstance(manifest.get("files"), dict):
        raise InputError(f"{path}: not a dsar manifest (no 'files' object)")
    return manifest


def verify_run(run_dir: Path) -> list[Difference]:
    """Every difference between ``run_dir`` and its manifest; empty when the run is intact."""
    listed: dict[str, Any] = read_manifest(run_dir)["files"]
    out: list[Difference] = []
    for name, entry in sorted(listed.items()):
        if not _safe(name):
            out.append(Difference(name, "invalid"))
            continue
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        path = run_dir / name
        if not path.is_file():
            out.append(Difference(name, "missing", expected=expected))
            continue
        actual = sha256_file(path)
        if actual != expected:
            out.append(Difference(name, "changed", expected=expected, actual=actual))
    out += [Difference(n, "unlisted") for n in covered_files(run_dir) if n not in listed]
    return out


def _safe(name: str) -> bool:
    """True for a relative path inside the run directory (a manifest could be tampered with)."""
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts and "\\" not in name


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
