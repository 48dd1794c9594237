"""Fixtures: a journal with a small written plan."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.journal.store import Journal
from tests.helpers.plans import iter_plan, meta


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    """A journal holding 5 subjects (access + delete) in batches of 2: b00001..b00003."""
    with Journal.open(tmp_path / "run") as j:
        j.write_plan(meta(rows=5), iter_plan(5, per_batch=2), rejects_count=1)
        yield j
