"""The chaos driver's kill points: :func:`choose` never hands out a point the run cannot reach.

Jobs never reopen and a result is never offered again once downloaded, so once every batch is
resolved, a journal with no job open can never show ``polling`` again, and one with no job open
and no result waiting can never show ``downloading``. The soak test was seen failing on
``result.kills == kills``: the driver waited for such a point, the resumed run finished (exit 0),
and the kill never came.
"""

from __future__ import annotations

import itertools
import random

import pytest

from tests.reliability.killpoints import Observed, choose


def _resolved(**flags: bool) -> Observed:
    """A planned run with every batch resolved, and the job ``flags`` given."""
    return Observed(has_plan=True, batches={"submitted": 200}, **flags)  # type: ignore[arg-type]


def _choose(wanted: str, before: Observed) -> tuple[str, bool]:
    point = choose(wanted, before, random.Random(0), submissions_left=1)
    return point.name, point.reachable


def _later_states() -> list[Observed]:
    """Every state a run can move to once no job is open and no result waits: the flags that can
    still change (a download finished), every batch resolved."""
    return [
        Observed(has_plan=True, batches={"submitted": 200}, downloaded=downloaded, version=version)
        for downloaded, version in itertools.product((False, True), (0, 1))
    ]


def test_polling_with_no_job_open_becomes_downloading_while_results_wait() -> None:
    before = _resolved(awaiting_download=True)
    assert _choose("polling", before) == ("downloading", True)
    point = choose("polling", before, random.Random(0), submissions_left=1)
    assert point.holds(before), "the next process starts in a state that holds it"


@pytest.mark.parametrize("wanted", ["polling", "downloading"])
def test_a_point_is_unreachable_once_no_job_is_open_and_no_result_waits(wanted: str) -> None:
    before = _resolved(downloaded=True)
    name, reachable = _choose(wanted, before)
    assert not reachable, f"{wanted}: handed out as {name}, which no later state can hold"
    point = choose(wanted, before, random.Random(0), submissions_left=1)
    assert not any(point.holds(o) for o in _later_states())


@pytest.mark.parametrize("wanted", ["polling", "downloading"])
def test_polling_and_downloading_stay_wanted_while_batches_are_left_to_submit(wanted: str) -> None:
    for batches in ({"planned": 5, "submitted": 195}, {"ambiguous": 1, "submitted": 199}):
        before = Observed(has_plan=True, batches=batches)
        assert _choose(wanted, before) == (wanted, True)
    assert _choose(wanted, Observed()) == (wanted, True)  # no plan yet


def test_polling_stays_polling_while_a_job_is_open() -> None:
    before = _resolved(jobs_open=True)
    assert _choose("polling", before) == ("polling", True)
    assert _choose("downloading", before) == ("downloading", True)


def test_planning_submitting_and_reconciling_are_never_unreachable() -> None:
    before = _resolved(downloaded=True)
    for wanted in ("planning", "submitting", "reconciling"):
        name, reachable = _choose(wanted, before)
        assert reachable or name in ("polling", "downloading"), (wanted, name)
