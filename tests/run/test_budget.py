"""Sizing requests under a daily cap the service does not publish: probe down after a
refusal, start the next day at the observed cap, probe one user above it."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import pytest

from pipeline.journal.ledger import DayUsage, Ledger
from pipeline.run.budget import Allowance, allowance

ORG = "ORG@AdobeOrg"
DAY = date(2026, 3, 1)
CAP = 20_000


def test_without_a_refusal_the_whole_configured_budget_is_offered() -> None:
    usage = DayUsage(used=5000, reserved=2000)
    assert allowance(usage, CAP, 1) == Allowance(jobs=13_000, probe=False)
    assert allowance(DayUsage(used=19_999, reserved=0), CAP, 2).day_done


def test_after_a_refusal_each_request_halves_what_is_left_under_the_ceiling() -> None:
    usage = DayUsage(used=6000, reserved=0, ceiling=7999)
    assert allowance(usage, CAP, 1) == Allowance(jobs=1000, probe=True)
    usage = DayUsage(used=7000, reserved=0, ceiling=7001)
    assert allowance(usage, CAP, 1) == Allowance(jobs=1, probe=True)
    # a user with more jobs than half of what is left goes alone, if it can fit at all
    assert allowance(DayUsage(used=7000, reserved=0, ceiling=7003), CAP, 3).jobs == 3
    assert allowance(DayUsage(used=7000, reserved=0, ceiling=7001), CAP, 2).day_done
    # the configured cap stays the limit when the ceiling is above it
    assert allowance(DayUsage(used=100, reserved=0, ceiling=50_000), 200, 1).jobs == 50


def test_the_next_day_fills_to_the_observed_cap_then_probes_one_user_above_it() -> None:
    assert allowance(DayUsage(used=0, reserved=0, carried=7000), CAP, 2) == Allowance(
        jobs=7000, probe=False
    )
    assert allowance(DayUsage(used=5000, reserved=1999, carried=7000), CAP, 2) == Allowance(
        jobs=2, probe=True
    )
    assert allowance(DayUsage(used=7000, reserved=0, carried=7000), CAP, 1) == Allowance(
        jobs=1, probe=True
    )
    # the probe was accepted: today's cap is higher, the configured cap governs again
    assert allowance(DayUsage(used=7001, reserved=0, carried=7000), CAP, 1) == Allowance(
        jobs=12_999, probe=False
    )
    # a carried cap above the configured one is never used
    assert allowance(DayUsage(used=0, reserved=0, carried=30_000), CAP, 1).jobs == CAP


def _day(ledger: Ledger, day: date, real_cap: int, batch: int, user_jobs: int) -> tuple[int, int]:
    """Submit ``batch``-job requests of ``user_jobs``-job users against a service whose cap
    is ``real_cap`` until the allowance says the day is done; (jobs accepted, POSTs sent)."""
    posts = 0
    while True:
        allow = allowance(ledger.usage(ORG, day), CAP, user_jobs)
        if allow.day_done:
            return ledger.usage(ORG, day).used, posts
        n = min(batch, allow.jobs) // user_jobs * user_jobs
        batch_id = f"b{day.isoformat()}-{posts}"
        assert ledger.reserve(ORG, day, n, CAP, run_id="r", batch_id=batch_id)
        posts += 1
        if ledger.usage(ORG, day).used + n > real_cap:
            ledger.refused("r", batch_id)
        else:
            ledger.commit("r", batch_id, n)


@pytest.mark.parametrize(
    ("real_cap", "batch", "user_jobs"),
    [(7000, 1000, 1), (7000, 2000, 2), (6999, 1000, 1), (137, 1000, 1), (19_999, 999, 3)],
)
def test_probing_fills_the_real_cap_to_within_one_user_in_few_posts(
    tmp_path: Path, real_cap: int, batch: int, user_jobs: int
) -> None:
    with Ledger.open(tmp_path) as ledger:
        used, posts = _day(ledger, DAY, real_cap, batch, user_jobs)
        assert real_cap - user_jobs < used <= real_cap
        full = math.ceil(real_cap / batch)
        assert posts <= full + 2 * math.ceil(math.log2(batch)) + 2
        # the next day: up to the observed cap at full size, then one refused probe
        used, posts = _day(ledger, date(2026, 3, 2), real_cap, batch, user_jobs)
        assert real_cap - user_jobs < used <= real_cap
        assert posts <= math.ceil(real_cap / batch) + 2


def test_a_cap_raised_overnight_is_found_by_the_upward_probe(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        assert _day(ledger, DAY, 7000, 1000, 1)[0] == 7000
        used, _ = _day(ledger, date(2026, 3, 2), 9500, 1000, 1)
        assert used == 9500
        observed = ledger.observed_cap(ORG)
        assert observed is not None
        assert (observed.day, observed.accepted, observed.ceiling) == (date(2026, 3, 2), 9500, 9500)
