"""Helpers for the input-stage tests: plan a small file and look at users and rejects."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.input.planning import PlanSummary, plan_input
from pipeline.models import PlannedBatch, PlannedUser
from pipeline.settings import Settings, load_settings


@dataclass
class Planned:
    """What planning one input produced."""

    batches: list[PlannedBatch]
    rejects: list[dict[str, Any]]
    summary: PlanSummary

    @property
    def users(self) -> list[PlannedUser]:
        return [u for b in self.batches for u in b.users]

    def reasons(self) -> dict[int, str]:
        return {r["input_row"]: r["reason_code"] for r in self.rejects}

    def user(self, subject_key: str, part: int = 0) -> PlannedUser:
        return next(u for u in self.users if u.subject_key == subject_key and u.part == part)


def org_table(name: str, include: list[str] | None = None) -> dict[str, object]:
    """An ``[[orgs]]`` table named ``name`` (its variables named after it), with products."""
    table: dict[str, object] = {
        "name": name,
        "org_id": f"{name.upper()}@AdobeOrg",
        "client_id_env": f"{name.upper()}_ID",
        "client_secret_env": f"{name.upper()}_SECRET",
    }
    if include:
        table["include"] = include
    return table


def settings_with(**sections: Mapping[str, Any]) -> Settings:
    """Default settings with ``{section: {key: value}}`` overrides."""
    return load_settings(None, env={}, overrides=sections)


def plan_file(path: Path, settings: Settings | None = None, *, run_id: str = "run1") -> Planned:
    """Plan ``path`` completely; rejects are read back from the Parquet file."""
    settings = settings or settings_with()
    rejects_path = path.parent / f"{path.stem}-rejects.parquet"
    with plan_input(path, settings, run_id=run_id, rejects_path=rejects_path, env={}) as plan:
        batches = list(plan.batches())
        summary = plan.summary
    rejects = pq.read_table(rejects_path).to_pylist()
    return Planned(batches=batches, rejects=rejects, summary=summary)


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """Write bytes (or text) to a file named ``name`` in a temporary directory."""

    def _write(content: bytes | str, name: str = "subjects.csv") -> Path:
        path = tmp_path / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    return _write
