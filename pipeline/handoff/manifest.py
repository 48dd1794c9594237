"""manifest.json: the evidence of what a run produced, and :func:`verify_run` to check it later.

The manifest records the tool version, the config digest (the reports writer digests the
settings without secrets), the input file's sha256 and row count, the counts by status, the
first and last API call times, and the sha256 and size of every report file and every result
ZIP. Covered files: status.parquet, products.parquet, rejects.parquet, summary.json,
report.html (written just before the manifest, so its checksum is part of the evidence) and
``results/*.zip`` (``*.zip.age`` when stored encrypted: the checksum covers the ciphertext).
Not covered: manifest.json itself (it cannot hold its own checksum; keep a copy, or its sha256,
elsewhere to protect it) and journal.sqlite (the run's working state, which holds identity
values and changes on every resume).

``purges`` lists each ``dsar purge`` of the run (from summary.json): what it removed, when,
and the sha256 and size of every file it removed, so the evidence outlives the files.

:func:`verify_run` recomputes every checksum and returns the differences: files changed,
missing, or present but not listed (a result ZIP added after the fact). A file a purge removed
is reported as ``purged``, which is not a difference.
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
    ``unlisted`` (on disk, not listed) or ``invalid`` (an entry names a path outside the run);
    ``purged`` (removed by ``dsar purge``, as the manifest records) is not a failure.
    """

    path: str
    kind: str
    expected: str | None = None
    actual: str | None = None

    def __str__(self) -> str:
        if self.kind == "changed":
            return f"{self.path}: changed (sha256 {self.actual}, manifest says {self.expected})"
        if self.kind == "purged":
            return f"{self.path}: purged {self.actual} (sha256 {self.expected})"
        return f"{self.path}: {self.kind}"

    @property
    def failed(self) -> bool:
        """True for a real difference; False for a file a purge removed."""
        return self.kind != "purged"


def covered_files(run_dir: Path) -> list[str]:
    """Run-relative POSIX paths of the files the manifest covers that exist now, sorted."""
    names = [n for n in (*rf.REPORT_FILES, rf.REPORT_FILE) if (run_dir / n).is_file()]
    results = run_dir / rf.RESULTS_DIR
    if results.is_dir():
        names += [
            f"{rf.RESULTS_DIR}/{p.name}"
            for p in results.iterdir()
            if p.is_file() and p.name.endswith(rf.RESULT_SUFFIXES) and not p.name.startswith(".")
        ]
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
        "purges": rf.purges(summary),
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


def purged_files(manifest: Mapping[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    """Run-relative path -> (sha256, purge time) of every file the manifest's purges removed."""
    out: dict[str, tuple[str | None, str | None]] = {}
    purges = manifest.get("purges")
    for purge in purges if isinstance(purges, list) else []:
        files = purge.get("files") if isinstance(purge, dict) else None
        for entry in files if isinstance(files, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                out[entry["path"]] = (entry.get("sha256"), purge.get("at"))
    return out


def verify_run(run_dir: Path) -> list[Difference]:
    """Every difference between ``run_dir`` and its manifest, and every file a purge removed
    (kind ``purged``, not a failure); no failure when the run is intact."""
    manifest = read_manifest(run_dir)
    listed: dict[str, Any] = manifest["files"]
    purged = purged_files(manifest)
    out: list[Difference] = []
    for name, (sha256, at) in sorted(purged.items()):
        if _safe(name) and not (run_dir / name).exists():
            out.append(Difference(name, "purged", expected=sha256, actual=at))
    for name, entry in sorted(listed.items()):
        if not _safe(name):
            out.append(Difference(name, "invalid"))
            continue
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        path = run_dir / name
        if not path.is_file():
            if name not in purged:
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
