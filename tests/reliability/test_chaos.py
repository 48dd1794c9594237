"""Crash safety: ``dsar run`` SIGKILLed at points of observed state and resumed loses nothing.

CI runs 10 kill points x 1 seed on 20,000 subjects: one while the run plans, the others while
POSTs are in flight, while the resumed run reconciles them, while it polls and while it
downloads (:mod:`tests.reliability.killpoints`); soak mode (``pytest -m soak``) runs 20 points
x 3 seeds. A twin run with reconciliation switched off, and ambiguous POSTs on, must find
duplicates: proof that these checks can fail. Kills are placed by what the run's journal and
spill folder show, never by the clock, so the tests do what they say on any machine.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.helpers.run import assert_every_row_once
from tests.privacy import scan as privacy
from tests.reliability.chaos import ChaosResult, chaos_run


def _assert_survived(result: ChaosResult, kills: int) -> None:
    """``kills``: the points wanted; each landed, or was one the journal left by the previous
    kill shows unreachable (only ``polling``/``downloading``: no job open, no result waiting)."""
    privacy.record_text("the dsar processes' output", result.stderr)
    assert "Traceback" not in result.stderr
    landed = f"{result.kills} kills landed: {result.points}, unreachable: {result.unreachable}"
    assert result.kills + len(result.unreachable) == kills, landed
    assert set(result.unreachable) <= {"polling", "downloading"}, landed
    assert result.exit_code == 0
    assert_every_row_once(result.run_dir, result.n_rows)
    assert result.stats["duplicate_user_keys"] == [], "a user key was submitted twice"
    assert result.stats["jobs_created"] == result.n_rows
    assert result.leftovers == [], "a spill folder or temporary file outlived its process"
    # the workspace registry: never a job the journal lacks; equal once caught up, and at the end
    assert result.registry_at_kills == [(0, 0, 0)] * result.kills, result.registry_at_kills
    assert result.registry_at_end == (0, 0)
    # the daily-cap ledger books exactly the jobs created, and no kill left a reservation
    with sqlite3.connect(result.run_dir.parent / "ledger.sqlite") as conn:
        (used,) = conn.execute("SELECT coalesce(sum(used), 0) FROM day_usage").fetchone()
        reserved = conn.execute("SELECT batch_id, n FROM reservation").fetchall()
    assert (used, reserved) == (result.stats["jobs_created"], [])


@pytest.mark.slow
@pytest.mark.timeout(1500)  # ~60 s on a quiet 2-core machine; a guard, for a loaded one
def test_sigkill_at_ten_random_points_of_a_20000_subject_run_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    result = chaos_run(tmp_path, n=20_000, kills=10, seed=1)
    _assert_survived(result, kills=10)
    assert result.points[0] == "planning"
    assert result.jobs_at_kill[0] == 0, "the planning kill landed after a submission"
    mid_submission = [j for j in result.jobs_at_kill if 0 < j < result.n_rows]
    assert len(mid_submission) >= 5, f"too few kills landed mid-submission: {result.jobs_at_kill}"
    assert result.points.count("reconciling") >= 1, result.points
    assert {"polling", "downloading"} <= set(result.points), result.points


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_at_six_points_of_a_two_org_run_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    points = ("planning", "submitting", "reconciling", "submitting", "polling", "downloading")
    result = chaos_run(tmp_path, n=6000, kills=6, seed=3, points=points, orgs=("eu", "us"))
    _assert_survived(result, kills=6)
    assert result.points == list(points), result.points
    with sqlite3.connect(result.run_dir / "journal.sqlite") as conn:
        orgs = dict(conn.execute("SELECT org, count(*) FROM batch GROUP BY org").fetchall())
    assert set(orgs) == {"eu", "us"}
    with sqlite3.connect(result.run_dir.parent / "ledger.sqlite") as conn:
        used = dict(conn.execute("SELECT org, sum(used) FROM day_usage GROUP BY org").fetchall())
    assert used == {"EU@AdobeOrg": 3000, "US@AdobeOrg": 3000}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_without_reconciliation_sigkills_and_ambiguous_posts_are_found_as_duplicates(
    tmp_path: Path,
) -> None:
    """The deliberate fault: blind re-POSTs after kills and ambiguous answers must show."""
    points = ("submitting",) * 5
    result = chaos_run(
        tmp_path, n=5000, kills=5, seed=1, reconcile=False, ambiguous_post_rate=0.1, points=points
    )
    privacy.record_text("the dsar processes' output", result.stderr)
    assert result.points == list(points)
    assert result.stats["duplicate_user_keys"], "duplicates went unnoticed: the test cannot fail"
    assert result.stats["jobs_created"] > result.n_rows


@pytest.mark.slow
@pytest.mark.parametrize("restart", ["resume", "run", "all"])
@pytest.mark.timeout(300)
def test_a_run_killed_while_planning_plans_again_and_leaves_no_spill_folder_or_temp_file(
    tmp_path: Path, restart: str
) -> None:
    """SIGKILL once the spill folder exists and before the plan commits; ``dsar resume D`` (or
    ``dsar run INPUT --run-dir D``, or ``dsar resume --all WS``) plans again from the start and
    runs to the end."""
    result = chaos_run(tmp_path, n=3000, kills=1, seed=5, points=("planning",), restart=restart)
    _assert_survived(result, kills=1)
    assert result.jobs_at_kill == [0]
    assert "planning from the start" in result.stderr or "planning it again" in result.stderr


@pytest.mark.soak
@pytest.mark.timeout(900)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_soak_sigkill_at_twenty_random_points_per_seed(tmp_path: Path, seed: int) -> None:
    result = chaos_run(tmp_path, n=20_000, kills=20, seed=seed)
    _assert_survived(result, kills=20)
    mid_submission = [j for j in result.jobs_at_kill if 0 < j < result.n_rows]
    assert len(mid_submission) >= 10, f"too few kills landed mid-submission: {result.jobs_at_kill}"
