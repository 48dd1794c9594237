"""Properties of planning over generated inputs: every row accounted for exactly once."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import constants
from pipeline.input import planning
from tests.helpers.input import Planned, plan_file, settings_with

KEYS = st.sampled_from(["k1", "k2", "k3", "k4", "", " k5 "])
NAMESPACES = st.sampled_from(["email", "ECID", "phone", "crm", "", "Email"])
VALUES = st.sampled_from(
    ["a@example.com", "B@Example.com", "bad-email", "123", "12x", "", " v1 ", "v2", "v3",
     "x" * 300, 'q"uote', "v4", "v5", "v6", "v7", "v8", "v9", "v10"]
)  # fmt: skip
TYPES = st.sampled_from(["", "standard", "custom", "bogus"])
ACTIONS = st.sampled_from(["", "access", "delete", "access+delete", "opt-out-of-sale", "zap"])
REGULATIONS = st.sampled_from(["", "gdpr", "ccpa", "ucpa_usa", "nope"])
ROW = st.tuples(KEYS, NAMESPACES, VALUES, TYPES, ACTIONS, REGULATIONS)


def _write(rows: list[tuple[str, ...]], directory: Path) -> Path:
    path = directory / "subjects.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["subject_key", "namespace", "value", "type", "action", "regulation"])
        writer.writerows(rows)
    return path


def _plan_or_none(path: Path, **sections: dict[str, object]) -> Planned | None:
    try:
        return plan_file(path, settings_with(**sections))
    except planning.InputError:
        return None  # every row rejected: nothing to account for in batches


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(ROW, min_size=1, max_size=40),
    per_request=st.integers(1, 5),
    on_too_many=st.sampled_from(["split", "reject"]),
    batch_rows=st.integers(1, 7),
)
def test_every_row_is_in_exactly_one_user_or_in_rejects(
    monkeypatch: pytest.MonkeyPatch,
    rows: list[tuple[str, ...]],
    per_request: int,
    on_too_many: str,
    batch_rows: int,
) -> None:
    monkeypatch.setattr(planning, "PARTITION_ROWS", 2)  # many partitions
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(rows, Path(tmp))
        sections = {
            "input": {"layout": "long", "on_too_many_ids": on_too_many, "batch_rows": batch_rows},
            "limits": {"users_per_request": per_request},
        }
        planned = _plan_or_none(path, **sections)
        again = _plan_or_none(path, **sections)
    if planned is None:
        assert again is None
        return
    assert again is not None
    assert planned.batches == again.batches
    in_users = [r for u in planned.users for r in u.input_rows]
    in_rejects = [r["input_row"] for r in planned.rejects]
    assert sorted(in_users + in_rejects) == list(range(len(rows)))
    for batch in planned.batches:
        assert 1 <= len(batch.users) <= min(per_request, constants.MAX_USERS_PER_REQUEST)
        for user in batch.users:
            assert 1 <= len(user.request.identities) <= constants.MAX_IDS_PER_USER
    assert planned.summary.users == len(planned.users)
    assert planned.summary.rejected_rows == len(planned.rejects)


def test_partitioning_does_not_change_what_is_planned(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lines = [f"s{i % 37},user{i % 53}@example.com,{i % 7}" for i in range(400)]
    path = tmp_path / "subjects.csv"
    path.write_text("subject_key,email,ecid\n" + "\n".join(lines) + "\n")
    whole = plan_file(path)
    monkeypatch.setattr(planning, "PARTITION_ROWS", 20)
    parts = plan_file(path)

    def by_subject(p: Planned) -> dict[str, object]:
        return {u.subject_key: (u.request, u.input_rows) for u in p.users}

    assert by_subject(whole) == by_subject(parts)
    assert whole.rejects == []
    assert parts.rejects == []
