"""Subject rules of stage 2, over one spill partition: merge, conflicts, dedup, split.

Rows with the same subject key are one subject: their identities are unioned and duplicates
collapse (first appearance decides the order). Keys whose rows disagree on action or
regulation are rejected row by row with ``CONFLICTING_ROWS``. A subject with more than 9
identities is cut into users of 9 (``part`` 0, 1, ...) or rejected with ``TOO_MANY_IDS``.

Vectorised on integer codes: keys and values are dictionary-encoded, then NumPy sorts and run
boundaries do the grouping; no Python loop over subjects. Subjects come out in the order their
keys first appear in the partition (grouped by request options), which is deterministic for a
given input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import constants
from .batching import USER_SCHEMA, UserColumns, build_users
from .rules import CANONICAL_ACTIONS, REGULATION_LIST, REJECT_SCHEMA, Reason

_PER_USER = constants.MAX_IDS_PER_USER
_OPT_OUT = CANONICAL_ACTIONS.index(constants.OPT_OUT_OF_SALE)


@dataclass(frozen=True)
class Merged:
    """A partition after the subject rules: its users (USER_SCHEMA) and its rejected rows."""

    users: pa.Table
    rejects: pa.Table
    subjects: int


def run_starts(*columns: np.ndarray) -> np.ndarray:
    """Start positions of the runs of equal tuples over sorted, equally long ``columns``."""
    n = len(columns[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for column in columns:
        change[1:] |= column[1:] != column[:-1]
    return np.flatnonzero(change)


def _first_occurrences(key: np.ndarray, kind: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each distinct (key, kind, value) triple."""
    kinds, values = int(kind.max(initial=0)) + 1, int(value.max(initial=0)) + 1
    if (int(key.max(initial=0)) + 1) * kinds * values < 2**62:
        ident = (key * kinds + kind) * values + value  # exact: one int64 per triple
        first: np.ndarray = np.unique(ident, return_index=True)[1]
        return first
    triples = np.lexsort((np.arange(len(key)), value, kind, key))
    starts = run_starts(key[triples], kind[triples], value[triples])
    fallback: np.ndarray = triples[starts]
    return fallback


def _encode(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    encoded = pc.dictionary_encode(column.combine_chunks())
    return encoded.indices.to_numpy().astype(np.int64), encoded.dictionary


class _Rejects:
    def __init__(
        self,
        rows: np.ndarray,
        keys: np.ndarray,
        dictionary: pa.Array,
        orgs: np.ndarray,
        org_names: Sequence[str],
    ) -> None:
        self.rows, self.keys, self.dictionary = rows, keys, dictionary
        self.orgs, self.org_names = orgs, pa.array(list(org_names), pa.string())
        self.tables: list[pa.Table] = []

    def add(self, mask: np.ndarray, reason: Reason, message: str) -> None:
        unique_rows, first = np.unique(self.rows[mask], return_index=True)
        n = len(unique_rows)
        self.tables.append(
            pa.table(
                [
                    pa.array(unique_rows),
                    pc.take(self.dictionary, pa.array(self.keys[mask][first])),
                    pa.array([reason.value] * n, pa.string()),
                    pa.array([message] * n, pa.string()),
                    pc.take(self.org_names, pa.array(self.orgs[mask][first].astype(np.int64))),
                ],
                schema=REJECT_SCHEMA,
            )
        )

    def table(self) -> pa.Table:
        return pa.concat_tables(self.tables) if self.tables else REJECT_SCHEMA.empty_table()


def merge_partition(
    cells: pa.Table,
    run_id: str,
    on_too_many_ids: str,
    kinds: Sequence[tuple[str, str]],
    org_names: Sequence[str] = (constants.DEFAULT_ORG,),
) -> Merged:
    """Apply the subject rules to the cells of one partition and build its users."""
    if cells.num_rows == 0:
        return Merged(USER_SCHEMA.empty_table(), REJECT_SCHEMA.empty_table(), 0)
    key, key_dict = _encode(cells.column("key"))
    value, value_dict = _encode(cells.column("value"))
    row = cells.column("row").to_numpy()
    kind = cells.column("kind").to_numpy()
    action = cells.column("action").to_numpy()
    regulation = cells.column("regulation").to_numpy()
    org = cells.column("org").to_numpy()
    received = cells.column("received_at").to_numpy()
    rejects = _Rejects(row, key, key_dict, org, org_names)
    bad_key = np.zeros(len(key_dict), dtype=bool)

    # (key, row) order by two stable sorts: cells are nearly in row order already (timsort
    # runs), and a row's cells keep their column order
    by_row = np.argsort(row, kind="stable")
    order = by_row[np.argsort(key[by_row], kind="stable")]
    starts = run_starts(key[order])
    for codes in (action, regulation, org):
        ordered = codes[order]
        low = np.minimum.reduceat(ordered, starts)
        high = np.maximum.reduceat(ordered, starts)
        bad_key[key[order][starts][low != high]] = True
    if bad_key.any():
        rejects.add(
            bad_key[key],
            Reason.CONFLICTING_ROWS,
            "rows of this subject_key disagree on action, regulation or org",
        )

    # distinct identities in order of first appearance; users grouped by request options
    # (org, regulation, opt-out) so that batching only slices
    kept = order[~bad_key[key[order]]]
    group = (org.astype(np.int32) * len(REGULATION_LIST) + regulation) * 2 + (action == _OPT_OUT)
    firsts = kept[np.sort(_first_occurrences(key[kept], kind[kept], value[kept]))]
    firsts = firsts[np.argsort(group[firsts], kind="stable")]  # radix sort (16-bit)
    id_starts = run_starts(key[firsts])
    sizes = np.diff(np.append(id_starts, len(firsts)))
    if on_too_many_ids == "reject" and (sizes > _PER_USER).any():
        too_many = np.zeros(len(key_dict), dtype=bool)
        too_many[key[firsts][id_starts][sizes > _PER_USER]] = True
        rejects.add(
            too_many[key],
            Reason.TOO_MANY_IDS,
            f"the subject has more than {_PER_USER} identities",
        )
        bad_key |= too_many
        firsts = firsts[~too_many[key[firsts]]]
        id_starts = run_starts(key[firsts])
        sizes = np.diff(np.append(id_starts, len(firsts)))
    if len(firsts) == 0:
        return Merged(USER_SCHEMA.empty_table(), rejects.table(), 0)

    # subjects: their rows, action, regulation and earliest received_at
    kept = order[~bad_key[key[order]]]
    order = kept[np.argsort(group[kept], kind="stable")]
    subject_starts = run_starts(key[order])
    pair_starts = run_starts(key[order], row[order])
    subject_rows = row[order][pair_starts]
    rows_per_subject = np.diff(
        np.append(np.searchsorted(pair_starts, subject_starts), len(pair_starts))
    )
    first_cell = order[subject_starts]
    earliest = np.minimum.reduceat(received[order], subject_starts)

    rank = np.arange(len(firsts)) - np.repeat(id_starts, sizes)
    part = rank // _PER_USER
    user_starts = run_starts(key[firsts], part)
    user_part = part[user_starts]
    subject = np.cumsum(user_part == 0) - 1
    columns = UserColumns(
        subject_keys=pc.take(key_dict, pa.array(key[first_cell][subject])),
        parts=user_part,
        actions=action[first_cell][subject],
        regulations=regulation[first_cell][subject],
        orgs=org[first_cell][subject],
        received_at=earliest[subject],
        row_counts=np.where(user_part == 0, rows_per_subject[subject], 0),
        rows=subject_rows,
        id_offsets=np.append(user_starts, len(firsts)),
        id_kinds=kind[firsts],
        id_values=pc.take(value_dict, pa.array(value[firsts])),
    )
    users = build_users(run_id, columns, kinds)
    return Merged(users=users, rejects=rejects.table(), subjects=len(subject_starts))
