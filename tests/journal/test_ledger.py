"""The daily-cap ledger: budgets per org and UTC day, shared safely by concurrent runs."""

from __future__ import annotations

import multiprocessing
import sqlite3
import stat
from datetime import date
from pathlib import Path

import pytest

from pipeline.journal.ledger import LEDGER_FILE, Ledger, ObservedCap

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
        assert (u.used, u.reserved, u.ceiling, u.carried) == (500, 0, None, None)
        assert ledger.reserve(ORG, DAY, 500, cap=1000)
        assert ledger.remaining(ORG, DAY, cap=1000) == 0


def test_days_and_orgs_have_separate_budgets(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        assert ledger.reserve(ORG, DAY, 10, cap=10)
        assert ledger.reserve(ORG, date(2026, 3, 2), 10, cap=10)
        assert ledger.reserve("OTHER@AdobeOrg", DAY, 10, cap=10)
        assert not ledger.reserve(ORG, DAY, 1, cap=10)


def test_a_refusal_lowers_the_days_ceiling_below_what_may_exist(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        ledger.reserve(ORG, DAY, 6000, cap=20_000)
        ledger.commit(ORG, DAY, 6000)
        assert ledger.reserve(ORG, DAY, 1000, cap=20_000)  # in flight, may be created
        assert ledger.reserve(ORG, DAY, 1000, cap=20_000)  # refused by the service
        assert ledger.refused(ORG, DAY, 1000) == 7999
        u = ledger.usage(ORG, DAY)
        assert (u.used, u.reserved, u.ceiling) == (6000, 1000, 7999)
        assert ledger.remaining(ORG, DAY, cap=20_000) == 999
        assert not ledger.reserve(ORG, DAY, 1000, cap=20_000)
        ledger.commit(ORG, DAY, 1000)
        assert ledger.reserve(ORG, DAY, 500, cap=20_000)
        assert ledger.refused(ORG, DAY, 500) == 7499  # only ever lowered
        assert ledger.reserve(ORG, DAY, 600, cap=20_000) is False
        assert ledger.remaining(ORG, DAY, cap=5000) == 0  # the configured cap still holds


def test_a_refusal_on_a_fresh_day_allows_less_than_the_refused_request(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        assert ledger.refused(ORG, DAY, 40) == 39
        assert ledger.remaining(ORG, DAY, cap=20_000) == 39


def test_the_next_day_carries_the_latest_observed_cap(tmp_path: Path) -> None:
    later = date(2026, 3, 4)
    with Ledger.open(tmp_path) as ledger:
        assert ledger.observed_cap(ORG) is None
        ledger.reserve(ORG, DAY, 10, cap=100)
        ledger.refused(ORG, DAY, 10)
        ledger.reserve(ORG, date(2026, 3, 2), 7, cap=100)
        ledger.refused(ORG, date(2026, 3, 2), 7)
    with Ledger.open(tmp_path) as ledger:  # a crash forgets nothing
        u = ledger.usage(ORG, later)
        assert (u.used, u.ceiling, u.carried) == (0, None, 6)
        assert ledger.remaining(ORG, later, cap=100) == 100  # a hint, not a limit
        assert ledger.usage(ORG, date(2026, 3, 2)).carried == 9
        assert ledger.usage(ORG, DAY).carried is None
        assert ledger.usage("OTHER@AdobeOrg", later).carried is None
        observed = ledger.observed_cap(ORG)
        assert observed == ObservedCap(day=date(2026, 3, 2), accepted=0, ceiling=6)


def test_a_version_1_ledger_keeps_its_exhausted_days_closed(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_FILE
    conn = sqlite3.connect(path)
    conn.execute(_V1_TABLE)
    conn.execute("INSERT INTO day_usage VALUES (?, ?, 700, 0, 1)", (ORG, DAY.isoformat()))
    conn.execute("INSERT INTO day_usage VALUES (?, '2026-03-02', 5, 2, 0)", (ORG,))
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Ledger.open(tmp_path) as ledger:
        assert ledger.remaining(ORG, DAY, cap=20_000) == 0
        u = ledger.usage(ORG, date(2026, 3, 2))
        assert (u.used, u.reserved, u.ceiling, u.carried) == (5, 2, None, 700)


_V1_TABLE = """CREATE TABLE day_usage (
    org TEXT NOT NULL,
    day TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
    reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    exhausted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (org, day)
) WITHOUT ROWID"""


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
        with pytest.raises(ValueError, match="positive"):
            ledger.refused(ORG, DAY, 0)


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
