"""Bench section ``multiorg``: a many-org file planned into a journal, beside validate only."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.bench import SECTIONS, multiorg
from pipeline.bench.synth import org_names, subjects


def test_an_org_column_spreads_subjects_over_the_orgs_and_leaves_the_other_columns_alone() -> None:
    plain = subjects(2_000, seed=3)
    spread = subjects(2_000, seed=3, orgs=4)
    assert spread.drop_columns(["org"]).equals(plain)
    orgs = spread.column("org").to_pylist()
    assert set(orgs) == {"", *org_names(4)}  # an empty cell is the default org's
    keys = spread.column("subject_key").to_pylist()
    first: dict[str, str] = {}
    for key, org in zip(keys, orgs, strict=True):
        if key:  # a repeated row (a merge or a conflict) keeps its subject's org
            assert first.setdefault(key, org) == org


@pytest.mark.slow
def test_the_quick_section_plans_the_many_org_file_into_a_journal_beside_validate_only(
    tmp_path: Path,
) -> None:
    assert SECTIONS["multiorg"] == ".multiorg"
    rate, ratio, peak = multiorg.run(True, tmp_path)
    assert rate.unit == "rows/s"
    assert rate.value > 0
    assert rate.baseline
    assert f"{multiorg.QUICK_SUBJECTS:,} rows, {multiorg.ORGS} orgs" in rate.name
    assert rate.baseline_name.startswith("validate+batch only")
    assert ratio.value == pytest.approx(rate.value / rate.baseline)
    assert peak.unit == "MB"
    assert 0 < peak.value < 2_000
    assert peak.baseline
    assert {f.ok for f in (rate, ratio, peak)} == {None}  # no verdict on a quick run
    assert not list(tmp_path.glob("*.csv"))  # the input is removed


def test_the_many_org_settings_name_one_org_table_per_org_of_the_file() -> None:
    settings = multiorg.settings()
    assert [o.name for o in settings.org_list()] == list(org_names(multiorg.ORGS))
    assert settings.default_org == org_names(multiorg.ORGS)[0]
