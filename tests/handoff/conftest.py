"""Fixtures: a synthetic run directory (no runner needed) with its hand-off written."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.handoff.bundle import write_handoff

from .rundir import NOW, SyntheticRun, build_run_dir


@pytest.fixture
def run(tmp_path: Path) -> SyntheticRun:
    """A 300-subject run directory with report.html and manifest.json written."""
    built = build_run_dir(tmp_path / "run", subjects=300)
    write_handoff(built.run_dir, now=NOW)
    return built
