"""Crash safety: ``dsar run`` SIGKILLed at seeded random points and resumed loses nothing.

CI runs 10 kill points x 1 seed on 20,000 subjects; soak mode (``pytest -m soak``) runs
20 points x 3 seeds. A twin run with reconciliation switched off, and ambiguous POSTs on,
must find duplicates: proof that these checks can fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.privacy import scan as privacy
from tests.reliability.chaos import ChaosResult, chaos_run
from tests.run.conftest import assert_every_row_once


def _assert_survived(result: ChaosResult, kills: int) -> None:
    privacy.record_text("the dsar processes' output", result.stderr)
    assert "Traceback" not in result.stderr
    assert result.kills == kills, f"only {result.kills} kills landed before the run ended"
    mid_submission = [j for j in result.jobs_at_kill if 0 < j < result.n_rows]
    assert len(mid_submission) >= 3, f"too few kills landed mid-submission: {result.jobs_at_kill}"
    assert result.exit_code == 0
    assert_every_row_once(result.run_dir, result.n_rows)
    assert result.stats["duplicate_user_keys"] == [], "a user key was submitted twice"
    assert result.stats["jobs_created"] == result.n_rows


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_sigkill_at_ten_random_points_of_a_20000_subject_run_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    result = chaos_run(tmp_path, n=20_000, kills=10, seed=1)
    _assert_survived(result, kills=10)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_without_reconciliation_sigkills_and_ambiguous_posts_are_found_as_duplicates(
    tmp_path: Path,
) -> None:
    """The deliberate fault: blind re-POSTs after kills and ambiguous answers must show."""
    result = chaos_run(tmp_path, n=5000, kills=5, seed=1, reconcile=False, ambiguous_post_rate=0.1)
    privacy.record_text("the dsar processes' output", result.stderr)
    assert result.kills == 5
    assert result.stats["duplicate_user_keys"], "duplicates went unnoticed: the test cannot fail"
    assert result.stats["jobs_created"] > result.n_rows


@pytest.mark.soak
@pytest.mark.timeout(900)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_soak_sigkill_at_twenty_random_points_per_seed(tmp_path: Path, seed: int) -> None:
    result = chaos_run(tmp_path, n=20_000, kills=20, seed=seed, kill_window_s=(0.6, 3.0))
    _assert_survived(result, kills=20)
