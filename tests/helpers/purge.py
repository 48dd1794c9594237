"""Helpers for purge tests: a finished run with results, and a byte search for identities."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.run import run_cli, write_config, write_subjects


def only_run(workspace: Path) -> Path:
    """The one run directory of ``workspace``."""
    runs = [p for p in workspace.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) == 1
    return runs[0]


def _contents(path: Path) -> bytes:
    """A file's bytes, and for a ZIP the bytes of its members too (they are compressed)."""
    data = path.read_bytes()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            data += b"".join(archive.read(name) for name in archive.namelist())
    return data


def identity_hits(root: Path, values: list[str]) -> dict[str, int]:
    """File (relative to ``root``) -> how many identity values its bytes hold, hits only."""
    needles = [v.encode() for v in values]
    hits = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = _contents(path)
        found = sum(1 for n in needles if n in data)
        if found:
            hits[str(path.relative_to(root))] = found
    return hits


def finished_run(
    tmp_path: Path, emu: Any, monkeypatch: pytest.MonkeyPatch, n: int = 40
) -> tuple[Path, list[str]]:
    """A finished run of ``n`` subjects (access, delete, both) with results on disk."""
    values = write_subjects(tmp_path / "in.csv", n)
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli(argv, emu.env, monkeypatch) in (0, 1)
    run_dir = only_run(ws)
    assert list((run_dir / "results").glob("*.zip"))
    return run_dir, values
