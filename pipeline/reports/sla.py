"""SLA clocks: the legal response window of each regulation, and when a subject is due.

Each regulation has one *initial* response window: the time the law gives a controller to
answer a request, counted from receipt. Extensions that the laws allow (GDPR's two further
months, CCPA's second 45 days, ...) are not applied: dsar warns against the first deadline.
Windows come in three units:

- ``months``: calendar months. A period ends on the same date of the last month; when that
  month has no such date (31 January plus one month), it ends on the month's last day. This
  is how Regulation (EEC, Euratom) No 1182/71, Art. 3(2)(c) counts EU periods in months.
- ``days``: calendar days.
- ``business_days``: Monday to Friday. Public holidays are not modelled, which only ever makes
  the deadline earlier (the safe side).

The due time keeps the time of day of receipt (UTC). ``days_left`` is the whole days from a
reference time to the due time, rounded down (negative once past); a subject is ``overdue``
when the reference time is after the due time. The reference time is the job's completion
when it has one (the clock stops when the answer is ready), otherwise ``now``.

The figures were read from the laws cited beside each entry; they are a default for
reporting, not legal advice, and a legal team may replace the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Unit = Literal["days", "months", "business_days"]
_US_PER_DAY = 86_400_000_000
# status.parquet's time type; not imported from reports, which imports this module
TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Window:
    """A legal response window: ``amount`` of ``unit``, with the law it comes from."""

    amount: int
    unit: Unit
    source: str

    def __str__(self) -> str:
        unit = self.unit.replace("_", " ")
        return f"{self.amount} {unit[:-1] if self.amount == 1 else unit}"


# The initial response window per regulation value (constants.REGULATIONS), and its source.
RESPONSE_WINDOWS: Mapping[str, Window] = {
    # GDPR Art. 12(3): within one month of receipt (extendable by two further months).
    "gdpr": Window(1, "months", "GDPR Art. 12(3)"),
    # CCPA as amended by CPRA, Cal. Civ. Code 1798.130(a)(2)(A): 45 days (+45 once).
    "ccpa": Window(45, "days", "Cal. Civ. Code 1798.130(a)(2)(A)"),
    "cpra_ca_usa": Window(45, "days", "Cal. Civ. Code 1798.130(a)(2)(A)"),
    # LGPD (Lei 13.709/2018) Art. 19, II: a complete answer within 15 days of the request.
    "lgpd_bra": Window(15, "days", "LGPD Art. 19, II"),
    # US state comprehensive privacy laws: 45 days from receipt, extendable once by 45.
    "cpa_co_usa": Window(45, "days", "Colorado Privacy Act, C.R.S. 6-1-1306(2)(a)"),
    "ctdpa_ct_usa": Window(45, "days", "Connecticut DPA, Conn. Gen. Stat. 42-518(c)(1)"),
    "vcdpa_va_usa": Window(45, "days", "Virginia CDPA, Va. Code 59.1-577(B)(1)"),
    "ucpa_ut_usa": Window(45, "days", "Utah CPA, Utah Code 13-61-203(4)(a)"),
    "tdpsa_tx_usa": Window(45, "days", "Texas DPSA, Tex. Bus. & Com. Code 541.052(b)"),
    "ocpa_or_usa": Window(45, "days", "Oregon CPA, ORS 646A.576"),
    "mcdpa_mt_usa": Window(45, "days", "Montana CDPA, MCA 30-14-2808"),
    "dpdpa_de_usa": Window(45, "days", "Delaware PDPA, 6 Del. C. 12D-104"),
    "njdpa_nj_usa": Window(45, "days", "New Jersey DPA, N.J.S.A. 56:8-166.4 et seq."),
    "nhpa_nh_usa": Window(45, "days", "New Hampshire privacy act, RSA 507-H"),
    "ndpa_ne_usa": Window(45, "days", "Nebraska DPA (LB 1074, 2024)"),
    "tipa_tn_usa": Window(45, "days", "Tennessee IPA, T.C.A. 47-18-3301 ff."),
    "mcdpa_mn_usa": Window(45, "days", "Minnesota CDPA, Minn. Stat. ch. 325M"),
    "modpa_md_usa": Window(45, "days", "Maryland ODPA, Md. Code Com. Law 14-4601 ff."),
    "fdbr_fl_usa": Window(45, "days", "Florida Digital Bill of Rights, Fla. Stat. 501.706"),
    "mhmda_wa_usa": Window(45, "days", "Washington My Health My Data Act, RCW 19.373.040"),
    # Iowa is the exception among the states: 90 days (+45), Iowa Code ch. 715D.
    "icdpa_ia_usa": Window(90, "days", "Iowa CDPA, Iowa Code ch. 715D"),
    # HIPAA right of access, 45 CFR 164.524(b)(2): 30 days (+30 once).
    "hipaa_usa": Window(30, "days", "HIPAA, 45 CFR 164.524(b)(2)"),
    # Thailand PDPA B.E. 2562, Section 30: within 30 days of receipt.
    "pdpa_tha": Window(30, "days", "Thailand PDPA, Section 30"),
    # Korea PIPA Enforcement Decree Art. 41(4): access within 10 days.
    "pipa_kor": Window(10, "days", "Korea PIPA Enforcement Decree, Art. 41(4)"),
    # Australian Privacy Principle 12.4(a): 30 days (agencies; organisations "reasonable").
    "apa_aus": Window(30, "days", "Privacy Act 1988 (Cth), APP 12.4(a)"),
    # New Zealand Privacy Act 2020 s 44: 20 working days.
    "nzpa_nzl": Window(20, "business_days", "Privacy Act 2020 (NZ), s 44"),
    # Quebec, Act respecting the protection of personal information in the private sector
    # (CQLR c P-39.1, as amended by Law 25), s 32: 30 days.
    "ql25_qc_can": Window(30, "days", "Quebec CQLR c P-39.1, s 32"),
}


def window(regulation: str) -> Window:
    """The response window of ``regulation``; ``KeyError`` naming it when unknown."""
    try:
        return RESPONSE_WINDOWS[regulation]
    except KeyError:
        raise KeyError(f"no response window for regulation {regulation[:40]!r}") from None


def add_months(at: datetime, months: int) -> datetime:
    """``at`` plus whole calendar months; the day is clamped to the target month's last day."""
    index = at.year * 12 + at.month - 1 + months
    year, month = divmod(index, 12)
    first_next = date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1)
    last_day = (first_next - timedelta(days=1)).day
    return at.replace(year=year, month=month + 1, day=min(at.day, last_day))


def add_business_days(at: datetime, days: int) -> datetime:
    """``at`` plus ``days`` weekdays; a start on a weekend counts from the next Monday."""
    target = np.busday_offset(np.datetime64(at.date(), "D"), days, roll="forward")
    day = target.item()
    assert isinstance(day, date)
    return datetime.combine(day, at.timetz())


def due_at(regulation: str, received_at: datetime) -> datetime:
    """When the answer to a request of ``regulation`` received at ``received_at`` is due.

    ``received_at`` must be timezone-aware; the result is in UTC.
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    at = received_at.astimezone(UTC)
    win = window(regulation)
    if win.unit == "months":
        return add_months(at, win.amount)
    if win.unit == "business_days":
        return add_business_days(at, win.amount)
    return at + timedelta(days=win.amount)


def days_left(due: datetime, now: datetime) -> int:
    """Whole days from ``now`` until ``due``, rounded down; negative once ``due`` has passed."""
    return (due - now) // timedelta(days=1)


def overdue(due: datetime, now: datetime) -> bool:
    """True when ``now`` is after ``due``."""
    return now > due


class SlaColumns(NamedTuple):
    """The three SLA columns of status.parquet, aligned with the input arrays."""

    due_at: pa.Array  # timestamp[us, UTC]; null when regulation or received time is unknown
    days_left: pa.Array  # int32
    overdue: pa.Array  # bool


def sla_columns(
    regulation: pa.Array | pa.ChunkedArray,
    received_at: pa.Array | pa.ChunkedArray,
    *,
    now: datetime,
    completed_at: pa.Array | pa.ChunkedArray | None = None,
    status: pa.Array | pa.ChunkedArray | None = None,
    seen_at: datetime | None = None,
) -> SlaColumns:
    """``due_at``, ``days_left`` and ``overdue`` for arrays of regulations and receipt times.

    Vectorised (one numpy pass per distinct regulation): 1,000,000 rows take well under a
    second. A null ``received_at`` falls back to ``seen_at`` (when the run first saw the
    subject); rows whose regulation is null or has no window get nulls. Where
    ``completed_at`` is not null the clock stopped then, otherwise it runs to ``now``; with
    ``status``, only rows whose status is ``complete`` stop the clock (a job that ended in
    error has not answered the subject, so its clock keeps running).
    """
    regs = _combine(regulation).cast(pa.string())
    received = _micros(_combine(received_at).cast(TIMESTAMP))
    if seen_at is not None:
        fallback = np.int64(_to_us(seen_at))
        received = np.where(received == _NULL, fallback, received)
    due = np.full(len(received), _NULL, dtype=np.int64)
    for reg in pc.unique(regs).drop_null().to_pylist():
        if reg not in RESPONSE_WINDOWS:
            continue
        rows = np.flatnonzero(pc.equal(regs, reg).fill_null(False).to_numpy(zero_copy_only=False))
        rows = rows[received[rows] != _NULL]
        due[rows] = _due_vector(RESPONSE_WINDOWS[reg], received[rows])
    known = due != _NULL
    due_at = pa.array(due, type=pa.int64(), mask=~known).cast(TIMESTAMP)
    return clock_columns(due_at, now=now, completed_at=completed_at, status=status)


def clock_columns(
    due_at: pa.Array | pa.ChunkedArray,
    *,
    now: datetime,
    completed_at: pa.Array | pa.ChunkedArray | None = None,
    status: pa.Array | pa.ChunkedArray | None = None,
) -> SlaColumns:
    """``days_left`` and ``overdue`` of known due times at ``now`` (see :func:`sla_columns`).

    Lets a report written later than status.parquet recount the clocks from ``due_at``.
    """
    due_at = _combine(due_at).cast(TIMESTAMP)
    due = _micros(due_at)
    stop = np.full(len(due), _to_us(now), dtype=np.int64)
    if completed_at is not None:
        done = _micros(_combine(completed_at).cast(TIMESTAMP))
        if status is not None:
            answered = pc.equal(_combine(status), "complete").fill_null(False)
            done = np.where(answered.to_numpy(zero_copy_only=False), done, _NULL)
        stop = np.where(done == _NULL, stop, done)
    known = due != _NULL
    left = np.floor_divide(np.where(known, due, 0) - stop, _US_PER_DAY)
    return SlaColumns(
        due_at=due_at,
        days_left=pa.array(left.astype(np.int32), type=pa.int32(), mask=~known),
        overdue=pa.array(stop > due, type=pa.bool_(), mask=~known),
    )


_NULL = np.iinfo(np.int64).min


def _combine(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks else pa.array([], values.type)
    return values


def _micros(values: pa.Array) -> np.ndarray:
    ints = values.cast(pa.int64())
    return np.asarray(ints.fill_null(_NULL).to_numpy(zero_copy_only=False), dtype=np.int64)


def _to_us(at: datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _due_vector(win: Window, received_us: np.ndarray) -> np.ndarray:
    """Due times (epoch microseconds) of one window for an array of receipt times."""
    when = received_us.astype("datetime64[us]")
    day = when.astype("datetime64[D]")
    time_of_day = when - day
    if win.unit == "days":
        return received_us + win.amount * _US_PER_DAY
    if win.unit == "business_days":
        target = np.busday_offset(day, win.amount, roll="forward")
        return np.asarray((target + time_of_day).astype(np.int64), dtype=np.int64)
    month = day.astype("datetime64[M]")
    day_of_month = day - month.astype("datetime64[D]")  # 0-based
    target = month + win.amount
    month_days = (target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")
    clamped = np.minimum(day_of_month, month_days - np.timedelta64(1, "D"))
    return np.asarray(
        (target.astype("datetime64[D]") + clamped + time_of_day).astype(np.int64), dtype=np.int64
    )
