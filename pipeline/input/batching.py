"""Stage 3: group users into requests, and serialise requests to POST /jobs bodies.

Users may share a request only when their request-level options are equal: the regulation
(per row), the configured products, priority, expandIds and mergePolicyId, and opt-out-of-sale
users travel apart from access/delete users (the service requires it). A request holds at most
``limits.users_per_request`` users (at most 1000). Batches are columnar
(:class:`BatchFrame`): the JSON of each user is built by Arrow kernels, so serialising a million
users costs no Python loop; :meth:`BatchFrame.to_planned` gives the typed
:class:`~pipeline.models.PlannedBatch` when objects are wanted.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .. import constants
from ..errors import ConfigError
from ..keys import user_key, user_keys
from ..models import Action, Identity, PlannedBatch, PlannedUser, RequestOptions, UserRequest
from ..settings import JobSettings
from .rules import CANONICAL_ACTIONS, NO_TIME, REGULATION_LIST

__all__ = ["BatchFrame", "Batcher", "UserColumns", "build_users", "stored_json", "user_key"]

_OPT_OUT = CANONICAL_ACTIONS.index(constants.OPT_OUT_OF_SALE)
_BOTH = CANONICAL_ACTIONS.index("access+delete")


def request_options(
    job: JobSettings,
    regulation: str,
    org: str = constants.DEFAULT_ORG,
    include: tuple[str, ...] | None = None,
) -> RequestOptions:
    """The request-level options of users of ``regulation`` and ``org`` under ``job``
    settings (``include``: the org's products, default ``job.include``)."""
    return RequestOptions(
        regulation=regulation,
        include=tuple(include or job.include),
        priority=job.priority,
        expand_ids=job.expand_ids,
        merge_policy_id=job.merge_policy_id,
        org=org,
    )


@dataclass(frozen=True)
class BatchFrame:
    """One planned request in columnar form.

    ``users`` has the columns of :data:`USER_SCHEMA`, one row per user, in a deterministic order.
    """

    batch_id: str
    options: RequestOptions
    users: pa.Table

    @property
    def job_count(self) -> int:
        """Jobs this request creates: one per (user, action)."""
        doubled = pc.sum(pc.equal(self.users.column("action"), _BOTH)).as_py() or 0
        return int(self.users.num_rows) + int(doubled)

    def to_planned(self) -> PlannedBatch:
        """The typed batch, one object per user and identity: what the journal stores and sends."""
        users = self.users
        ids = users.column("identities").combine_chunks()
        flat = ids.flatten()  # the identities of these users only, even for a slice
        id_offsets = _relative(ids.offsets.to_numpy())
        namespaces = flat.field("namespace").cast(pa.string()).to_pylist()
        values = flat.field("value").to_pylist()
        kinds = flat.field("type").cast(pa.string()).to_pylist()
        rows = users.column("input_rows").combine_chunks()
        row_offsets = _relative(rows.offsets.to_numpy())
        row_values = rows.flatten().to_pylist()
        planned = []
        for i, (subject, part, key, action, received) in enumerate(
            zip(
                *(users.column(n).to_pylist() for n in _SCALARS),
                strict=True,
            )
        ):
            lo, hi = id_offsets[i], id_offsets[i + 1]
            identities = tuple(map(Identity, namespaces[lo:hi], values[lo:hi], kinds[lo:hi]))
            request = UserRequest(key=key, actions=_ACTIONS[action], identities=identities)
            input_rows = tuple(row_values[row_offsets[i] : row_offsets[i + 1]])
            planned.append(PlannedUser(subject, part, request, input_rows, received))
        return PlannedBatch(batch_id=self.batch_id, options=self.options, users=tuple(planned))


_SCALARS = ("subject_key", "part", "user_key", "action", "received_at")
_ACTIONS = [tuple(Action(a) for a in action.split("+")) for action in CANONICAL_ACTIONS]


def _relative(offsets: np.ndarray) -> list[int]:
    return [int(v) for v in (offsets - offsets[0]).tolist()]


_DICT = pa.dictionary(pa.int32(), pa.string())
IDENTITY_TYPE = pa.struct([("namespace", _DICT), ("value", pa.string()), ("type", _DICT)])
USER_SCHEMA = pa.schema(
    [
        ("subject_key", pa.string()),
        ("part", pa.int64()),
        ("user_key", pa.string()),
        ("action", pa.int8()),  # code into CANONICAL_ACTIONS
        ("regulation", pa.int16()),  # code into REGULATION_LIST
        ("received_at", pa.string()),
        ("input_rows", pa.list_(pa.int64())),
        ("identities", pa.list_(IDENTITY_TYPE)),
    ]
)
# the org of each user (a code into the plan's org names), after the USER_SCHEMA columns; a
# table without it is of the first org
ORG_FIELD = pa.field("org", pa.int16())


# the stored (JSON) form of each user's identities and input rows, after the other columns of
# a table that :func:`with_stored_json` extended (what the journal writes, built in bulk)
IDENTITIES_JSON = "identities_json"
INPUT_ROWS_JSON = "input_rows_json"
# characters JSON escapes: a value holding one is serialised by orjson, the rest by Arrow
_ESCAPED = r'[\x00-\x1f"\\]'


def _json_strings(values: pa.Array) -> pa.Array:
    """Each string as a JSON string literal, exactly as orjson writes it."""
    if pc.any(pc.match_substring_regex(values, _ESCAPED)).as_py():
        return pa.array([orjson.dumps(v).decode() for v in values.to_pylist()], pa.string())
    return pc.binary_join_element_wise('"', values, '"', "")


def _json_lists(lists: pa.Array, items: pa.Array) -> pa.Array:
    """``[a,b,...]`` per list of ``lists`` (a ListArray), its items already JSON text."""
    offsets = lists.offsets
    rebased = pc.subtract(offsets, offsets[0]) if len(offsets) else offsets
    joined = pc.binary_join(pa.ListArray.from_arrays(rebased, items), ",")
    return pc.binary_join_element_wise("[", joined, "]", "")


def stored_json(users: pa.Table) -> tuple[pa.Array, pa.Array]:
    """The JSON text of each user's identities (``[[namespace,value,type],...]``) and input
    rows (``[3,17]``), byte for byte what ``orjson.dumps`` gives for the typed users; built by
    Arrow kernels (the reused :data:`IDENTITIES_JSON` / :data:`INPUT_ROWS_JSON` columns when
    the table has them)."""
    if IDENTITIES_JSON in users.column_names:
        return (
            users.column(IDENTITIES_JSON).combine_chunks(),
            users.column(INPUT_ROWS_JSON).combine_chunks(),
        )
    ids = users.column("identities").combine_chunks()
    flat = ids.flatten()  # the identities of these users only, even for a slice
    parts = [
        _json_strings(flat.field(name).cast(pa.string())) for name in ("namespace", "value", "type")
    ]
    items = pc.binary_join_element_wise("[", parts[0], ",", parts[1], ",", parts[2], "]", "")
    rows = users.column("input_rows").combine_chunks()
    numbers = rows.flatten().cast(pa.string())
    return _json_lists(ids, items), _json_lists(rows, numbers)


def with_stored_json(users: pa.Table) -> pa.Table:
    """``users`` with the :func:`stored_json` columns appended (built once per partition, in
    the merge workers, instead of once per request by the journal)."""
    identities, input_rows = stored_json(users)
    return users.append_column(IDENTITIES_JSON, identities).append_column(
        INPUT_ROWS_JSON, input_rows
    )


def org_codes(users: pa.Table) -> np.ndarray:
    """The org code of each user of ``users`` (0 where the table has no org column)."""
    if ORG_FIELD.name in users.column_names:
        codes: np.ndarray = users.column(ORG_FIELD.name).to_numpy()
        return codes
    return np.zeros(users.num_rows, dtype=np.int16)


class Batcher:
    """Packs users into requests of equal options, ``users_per_request`` at most each.

    Feed user tables in a deterministic order with :meth:`add`; full batches come out at once,
    the partly filled ones at :meth:`flush`. Memory: at most one partial batch per options group.
    """

    def __init__(
        self,
        *,
        run_id: str,
        job: JobSettings,
        users_per_request: int,
        orgs: Sequence[tuple[str, tuple[str, ...]]] = ((constants.DEFAULT_ORG, ()),),
    ) -> None:
        """``orgs``: each org's name and products (empty: ``job.include``), by org code."""
        if not 1 <= users_per_request <= constants.MAX_USERS_PER_REQUEST:
            raise ConfigError(
                f"limits.users_per_request must be 1..{constants.MAX_USERS_PER_REQUEST}"
            )
        self._run_id = run_id
        self._job = job
        self._size = users_per_request
        self._orgs = tuple(orgs)
        self._pending: dict[tuple[int, str, bool], list[pa.Table]] = {}
        self._sequence = 0

    def add(self, users: pa.Table) -> Iterator[BatchFrame]:
        """Queue ``users`` (USER_SCHEMA, grouped by options); yield every batch that filled."""
        if users.num_rows == 0:
            return
        regulation = users.column("regulation").to_numpy()
        org = org_codes(users)
        opt_out = users.column("action").to_numpy() == _OPT_OUT
        change = np.flatnonzero(
            (regulation[1:] != regulation[:-1])
            | (opt_out[1:] != opt_out[:-1])
            | (org[1:] != org[:-1])
        )
        starts = np.concatenate([[0], change + 1, [len(regulation)]])
        for start, stop in itertools.pairwise(starts):
            group = (int(org[start]), REGULATION_LIST[int(regulation[start])], bool(opt_out[start]))
            yield from self._queue(group, users.slice(int(start), int(stop - start)))

    def _queue(self, group: tuple[int, str, bool], users: pa.Table) -> Iterator[BatchFrame]:
        queue = self._pending.setdefault(group, [])
        queue.append(users)
        if sum(t.num_rows for t in queue) < self._size:
            return
        merged = pa.concat_tables(queue)
        start = 0
        while merged.num_rows - start >= self._size:
            yield self._frame(group, merged.slice(start, self._size))
            start += self._size
        rest = merged.slice(start)
        self._pending[group] = [rest] if rest.num_rows else []

    def flush(self) -> Iterator[BatchFrame]:
        """Yield the partly filled batches, in a fixed group order."""
        for group in sorted(self._pending):
            queue = self._pending[group]
            if queue:
                yield self._frame(group, pa.concat_tables(queue))
        self._pending.clear()

    def _frame(self, group: tuple[int, str, bool], users: pa.Table) -> BatchFrame:
        self._sequence += 1
        batch_id = f"{self._run_id}-b{self._sequence:06d}"
        org, include = self._orgs[group[0]]
        options = request_options(self._job, group[1], org, include or None)
        return BatchFrame(batch_id=batch_id, options=options, users=users.combine_chunks())


@dataclass(frozen=True)
class UserColumns:
    """Per-user columns of one partition, in plan order, as :func:`build_users` takes them.

    User ``i`` owns identities ``id_offsets[i]:id_offsets[i + 1]`` and the next
    ``row_counts[i]`` entries of ``rows`` (0 for the second and later parts of a subject).
    Actions and regulations are codes into ``CANONICAL_ACTIONS`` and ``REGULATION_LIST``;
    ``received_at`` is in epoch seconds, ``NO_TIME`` when absent.
    """

    subject_keys: pa.Array
    parts: np.ndarray
    actions: np.ndarray
    regulations: np.ndarray
    orgs: np.ndarray  # codes into the plan's org names
    received_at: np.ndarray
    row_counts: np.ndarray
    rows: np.ndarray
    id_offsets: np.ndarray
    id_kinds: np.ndarray
    id_values: pa.Array


def _iso(seconds: np.ndarray) -> pa.Array:
    stamps = pa.array(seconds, pa.int64()).cast(pa.timestamp("s"))
    text = pc.binary_join_element_wise(
        pc.replace_substring(stamps.cast(pa.string()), " ", "T"), "Z", ""
    )
    return pc.if_else(pa.array(seconds == NO_TIME), pa.scalar(None, pa.string()), text)


def build_users(run_id: str, c: UserColumns, kinds: Sequence[tuple[str, str]]) -> pa.Table:
    """The USER_SCHEMA table of users ``c``; ``kinds`` names the identity kind codes."""
    parts = pa.array(c.parts, pa.int64())
    keys = user_keys(run_id, c.subject_keys, parts)
    offsets = pa.array(c.id_offsets.astype(np.int32))
    kind_codes = pa.array(c.id_kinds.astype(np.int32))
    namespaces = pa.array([k[0] for k in kinds], pa.string())
    types = pa.array([k[1] for k in kinds], pa.string())
    structs = pa.StructArray.from_arrays(
        [
            pa.DictionaryArray.from_arrays(kind_codes, namespaces),
            c.id_values,
            pa.DictionaryArray.from_arrays(kind_codes, types),
        ],
        fields=list(IDENTITY_TYPE),
    )
    row_offsets = np.zeros(len(c.row_counts) + 1, dtype=np.int32)
    np.cumsum(c.row_counts, out=row_offsets[1:])
    return pa.table(
        [
            c.subject_keys,
            parts,
            keys,
            pa.array(c.actions, pa.int8()),
            pa.array(c.regulations, pa.int16()),
            _iso(c.received_at),
            pa.ListArray.from_arrays(pa.array(row_offsets), pa.array(c.rows, pa.int64())),
            pa.ListArray.from_arrays(offsets, structs),
            pa.array(c.orgs, pa.int16()),
        ],
        schema=USER_SCHEMA.append(ORG_FIELD),
    )
