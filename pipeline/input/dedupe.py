"""Dedupe across runs at planning time: drop the (subject, action, regulation) jobs that an
earlier run of the workspace already submitted and that still block (open, or complete within
the cooldown), vectorised over the planned user tables.

The journal's workspace registry (:mod:`pipeline.journal.registry`) builds a
:class:`Blocklist` of fingerprints (a keyed 64-bit hash of the subject key under
``DSAR_KEY_SECRET``, :func:`pipeline.keys.fingerprints`); :meth:`Blocklist.split` cuts a
USER_SCHEMA table into the users still to submit (an ``access+delete`` user keeps the action
that is not blocked) and a :data:`SKIPPED_SCHEMA` table of the jobs skipped, each with the run
and job id of the earlier job that blocks it. No Python loop over users: one hashed lookup
(a pandas index of int64 fingerprints) per (action, regulation) group of the blocklist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import constants
from ..keys import fingerprints
from .batching import USER_SCHEMA, org_codes
from .rules import CANONICAL_ACTIONS, REGULATION_LIST

__all__ = ["SKIPPED_SCHEMA", "BlockingChunk", "Blocklist"]

_ACCESS, _DELETE, _BOTH = (
    CANONICAL_ACTIONS.index(a) for a in ("access", "delete", "access+delete")
)
_OPT_OUT = CANONICAL_ACTIONS.index(constants.OPT_OUT_OF_SALE)
# single action -> the user action codes that include it
_HOLDERS: dict[str, tuple[int, ...]] = {
    "access": (_ACCESS, _BOTH),
    "delete": (_DELETE, _BOTH),
    constants.OPT_OUT_OF_SALE: (_OPT_OUT,),
}
_REGULATION_CODE = {name: code for code, name in enumerate(REGULATION_LIST)}

_TEXT_CODES = pa.dictionary(pa.int32(), pa.string())
SKIPPED_SCHEMA = pa.schema(
    [
        ("subject_key", pa.string()),
        ("user_key", pa.string()),
        ("part", pa.int64()),
        # a handful of distinct values each: dictionary-encoded, so that a nightly export
        # that skips a million jobs does not spell a million strings three times
        ("action", _TEXT_CODES),
        ("regulation", _TEXT_CODES),
        ("received_at", pa.string()),
        ("input_rows", pa.list_(pa.int64())),
        ("previous_run_id", _TEXT_CODES),
        ("previous_job_id", pa.string()),
    ]
)


@dataclass(frozen=True)
class BlockingChunk:
    """Blocking jobs of one action, regulation, run and org: fingerprints and job ids, in
    step. ``org`` is the IMS org id the jobs were sent to."""

    action: str
    regulation: str
    run_id: str
    fingerprints: np.ndarray  # int64
    job_ids: pa.Array
    org: str = ""


@dataclass(frozen=True)
class _Group:
    """The distinct fingerprints of one (action, regulation) as a hashed index (built once;
    lookups from several threads only read it), and each one's first blocking job."""

    index: pd.Index
    rows: np.ndarray  # index into Blocklist.run_ids / job_ids, in step with ``index``

    @classmethod
    def of(cls, fingerprints: np.ndarray, rows: np.ndarray) -> _Group:
        order = np.argsort(fingerprints, kind="stable")  # a subject's first job stays first
        unique, first = np.unique(fingerprints[order], return_index=True)
        index = pd.Index(unique)
        index.get_indexer(index[:1])  # build the hash table now, not in a worker thread
        return cls(index=index, rows=rows[order][first])

    def __len__(self) -> int:
        return len(self.index)


@dataclass
class Blocklist:
    """The earlier jobs that block a new submission, grouped by (org, action, regulation).

    Built by :meth:`build` from parallel arrays; ``secret`` keys the fingerprints of the new
    plan's subject keys exactly as the registry's were keyed. ``plan_orgs`` is the IMS org id
    of each org code of the plan's users (:func:`~pipeline.input.batching.org_codes`): a job
    blocks only the users of its own org (the same subject in another org is other data);
    None blocks the users of that code whatever org the earlier job went to (a dry run
    without credentials). Read-only once built: planning calls :meth:`split` from its worker
    threads.
    """

    secret: bytes
    run_ids: pa.DictionaryArray  # one entry per blocking job: a handful of runs
    job_ids: pa.Array
    groups: dict[tuple[str, str, int], _Group] = field(default_factory=dict)
    plan_orgs: tuple[str | None, ...] = (None,)

    @classmethod
    def build(
        cls,
        chunks: Sequence[BlockingChunk],
        *,
        secret: bytes,
        plan_orgs: Sequence[str | None] = (None,),
    ) -> Blocklist:
        """Index the blocking jobs, given as chunks of one (action, regulation, run id, org)
        each (of several jobs of one subject, the first names its previous job)."""
        runs = sorted({c.run_id for c in chunks})
        run_code = {run: code for code, run in enumerate(runs)}
        sizes = [len(c.fingerprints) for c in chunks]
        codes = np.repeat(np.array([run_code[c.run_id] for c in chunks], np.int32), sizes)
        job_ids = [c.job_ids for c in chunks]
        blocklist = cls(
            secret=secret,
            run_ids=pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(runs, pa.string())),
            job_ids=pa.chunked_array(job_ids, pa.string()).combine_chunks(),
            plan_orgs=tuple(plan_orgs) or (None,),
        )
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        spans: dict[tuple[str, str, int], list[np.ndarray]] = {}
        for i, chunk in enumerate(chunks):
            if chunk.action in _HOLDERS and chunk.regulation in _REGULATION_CODE:
                key = (chunk.org, chunk.action, _REGULATION_CODE[chunk.regulation])
                spans.setdefault(key, []).append(np.arange(starts[i], starts[i + 1]))
        everything = np.concatenate([np.zeros(0, np.int64), *(c.fingerprints for c in chunks)])
        for key, parts in spans.items():
            picked = np.concatenate(parts)
            blocklist.groups[key] = _Group.of(everything[picked], picked)
        return blocklist

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups.values())

    def split(self, users: pa.Table) -> tuple[pa.Table, pa.Table]:
        """``(users to submit, skipped jobs)`` of a USER_SCHEMA table, in its order."""
        n = users.num_rows
        if n == 0 or not self.groups:
            return users, SKIPPED_SCHEMA.empty_table()
        fps = fingerprints(users.column("subject_key").combine_chunks(), self.secret)
        codes = users.column("action").to_numpy()
        regulations = users.column("regulation").to_numpy()
        orgs = org_codes(users)
        blocked: dict[str, np.ndarray] = {}  # action -> previous row per user, -1: not blocked
        for (org, act, reg), group in self.groups.items():
            mask = np.isin(codes, _HOLDERS[act]) & (regulations == reg)
            ours = [i for i, o in enumerate(self.plan_orgs) if o in (None, org)]
            if len(ours) < len(self.plan_orgs):  # only the users of the job's own org
                mask &= np.isin(orgs, ours)
            sel = np.flatnonzero(mask)
            if not len(sel):
                continue
            pos = group.index.get_indexer(pd.Index(fps[sel]))
            hit = pos >= 0
            previous = blocked.setdefault(act, np.full(n, -1, dtype=np.int64))
            previous[sel[hit]] = group.rows[pos[hit]]
        if not blocked:
            return users, SKIPPED_SCHEMA.empty_table()
        skipped = [self._skipped(users, act, prev) for act, prev in sorted(blocked.items())]
        access = blocked.get("access", np.full(n, -1)) >= 0
        delete = blocked.get("delete", np.full(n, -1)) >= 0
        opt_out = blocked.get(constants.OPT_OUT_OF_SALE, np.full(n, -1)) >= 0
        new_codes = codes.copy()
        both = codes == _BOTH
        new_codes[both & access & ~delete] = _DELETE
        new_codes[both & delete & ~access] = _ACCESS
        drop = (
            ((codes == _ACCESS) & access)
            | ((codes == _DELETE) & delete)
            | (both & access & delete)
            | ((codes == _OPT_OUT) & opt_out)
        )
        kept = users.set_column(
            USER_SCHEMA.get_field_index("action"), "action", pa.array(new_codes, pa.int8())
        ).filter(pa.array(~drop))
        return kept, pa.concat_tables(skipped)

    def _skipped(self, users: pa.Table, action: str, previous: np.ndarray) -> pa.Table:
        rows = np.flatnonzero(previous >= 0)
        columns = ["subject_key", "user_key", "part", "regulation", "received_at", "input_rows"]
        picked = users.select(columns)  # never the identities
        if len(rows) < users.num_rows:  # a nightly cumulative export skips every row: no copy
            picked = picked.take(pa.array(rows))
        regulation = pa.DictionaryArray.from_arrays(
            pa.array(picked.column("regulation").to_numpy().astype(np.int32)),
            pa.array(REGULATION_LIST, pa.string()),
        )
        actions = pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(len(rows), np.int32)), pa.array([action], pa.string())
        )
        index = pa.array(previous[rows])
        return pa.table(
            [
                picked.column("subject_key"),
                picked.column("user_key"),
                picked.column("part"),
                actions,
                regulation,
                picked.column("received_at"),
                picked.column("input_rows"),
                pc.take(self.run_ids, index),
                pc.take(self.job_ids, index),
            ],
            schema=SKIPPED_SCHEMA,
        )
