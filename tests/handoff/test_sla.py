"""Deadline arithmetic per regulation: month ends, leap days, business days, vectorised form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pytest

from pipeline.constants import REGULATIONS
from pipeline.reports.sla import (
    RESPONSE_WINDOWS,
    TIMESTAMP,
    add_months,
    days_left,
    due_at,
    overdue,
    sla_columns,
    window,
)


def at(y: int, m: int, d: int, h: int = 9) -> datetime:
    return datetime(y, m, d, h, 30, tzinfo=UTC)


def test_every_current_regulation_has_a_window_with_a_source() -> None:
    assert set(RESPONSE_WINDOWS) == set(REGULATIONS)
    for reg, win in RESPONSE_WINDOWS.items():
        assert win.amount > 0, reg
        assert win.source.strip(), reg


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (at(2026, 1, 15), at(2026, 2, 15)),
        (at(2026, 1, 31), at(2026, 2, 28)),  # no 31 February: the month's last day
        (at(2028, 1, 31), at(2028, 2, 29)),  # leap year
        (at(2028, 1, 30), at(2028, 2, 29)),
        (at(2028, 1, 29), at(2028, 2, 29)),
        (at(2028, 2, 29), at(2028, 3, 29)),  # received on a leap day
        (at(2026, 3, 31), at(2026, 4, 30)),
        (at(2026, 12, 31), at(2027, 1, 31)),  # across the year
        (at(2026, 8, 31), at(2026, 9, 30)),
    ],
)
def test_gdpr_is_one_calendar_month_clamped_to_the_month_end(
    received: datetime, due: datetime
) -> None:
    assert due_at("gdpr", received) == due


def test_gdpr_keeps_the_time_of_day_and_answers_in_utc() -> None:
    received = datetime(2026, 1, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    # 04:30 UTC on 1 February: one month later is 1 March
    assert due_at("gdpr", received) == datetime(2026, 3, 1, 4, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("regulation", "days"),
    [("ccpa", 45), ("cpra_ca_usa", 45), ("lgpd_bra", 15), ("vcdpa_va_usa", 45),
     ("icdpa_ia_usa", 90), ("hipaa_usa", 30), ("pdpa_tha", 30), ("pipa_kor", 10)],
)  # fmt: skip
def test_day_windows_count_calendar_days(regulation: str, days: int) -> None:
    received = at(2028, 2, 20)  # spans the leap day
    assert due_at(regulation, received) == received + timedelta(days=days)


def test_ccpa_across_the_leap_day() -> None:
    assert due_at("ccpa", at(2028, 2, 1)) == at(2028, 3, 17)


def test_new_zealand_counts_working_days() -> None:
    assert due_at("nzpa_nzl", at(2026, 3, 2)) == at(2026, 3, 30)  # Monday + 20 weekdays
    # received on a Saturday: counting starts on Monday
    assert due_at("nzpa_nzl", at(2026, 1, 31)) == at(2026, 3, 2)


def test_add_months_clamps_and_crosses_years() -> None:
    assert add_months(at(2027, 11, 30), 3) == at(2028, 2, 29)
    assert add_months(at(2026, 5, 31), 1) == at(2026, 6, 30)


def test_unknown_regulation_and_naive_time_are_refused() -> None:
    with pytest.raises(KeyError, match="no response window"):
        window("not_a_law")
    with pytest.raises(ValueError, match="timezone-aware"):
        due_at("gdpr", datetime(2026, 1, 1))


def test_days_left_rounds_down_and_goes_negative_after_the_due_time() -> None:
    due = at(2026, 3, 10)
    assert days_left(due, due - timedelta(days=2, hours=1)) == 2
    assert days_left(due, due - timedelta(hours=1)) == 0
    assert days_left(due, due + timedelta(hours=1)) == -1
    assert not overdue(due, due)
    assert overdue(due, due + timedelta(seconds=1))


def test_vectorised_columns_agree_with_the_scalar_functions() -> None:
    regs = ["gdpr", "gdpr", "ccpa", "nzpa_nzl", "lgpd_bra", "hipaa_usa", "gdpr"]
    received = [at(2026, 1, 31), at(2028, 1, 31), at(2028, 2, 1), at(2026, 1, 31),
                at(2026, 2, 28), at(2026, 12, 31), at(2028, 2, 29, 23)]  # fmt: skip
    now = at(2026, 2, 20, 12)
    cols = sla_columns(pa.array(regs), pa.array(received, TIMESTAMP), now=now)
    expected_due = [due_at(r, t) for r, t in zip(regs, received, strict=True)]
    assert cols.due_at.to_pylist() == expected_due
    assert cols.days_left.to_pylist() == [days_left(d, now) for d in expected_due]
    assert cols.overdue.to_pylist() == [overdue(d, now) for d in expected_due]


def test_vectorised_nulls_fallbacks_and_stopped_clocks() -> None:
    regs = pa.array(["gdpr", None, "unknown", "ccpa", "ccpa", "ccpa"])
    received = pa.array([None, at(2026, 1, 1), at(2026, 1, 1), at(2026, 1, 1),
                         at(2026, 1, 1), at(2026, 1, 1)], TIMESTAMP)  # fmt: skip
    done = pa.array([None, None, None, at(2026, 1, 20), at(2026, 1, 20), None], TIMESTAMP)
    status = pa.array(["pending", "rejected", "pending", "complete", "error", "processing"])
    seen = at(2026, 1, 15)
    now = at(2026, 3, 1)
    cols = sla_columns(
        pa.chunked_array([regs]), received, now=now, completed_at=done, status=status,
        seen_at=seen,
    )  # fmt: skip
    assert cols.due_at.to_pylist() == [at(2026, 2, 15), None, None] + [at(2026, 2, 15)] * 3
    # complete: clock stopped on 20 January (26 days left); error and open: still running
    assert cols.days_left.to_pylist() == [-14, None, None, 26, -14, -14]
    assert cols.overdue.to_pylist() == [True, None, None, False, True, True]


def test_vectorised_columns_on_empty_input() -> None:
    cols = sla_columns(pa.array([], pa.string()), pa.array([], TIMESTAMP), now=at(2026, 1, 1))
    assert len(cols.due_at) == len(cols.days_left) == len(cols.overdue) == 0
    assert cols.due_at.type == TIMESTAMP
