"""The daily-cap ledger: budgets per org and UTC day, shared safely by concurrent runs."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
from datetime import date
from pathlib import Path

import pytest

from pipeline.journal.ledger import LEDGER_FILE, Ledger, ObservedCap, Reservation, Settled
from pipeline.journal.schema import JOURNAL_FILE, open_database
from pipeline.journal.store import Journal
from pipeline.models import Action
from tests.helpers.plans import at

DAY = date(2026, 3, 1)
ORG = "ORG@AdobeOrg"
RUN = "run-1"  # the run id of the journal fixture's plan


def _reserve(ledger: Ledger, n: int, cap: int, batch: str, day: date = DAY, org: str = ORG) -> bool:
    return ledger.reserve(org, day, n, cap, run_id=RUN, batch_id=batch)


def test_reservations_fit_under_the_cap_and_commits_book_them(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        assert _reserve(ledger, 500, 1000, "a")
        assert _reserve(ledger, 100, 1000, "b")
        assert not _reserve(ledger, 401, 1000, "c")
        assert ledger.remaining(ORG, DAY, cap=1000) == 400
        assert ledger.commit(RUN, "a", 500)
        assert ledger.release(RUN, "b")
        u = ledger.usage(ORG, DAY)
        assert (u.used, u.reserved, u.ceiling, u.carried) == (500, 0, None, None)
        assert _reserve(ledger, 500, 1000, "c")
        assert ledger.remaining(ORG, DAY, cap=1000) == 0


def test_days_and_orgs_have_separate_budgets(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        assert _reserve(ledger, 10, 10, "a")
        assert _reserve(ledger, 10, 10, "b", day=date(2026, 3, 2))
        assert _reserve(ledger, 10, 10, "c", org="OTHER@AdobeOrg")
        assert not _reserve(ledger, 1, 10, "d")


def test_a_refusal_lowers_the_days_ceiling_below_what_may_exist(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        _reserve(ledger, 6000, 20_000, "a")
        ledger.commit(RUN, "a", 6000)
        assert _reserve(ledger, 1000, 20_000, "b")  # in flight, may be created
        assert _reserve(ledger, 1000, 20_000, "c")  # refused by the service
        assert ledger.refused(RUN, "c") == 7999
        assert ledger.refused(RUN, "c") is None  # settled already: nothing changes
        u = ledger.usage(ORG, DAY)
        assert (u.used, u.reserved, u.ceiling) == (6000, 1000, 7999)
        assert ledger.remaining(ORG, DAY, cap=20_000) == 999
        assert not _reserve(ledger, 1000, 20_000, "d")
        ledger.commit(RUN, "b", 1000)
        assert _reserve(ledger, 500, 20_000, "d")
        assert ledger.refused(RUN, "d") == 7499  # only ever lowered
        assert _reserve(ledger, 600, 20_000, "e") is False
        assert ledger.remaining(ORG, DAY, cap=5000) == 0  # the configured cap still holds


def test_a_refusal_on_a_fresh_day_allows_less_than_the_refused_request(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        assert _reserve(ledger, 40, 20_000, "a")
        assert ledger.refused(RUN, "a") == 39
        assert ledger.remaining(ORG, DAY, cap=20_000) == 39


def test_the_next_day_carries_the_latest_observed_cap(tmp_path: Path) -> None:
    later = date(2026, 3, 4)
    with Ledger.open(tmp_path) as ledger:
        assert ledger.observed_cap(ORG) is None
        _reserve(ledger, 10, 100, "a")
        ledger.refused(RUN, "a")
        _reserve(ledger, 7, 100, "b", day=date(2026, 3, 2))
        ledger.refused(RUN, "b")
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
    _old_ledger(tmp_path / LEDGER_FILE, 1, _V1_TABLE, [(DAY, 700, 0, 1), ("2026-03-02", 5, 2, 0)])
    with Ledger.open(tmp_path) as ledger:
        assert ledger.remaining(ORG, DAY, cap=20_000) == 0
        u = ledger.usage(ORG, date(2026, 3, 2))
        assert (u.used, u.reserved, u.ceiling, u.carried) == (5, 2, None, 700)


def _old_ledger(path: Path, version: int, table: str, days: list[tuple[object, ...]]) -> None:
    """A ledger file as dsar wrote it at ``version``: ``ORG``'s ``days`` (day, then columns)."""
    conn = sqlite3.connect(path)
    conn.execute(table)
    for day, *rest in days:
        conn.execute("INSERT INTO day_usage VALUES (?, ?, ?, ?, ?)", (ORG, str(day), *rest))
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


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
        assert _reserve(ledger, 1000, 1500, "a")
    with Ledger.open(tmp_path) as ledger:  # the resumed run adopts the jobs it created
        assert ledger.remaining(ORG, DAY, cap=1500) == 500
        assert ledger.reservations(RUN) == [
            Reservation(org=ORG, day=DAY, run_id=RUN, batch_id="a", n=1000)
        ]
        assert ledger.commit(RUN, "a", 1000)
        assert ledger.usage(ORG, DAY).reserved == 0
        assert ledger.remaining(ORG, DAY, cap=1500) == 500
        assert not ledger.commit(RUN, "a", 1000)  # settled twice: booked once
        assert ledger.usage(ORG, DAY).used == 1000


def test_the_ledger_file_is_private(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ws"):
        pass
    assert stat.S_IMODE((tmp_path / "ws").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "ws" / LEDGER_FILE).stat().st_mode) == 0o600


def test_counts_must_be_positive(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        with pytest.raises(ValueError, match="positive"):
            _reserve(ledger, 0, 10, "a")
        with pytest.raises(ValueError, match="never negative"):
            ledger.commit(RUN, "a", -1)
        with pytest.raises(ValueError, match="names its run"):
            ledger.reserve(ORG, DAY, 1, 10, run_id="", batch_id="a")


def _spend(workspace: str, start: multiprocessing.synchronize.Event) -> int:
    start.wait(30)
    won = 0
    with Ledger.open(Path(workspace)) as ledger:
        while ledger.reserve(ORG, DAY, 7, cap=1000, run_id=f"run-{os.getpid()}", batch_id=str(won)):
            ledger.commit(f"run-{os.getpid()}", str(won), 7)
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


def test_a_version_2_ledgers_anonymous_reservations_stay_booked_as_legacy_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / LEDGER_FILE
    _old_ledger(path, 2, _V2_TABLE, [(DAY, 700, 300, None), ("2026-03-02", 5, 0, 9)])
    with Ledger.open(tmp_path) as ledger:
        u = ledger.usage(ORG, DAY)
        assert (u.used, u.reserved, u.ceiling) == (700, 300, None)
        assert ledger.remaining(ORG, DAY, cap=1000) == 0
        u = ledger.usage(ORG, date(2026, 3, 2))
        assert (u.used, u.reserved, u.ceiling) == (5, 0, 9)
        # no run names them: settling a run, or committing its batches, leaves them booked
        assert ledger.settle(RUN, {"": 0}) == Settled()
        assert not ledger.commit(RUN, "b00001", 300)
        assert ledger.usage(ORG, DAY).reserved == 300
        assert _reserve(ledger, 100, 1100, "b00002")  # new reservations sit beside them
        assert ledger.usage(ORG, DAY).reserved == 400
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        rows = conn.execute("SELECT run_id, batch_id, n FROM reservation ORDER BY n").fetchall()
    assert rows == [(RUN, "b00002", 100), ("", "", 300)]


_V2_TABLE = """CREATE TABLE day_usage (
    org TEXT NOT NULL,
    day TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
    reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    ceiling INTEGER CHECK (ceiling >= 0),
    PRIMARY KEY (org, day)
) WITHOUT ROWID"""


def test_a_reservation_made_again_for_the_same_batch_replaces_the_first(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        assert _reserve(ledger, 800, 1000, "a")
        assert not _reserve(ledger, 1001, 1000, "a")  # refused: the first one stays
        assert ledger.usage(ORG, DAY).reserved == 800
        assert _reserve(ledger, 900, 1000, "a")  # fits once the first is replaced
        assert [r.n for r in ledger.reservations(RUN)] == [900]


def _ids(journal: Journal, batch_id: str) -> dict[tuple[str, Action], str]:
    batch = journal.load_batch(batch_id)
    return {
        (u.request.key, a): f"job-{u.request.key}-{a.value}"
        for u in batch.users
        for a in u.request.actions
    }


def _leave_in_every_state(journal: Journal, ledger: Ledger) -> None:
    """Reserve every batch, then move each the way a process killed before the ledger
    followed would leave it (the fixture's b00001, b00002: 4 jobs; b00003: 2 jobs)."""
    for batch_id in ("b00001", "b00002", "b00003"):
        n = journal.load_batch(batch_id).job_count
        assert _reserve(ledger, n, 1000, batch_id)
    journal.record_intent("b00001", "d", at(1))  # submitted: 4 jobs created
    journal.mark_submitted("b00001", "req-1", _ids(journal, "b00001"), at(2))
    journal.record_intent("b00002", "d", at(3))  # ambiguous: nobody knows yet
    journal.mark_ambiguous("b00002", at(4))
    # b00003 stays planned: reserved, then killed before the intent


def test_settling_follows_each_batchs_journal_state_and_twice_changes_nothing(
    tmp_path: Path, journal: Journal
) -> None:
    with Ledger.open(tmp_path / "ws") as ledger:
        _leave_in_every_state(journal, ledger)
        created = journal.jobs_created(r.batch_id for r in ledger.reservations(RUN))
        assert created == {"b00001": 4, "b00002": None, "b00003": 0}
        assert ledger.settle(RUN, created) == Settled(committed=1, jobs=4, released=1, kept=1)
        assert (ledger.usage(ORG, DAY).used, ledger.usage(ORG, DAY).reserved) == (4, 4)
        assert ledger.settle(RUN, created) == Settled(kept=1)  # idempotent
        assert ledger.settle(RUN, journal.jobs_created(["b00002"])) == Settled(kept=1)
        # reconciliation adopts what the ambiguous POST created and names the same reservation
        batch = journal.load_batch("b00002")
        first = batch.users[0].request.key
        adopted = {(first, a): f"job-{first}-{a.value}" for a in (Action.ACCESS, Action.DELETE)}
        journal.reconcile("b00002", adopted, at(5))
        assert journal.jobs_created(["b00002", "nope"]) == {"b00002": 2}
        assert ledger.settle(RUN, journal.jobs_created(["b00002"])) == Settled(committed=1, jobs=2)
        assert not ledger.commit(RUN, "b00002", 2)  # the reconciler's own commit: a no-op
        u = ledger.usage(ORG, DAY)
        assert (u.used, u.reserved, ledger.reservations(RUN)) == (6, 0, [])


@pytest.mark.parametrize(
    ("move", "created"),
    [
        ("failed", 0),
        ("deferred", 0),
        ("cancelled", 0),
        ("submitting", None),
        ("consented", 0),
    ],
)
def test_each_settled_state_tells_what_its_post_created(
    journal: Journal, move: str, created: int | None
) -> None:
    if move == "failed":
        journal.mark_failed("b00001", "BAD", "no", at(1))
    elif move == "cancelled":
        journal.cancel(at(1), stop_polling=False)
    else:
        journal.record_intent("b00001", "d", at(1))
        if move == "deferred":
            journal.defer("b00001", "daily_cap", at(2))
        elif move == "consented":
            journal.mark_consented("b00001", at(2))
    assert journal.jobs_created(["b00001"]) == {"b00001": created}


def test_a_batch_split_after_its_reservation_books_what_it_created_and_frees_the_rest(
    tmp_path: Path, journal: Journal
) -> None:
    with Ledger.open(tmp_path / "ws") as ledger:
        assert _reserve(ledger, 4, 10, "b00001")
        child = journal.split("b00001", 1, at(1))  # the reservation still holds 4 jobs
        journal.record_intent("b00001", "d", at(2))
        journal.mark_submitted("b00001", "req-1", _ids(journal, "b00001"), at(3))
        assert ledger.settle(RUN, journal.jobs_created([child, "b00001"])) == Settled(
            committed=1, jobs=2
        )
        u = ledger.usage(ORG, DAY)
        assert (u.used, u.reserved) == (2, 0)


def test_a_version_7_journal_gains_the_created_count_and_its_old_posts_stay_unknown(
    tmp_path: Path, journal: Journal
) -> None:
    path = tmp_path / "old" / JOURNAL_FILE
    path.parent.mkdir()
    open_database(path, target=7).close()
    with Journal.open(path.parent) as migrated:
        columns = {r[1] for r in migrated._conn.execute("PRAGMA table_info(batch)")}
    assert "jobs_created" in columns
    # a batch submitted before v8 has no count: a reservation naming it is kept, not guessed
    journal.record_intent("b00001", "d", at(1))
    journal.mark_submitted("b00001", "req-1", _ids(journal, "b00001"), at(2))
    journal._conn.execute("UPDATE batch SET jobs_created = NULL WHERE batch_id = 'b00001'")
    assert journal.jobs_created(["b00001"]) == {"b00001": None}
