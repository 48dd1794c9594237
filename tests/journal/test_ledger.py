"""The daily-cap ledger: budgets per org and UTC day, shared safely by concurrent runs."""

from __future__ import annotations

import multiprocessing
import stat
from datetime import date
from pathlib import Path

import pytest

from pipeline.ledger import LEDGER_FILE, Ledger

DAY = date(2026, 3, 1)
ORG = "ORG@AdobeOrg"


def test_reservations_fit_under_the_cap_and_commits_book_them(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        assert ledger.reserve(ORG, DAY, 600, cap=1000)
        assert not ledger.reserve(ORG, DAY, 401, cap=1000)
        assert ledger.remaining(ORG, DAY, cap=1000) == 400
        ledger.commit(ORG, DAY, 500)
        ledger.release(ORG, DAY, 100)
        u = ledger.usage(ORG, DAY)
        assert (u.used, u.reserved, u.exhausted) == (500, 0, False)
        assert ledger.reserve(ORG, DAY, 500, cap=1000)
        assert ledger.remaining(ORG, DAY, cap=1000) == 0


def test_days_and_orgs_have_separate_budgets(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        assert ledger.reserve(ORG, DAY, 10, cap=10)
        assert ledger.reserve(ORG, date(2026, 3, 2), 10, cap=10)
        assert ledger.reserve("OTHER@AdobeOrg", DAY, 10, cap=10)
        assert not ledger.reserve(ORG, DAY, 1, cap=10)


def test_an_exhausted_day_takes_no_more_reservations(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        ledger.mark_exhausted(ORG, DAY)
        assert not ledger.reserve(ORG, DAY, 1, cap=20_000)
        assert ledger.remaining(ORG, DAY, cap=20_000) == 0
        assert ledger.reserve(ORG, date(2026, 3, 2), 1, cap=20_000)


def test_a_reservation_left_by_a_crash_still_counts_until_committed(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        assert ledger.reserve(ORG, DAY, 1000, cap=1500)
    with Ledger.open(tmp_path) as ledger:  # the resumed run adopts the jobs it created
        assert ledger.remaining(ORG, DAY, cap=1500) == 500
        ledger.commit(ORG, DAY, 1000)
        assert ledger.usage(ORG, DAY).reserved == 0
        assert ledger.remaining(ORG, DAY, cap=1500) == 500


def test_the_ledger_file_is_private(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ws"):
        pass
    assert stat.S_IMODE((tmp_path / "ws").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "ws" / LEDGER_FILE).stat().st_mode) == 0o600


def test_counts_must_be_positive(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        with pytest.raises(ValueError, match="positive"):
            ledger.reserve(ORG, DAY, 0, cap=10)
        with pytest.raises(ValueError, match="never negative"):
            ledger.commit(ORG, DAY, -1)


def _spend(workspace: str, start: multiprocessing.synchronize.Event) -> int:
    start.wait(30)
    won = 0
    with Ledger.open(Path(workspace)) as ledger:
        while ledger.reserve(ORG, DAY, 7, cap=1000):
            ledger.commit(ORG, DAY, 7)
            won += 7
    return won


def test_two_processes_sharing_a_workspace_never_overspend(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(2) as pool:
            results = [pool.apply_async(_spend, (str(tmp_path), start)) for _ in range(2)]
            start.set()
            won = [r.get(timeout=50) for r in results]
    assert sum(won) == 994  # 142 batches of 7; the 143rd would pass 1000
    with Ledger.open(tmp_path) as ledger:
        assert ledger.usage(ORG, DAY).used == 994
