"""Stage 2: row rules. Turns a batch of string rows into identity cells and rejects.

Everything here is vectorised with ``pyarrow.compute``: a batch of 65,536 rows costs a few dozen
kernel calls, no per-cell Python. A row is rejected as a whole, with the first failing rule's
stable reason code (:class:`Reason`); rules that need all the rows of a subject
(``CONFLICTING_ROWS``, ``TOO_MANY_IDS``) run later, in :mod:`pipeline.input.planning`.
Messages name columns and rules, never identity values.
"""

from __future__ import annotations

import enum
import threading
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import constants
from ..keys import keyed_hex
from ..settings import JobSettings
from .columns import Layout
from .textcols import clean, has_bytes, has_upper, longest, string_buffers


class Reason(enum.StrEnum):
    """Stable reason codes of ``rejects.parquet``."""

    EMPTY_KEY = "EMPTY_KEY"  # a subject_key column is present but this row's key is empty
    UNKNOWN_ACTION = "UNKNOWN_ACTION"
    UNKNOWN_REGULATION = "UNKNOWN_REGULATION"
    BAD_RECEIVED_AT = "BAD_RECEIVED_AT"  # not an ISO-8601 date or date-time
    MISSING_IDENTITY = "MISSING_IDENTITY"  # no non-empty identity in the row
    UNKNOWN_NAMESPACE = "UNKNOWN_NAMESPACE"  # long layout: empty namespace, or a standard
    # type with a namespace that is not a standard one
    UNKNOWN_TYPE = "UNKNOWN_TYPE"  # long layout: a type the service does not know
    BAD_EMAIL = "BAD_EMAIL"
    BAD_ECID = "BAD_ECID"  # decimal digits only, at most 38
    VALUE_TOO_LONG = "VALUE_TOO_LONG"
    CONFLICTING_ROWS = "CONFLICTING_ROWS"  # rows of one key disagree on action, regulation
    # or org
    TOO_MANY_IDS = "TOO_MANY_IDS"  # more than 9 identities and input.on_too_many_ids=reject
    UNKNOWN_ORG = "UNKNOWN_ORG"  # the org cell names no [[orgs]] table (or is empty with
    # several orgs and no [job] org)


MAX_VALUE_CHARS = 256  # longer identity values are refused (emails stop at 254)
CANONICAL_ACTIONS = ("access", "delete", "access+delete", constants.OPT_OUT_OF_SALE)
_ACTION_SPELLINGS = {
    "access": "access",
    "delete": "delete",
    "access+delete": "access+delete",
    "delete+access": "access+delete",
    "access,delete": "access+delete",
    "delete,access": "access+delete",
    "opt-out-of-sale": constants.OPT_OUT_OF_SALE,
}
# no whitespace and no control character (an escape sequence is not part of an address)
_EMAIL = r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$"
_ECID = r"^[0-9]{1,38}$"
_TIME_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S",
)
_NULL = pa.scalar(None, pa.string())
REGULATION_LIST = tuple(sorted(constants.REGULATIONS))
NO_TIME = np.iinfo(np.int64).max  # received_at of a row without one, in spill files
CELL_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("key", pa.string()),
        ("kind", pa.int32()),  # index into the plan's IdentityKinds: (namespace, type)
        ("value", pa.string()),
        ("action", pa.int8()),  # index into CANONICAL_ACTIONS
        ("regulation", pa.int16()),  # index into REGULATION_LIST
        ("received_at", pa.int64()),  # epoch seconds UTC, NO_TIME when absent
        ("org", pa.int16()),  # index into the plan's org names
    ]
)


class IdentityKinds:
    """The (namespace, type) pairs met so far, numbered in order of first appearance."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []
        self._codes: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()  # batches are normalised on worker threads

    def code(self, namespace: str, kind: str) -> int:
        """The number of ``(namespace, kind)``, assigning the next one if it is new."""
        pair = (namespace, kind)
        with self._lock:
            if pair not in self._codes:
                self._codes[pair] = len(self.pairs)
                self.pairs.append(pair)
            return self._codes[pair]


REJECT_SCHEMA = pa.schema(
    [
        ("input_row", pa.int64()),
        ("subject_key", pa.string()),
        ("reason_code", pa.string()),
        ("message", pa.string()),
        ("org", pa.string()),  # the row's org ([[orgs]] name, or the cell as given if unknown)
    ]
)


@dataclass
class Normalised:
    """One batch after the row rules: valid identity cells, rejected rows, mapped values."""

    rows: int
    cells: pa.Table
    rejects: pa.Table
    deprecated: Counter[str] = field(default_factory=Counter)


def _lookup(values: pa.Array, mapping: dict[str, str]) -> pa.Array:
    index = pc.index_in(values, value_set=pa.array(list(mapping), pa.string()))
    return pc.take(pa.array(list(mapping.values()), pa.string()), index)


def _column(batch: pa.RecordBatch, name: str | None) -> pa.Array:
    if name is None:
        return pa.nulls(batch.num_rows, pa.string())
    return clean(batch.column(name))


class _Verdict:
    """First failing rule per row: a reason and a message number, 0 where the row is fine."""

    def __init__(self, rows: int) -> None:
        self.code = np.zeros(rows, dtype=np.int16)
        self.messages: list[tuple[str | None, str | None]] = [(None, None)]

    def fail(self, mask: pa.Array | bool, reason: Reason, message: str) -> None:
        """Rows where ``mask`` holds (nulls do not) fail with ``reason`` unless failed before."""
        if isinstance(mask, bool):
            hits = np.full(len(self.code), mask)
        else:
            if not pc.any(mask).as_py():
                return
            hits = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
        self.messages.append((reason.value, message))
        self.code[hits & (self.code == 0)] = len(self.messages) - 1

    @property
    def ok(self) -> np.ndarray:
        """True for the rows that passed every rule so far."""
        passed: np.ndarray = self.code == 0
        return passed

    def columns(self, failed: np.ndarray) -> tuple[pa.Array, pa.Array]:
        """Reason codes and messages of the rows where ``failed``."""
        reasons = pa.array([m[0] for m in self.messages], pa.string())
        messages = pa.array([m[1] for m in self.messages], pa.string())
        index = pa.array(self.code[failed])
        return pc.take(reasons, index), pc.take(messages, index)


def _received_at(values: pa.Array, verdict: _Verdict) -> pa.Array:
    """Epoch seconds (UTC; a time without offset is taken as UTC), NO_TIME when empty."""
    parsed = pa.nulls(len(values), pa.int64())
    offsets, data = string_buffers(values)
    if len(values) and (data[offsets[0] : offsets[-1]] == ord(".")).any():
        values = pc.replace_substring_regex(values, r"(:\d{2})\.\d+", r"\1")  # drop fractions
    for fmt in _TIME_FORMATS:
        missing = pc.and_(pc.is_valid(values), pc.is_null(parsed))
        if not pc.any(missing).as_py():
            break
        attempt = pc.strptime(values, format=fmt, unit="s", error_is_null=True)
        parsed = pc.coalesce(parsed, attempt.cast(pa.int64()))
    parsed = pc.if_else(
        _real_dates(values, pc.is_valid(parsed)), parsed, pa.scalar(None, pa.int64())
    )
    verdict.fail(
        pc.and_(pc.is_valid(values), pc.is_null(parsed)),
        Reason.BAD_RECEIVED_AT,
        "received_at is not an ISO-8601 date or date-time",
    )
    return pc.fill_null(parsed, NO_TIME)


_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _real_dates(values: pa.Array, parsed: pa.Array) -> pa.Array:
    """False where a parsed value's date does not exist (strptime rolls 02-30 over to March).

    Every accepted format starts with ``YYYY-MM-DD``: the digits are read from the buffer.
    """
    ok = np.ones(len(values), dtype=bool)
    where = np.flatnonzero(pc.fill_null(parsed, False).to_numpy(zero_copy_only=False))
    if len(where):
        offsets, data = string_buffers(values)
        digits = data[offsets[where][:, None] + np.arange(10)].astype(np.int64) - ord("0")
        year = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
        month = digits[:, 5] * 10 + digits[:, 6]
        day = digits[:, 8] * 10 + digits[:, 9]
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        last = _DAYS[np.clip(month, 0, 12)] + (leap & (month == 2))
        ok[where] = (month >= 1) & (month <= 12) & (day >= 1) & (day <= last)
    return pa.array(ok)


def _identity_checks(
    namespace: str | None, names: pa.Array | None, value: pa.Array, verdict: _Verdict, where: str
) -> pa.Array:
    """Normalised values (emails lower-cased); syntax failures recorded in ``verdict``.

    ``namespace`` is the namespace of a whole wide column; ``names`` one per row (long).
    """

    def among(name: str) -> pa.Array | bool:
        return (
            pc.fill_null(pc.equal(names, name), False) if names is not None else namespace == name
        )

    if longest(value) > MAX_VALUE_CHARS:  # bytes >= characters: usually nothing to count
        verdict.fail(
            pc.greater(pc.utf8_length(value), MAX_VALUE_CHARS),
            Reason.VALUE_TOO_LONG,
            f"{where}: longer than {MAX_VALUE_CHARS} characters",
        )
    is_email, is_ecid = among("email"), among("ECID")
    if is_email is not False:
        lowered = pc.utf8_lower(value) if has_upper(value) else value
        value = lowered if is_email is True else pc.if_else(is_email, lowered, value)
        bad = pc.invert(pc.match_substring_regex(value, _EMAIL))
        verdict.fail(
            bad if is_email is True else pc.and_(is_email, bad),
            Reason.BAD_EMAIL,
            f"{where}: not an email address",
        )
    if is_ecid is not False:
        bad = pc.invert(
            pc.and_(pc.ascii_is_decimal(value), pc.less_equal(pc.utf8_length(value), 38))
        )
        verdict.fail(
            bad if is_ecid is True else pc.and_(is_ecid, bad),
            Reason.BAD_ECID,
            f"{where}: an ECID is 1 to 38 decimal digits",
        )
    return value


def _long_identity(
    batch: pa.RecordBatch, layout: Layout, verdict: _Verdict, kinds: IdentityKinds
) -> tuple[pa.Array, pa.Array]:
    raw_ns = _column(batch, layout.namespace_column)
    value = _column(batch, layout.value_column)
    raw_type = _column(batch, layout.type_column)
    standard = {name: spelled for name, (spelled, _) in constants.STANDARD_NAMESPACES.items()}
    canonical = _lookup(pc.utf8_lower(raw_ns), standard)
    kind = pc.coalesce(raw_type, pc.if_else(pc.is_valid(canonical), "standard", "custom"))
    is_standard = pc.equal(kind, "standard")
    namespace = pc.if_else(is_standard, canonical, raw_ns)
    verdict.fail(pc.is_null(value), Reason.MISSING_IDENTITY, "the row has no identity value")
    verdict.fail(
        pc.is_null(raw_ns), Reason.UNKNOWN_NAMESPACE, "the row has a value but no namespace"
    )
    verdict.fail(
        pc.and_(is_standard, pc.is_null(canonical)),
        Reason.UNKNOWN_NAMESPACE,
        "type 'standard' needs a standard namespace (email, ecid, phone, ...)",
    )
    known_types = pa.array(sorted(constants.ID_TYPES), pa.string())
    verdict.fail(
        pc.invert(pc.is_in(kind, value_set=known_types)),
        Reason.UNKNOWN_TYPE,
        "type is not one of " + ", ".join(sorted(constants.ID_TYPES)),
    )
    value = _identity_checks(None, namespace, value, verdict, "value")
    pairs = pc.dictionary_encode(pc.binary_join_element_wise(namespace, kind, "\x1f"))
    table = [kinds.code(*str(p).split("\x1f", 1)) for p in pairs.dictionary.to_pylist()]
    codes = pc.take(pa.array(table, pa.int32()), pairs.indices)
    return codes, value


def normalise_batch(
    batch: pa.RecordBatch,
    first_row: int,
    layout: Layout,
    job: JobSettings,
    key_secret: bytes,
    kinds: IdentityKinds,
    orgs: tuple[str, ...] = (constants.DEFAULT_ORG,),
    default_org: str | None = constants.DEFAULT_ORG,
) -> Normalised:
    """Apply the row rules to ``batch`` whose first row is data row ``first_row``.

    ``orgs`` are the configured org names (the codes of the ``org`` cells), ``default_org``
    the org of rows whose org cell is empty (None: such rows are rejected)."""
    n = batch.num_rows
    rows = pa.array(np.arange(first_row, first_row + n, dtype=np.int64))
    verdict = _Verdict(n)
    key = _column(batch, layout.key_column)
    if layout.key_column is not None:
        verdict.fail(pc.is_null(key), Reason.EMPTY_KEY, "subject_key is empty")
    action = _actions(_column(batch, layout.action_column), job, verdict)
    regulation, deprecated = _regulations(_column(batch, layout.regulation_column), job, verdict)
    received = _received_at(_column(batch, layout.received_column), verdict)
    org, org_label = _orgs(_column(batch, layout.org_column), orgs, default_org, verdict)

    columns: list[tuple[pa.Array, pa.Array]] = []
    if layout.layout == "long":
        columns.append(_long_identity(batch, layout, verdict, kinds))
    else:
        for spec in layout.identities:
            value = _column(batch, spec.column)
            value = _identity_checks(
                spec.namespace, None, value, verdict, f"column {spec.column!r}"
            )
            code = kinds.code(spec.namespace, spec.type)
            columns.append((pa.array(np.full(n, code, dtype=np.int32)), value))
        any_present = pc.is_valid(columns[0][1])
        for _, more in columns[1:]:
            any_present = pc.or_(any_present, pc.is_valid(more))
        verdict.fail(pc.invert(any_present), Reason.MISSING_IDENTITY, "the row has no identity")
        if layout.key_column is None:
            key = _derived_keys(layout, columns, key_secret)

    ok = verdict.ok
    failed = ~ok
    reasons, messages = verdict.columns(failed)
    rejects = pa.table(
        [
            rows.filter(pa.array(failed)),
            key.filter(pa.array(failed)),
            reasons,
            messages,
            org_label.filter(pa.array(failed)),
        ],
        schema=REJECT_SCHEMA,
    )
    parts = []
    for code, value in columns:
        keep = pa.array(ok & value.is_valid().to_numpy(zero_copy_only=False))
        arrays = [rows, key, code, value, action, regulation, received, org]
        parts.append(pa.table(arrays, schema=CELL_SCHEMA).filter(keep))
    cells = pa.concat_tables(parts) if parts else CELL_SCHEMA.empty_table()
    return Normalised(rows=n, cells=cells, rejects=rejects, deprecated=deprecated)


def _actions(raw: pa.Array, job: JobSettings, verdict: _Verdict) -> pa.Array:
    spelled = pc.utf8_lower(raw) if has_upper(raw) else raw
    if has_bytes(spelled, ord(" "), ord(" ")):
        spelled = pc.replace_substring(spelled, " ", "")
    spelled = pc.coalesce(spelled, pa.scalar(job.default_action))
    codes = [CANONICAL_ACTIONS.index(c) for c in _ACTION_SPELLINGS.values()]
    index = pc.index_in(spelled, value_set=pa.array(list(_ACTION_SPELLINGS), pa.string()))
    action = pc.take(pa.array(codes, pa.int8()), index)
    verdict.fail(
        pc.is_null(action),
        Reason.UNKNOWN_ACTION,
        "action is not one of " + " | ".join(CANONICAL_ACTIONS),
    )
    return action


def _orgs(
    raw: pa.Array, orgs: tuple[str, ...], default: str | None, verdict: _Verdict
) -> tuple[pa.Array, pa.Array]:
    """Org codes (0 where the row fails), and the org to report: its name, the cell as given
    when it names no org, null when empty without a default."""
    if default is not None:
        raw = pc.coalesce(raw, pa.scalar(default))
    else:
        verdict.fail(
            pc.is_null(raw),
            Reason.UNKNOWN_ORG,
            "org is empty, and several orgs are configured without [job] org",
        )
    code = pc.index_in(raw, value_set=pa.array(orgs, pa.string())).cast(pa.int16())
    verdict.fail(
        pc.and_(pc.is_valid(raw), pc.is_null(code)),
        Reason.UNKNOWN_ORG,
        "org is not the name of an [[orgs]] table",
    )
    return pc.fill_null(code, 0), raw


def _regulations(
    raw: pa.Array, job: JobSettings, verdict: _Verdict
) -> tuple[pa.Array, Counter[str]]:
    lowered = pc.coalesce(pc.utf8_lower(raw) if has_upper(raw) else raw, pa.scalar(job.regulation))
    mapping = {r: r for r in REGULATION_LIST} | dict(constants.DEPRECATED_REGULATIONS)
    codes = [REGULATION_LIST.index(current) for current in mapping.values()]
    index = pc.index_in(lowered, value_set=pa.array(list(mapping), pa.string()))
    regulation = pc.take(pa.array(codes, pa.int16()), index)
    verdict.fail(
        pc.is_null(regulation), Reason.UNKNOWN_REGULATION, "regulation is not a known value"
    )
    deprecated: Counter[str] = Counter()
    old = pc.greater_equal(index, len(REGULATION_LIST))
    if pc.any(old).as_py():
        for item in pc.value_counts(lowered.filter(old)).to_pylist():
            deprecated[str(item["values"])] += int(item["counts"])
    return regulation, deprecated


def _derived_keys(
    layout: Layout, columns: list[tuple[pa.Array, pa.Array]], secret: bytes
) -> pa.Array:
    pieces = [
        pc.binary_join_element_wise(f"{spec.namespace}\x1f{spec.type}", value, "\x1f")
        for spec, (_, value) in zip(layout.identities, columns, strict=True)
    ]
    joined = pc.binary_join_element_wise(*pieces, "\x1e", null_handling="skip")
    empty = pc.equal(pc.binary_length(joined), 0)
    digest = pc.binary_join_element_wise("h", keyed_hex(joined, secret, 24), "")
    return pc.if_else(empty, _NULL, digest)
