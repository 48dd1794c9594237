"""The run journal: a SQLite write-ahead log of one run, and its state machine.

One method per legal transition, each one short transaction of the form
``UPDATE ... WHERE state IN (:expected)`` whose row count is checked; an illegal transition
raises :class:`JournalError` and changes nothing. The states and their legal predecessors are
the tables in :mod:`pipeline.journal.models`::

    batch:  planned -> submitting -> submitted
                                  -> ambiguous -> reconciled   (missing users -> child batch)
                                  -> reconciled                (defer: refused, nothing made)
            planned | submitting  -> failed                    (rejected by the service, 4xx)
            planned -> cancelled                               (dsar cancel: never POSTed)
    job:    pending -> submitted -> processing -> complete -> downloaded
                                 \\-------------> error
            pending -> failed                                  (its batch was rejected)
            pending -> accepted                                (opt-out through /consent)
            pending -> cancelled                               (its batch was cancelled)

A crash while a batch is ``submitting`` means its POST may or may not have created jobs:
:meth:`Journal.recover_submitting` turns every such batch ``ambiguous`` on resume, and
:meth:`Journal.reconcile` adopts what the service has and moves only the missing users to a
new planned batch. ``submitting -> planned`` does not exist, so no batch id is ever POSTed twice.

Only a ``live`` run records an intent to POST (see :mod:`pipeline.journal.intent` for the
run's intent and state moves). Job transitions, retries and counters are in
:mod:`pipeline.journal.jobs`; read queries in :mod:`pipeline.journal.queries`. Nothing here
logs; no message carries an identity value.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import JournalError
from ..input.batching import BatchFrame
from ..models import Action, PlannedBatch
from .blobs import deferred_seq, materialise
from .canary import CanaryRecord
from .intent import RunIntents
from .jobs import JobTransitions, identity_values, redact
from .models import (
    BATCH_TRANSITIONS,
    BatchState,
    ReconcileResult,
    RunIntent,
    RunMeta,
    RunState,
    to_us,
)
from .planning import PlanningRecord, bulk_load, settings_json, write_plan_rows
from .purge import PurgeJournal
from .queries import JournalQueries
from .schema import (
    JOURNAL_FILE,
    JOURNAL_PAGE_SIZE,
    make_private_dir,
    open_database,
)

__all__ = ["Journal"]


class Journal(
    JobTransitions, RunIntents, JournalQueries, PlanningRecord, CanaryRecord, PurgeJournal
):
    """The durable state of one run (``RUN_DIR/journal.sqlite``).

    Open with :meth:`open`; use as a context manager or call :meth:`close`. Every write is
    one ``BEGIN IMMEDIATE`` transaction committed with ``synchronous=FULL``.
    """

    @classmethod
    def open(cls, run_dir: Path) -> Journal:
        """Open the journal of ``run_dir``, creating the directory (0700) and file (0600)."""
        make_private_dir(run_dir)
        path = run_dir / JOURNAL_FILE
        return cls(open_database(path, page_size=JOURNAL_PAGE_SIZE), path)

    # -- the plan ---------------------------------------------------------------------------

    def write_plan(
        self,
        meta: RunMeta,
        batches: Iterable[BatchFrame | PlannedBatch],
        *,
        rejects_count: int,
        intent: RunIntent = RunIntent.LIVE,
        skipped: Callable[[], pa.Table] | None = None,
    ) -> int:
        """Store the run metadata and the whole plan in one transaction; returns the job count.

        ``batches`` are columnar (``Plan.frames()``, each kept as one deferred record of its
        users until a writer touches the batch: :mod:`pipeline.journal.blobs`) or typed
        (``Plan.batches()``, user by user): readers see the same rows either way (see
        :mod:`pipeline.journal.planning`).

        ``skipped`` gives, once the batches are consumed, the jobs dedupe left out of the plan
        (:data:`pipeline.input.dedupe.SKIPPED_SCHEMA`); they are stored in the same
        transaction, so the run's status rows never lack them.

        A run killed while planning leaves no plan at all (:attr:`has_plan` stays False), so it
        restarts cleanly from its :meth:`begin_planning` record. Raises :class:`JournalError` if
        a plan exists, a batch is empty, or a batch id or user key repeats. Identity values are
        stored (resubmitting after a crash needs them); tokens never reach the journal. A plan
        written as a ``preview`` is never submitted until :meth:`go_live`.
        """
        settings = settings_json(meta.settings)
        created = to_us(meta.created_at)
        with bulk_load(self._conn), self._tx() as c:
            if c.execute("SELECT 1 FROM run").fetchone():
                raise JournalError("the journal already holds a plan")
            c.execute(
                "INSERT INTO run VALUES"
                " (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned', NULL, NULL, ?, ?, 0, NULL)",
                (
                    meta.run_id, created, meta.input_path, meta.input_sha256, meta.input_rows,
                    rejects_count, meta.config_digest, settings, meta.tool_version, meta.org_id,
                    created, intent.value,
                ),
            )  # fmt: skip
            return write_plan_rows(c, batches, created, skipped)

    def set_rejects_count(self, count: int) -> None:
        """Record the rejected input rows once planning has counted them all."""
        with self._tx() as c:
            c.execute("UPDATE run SET rejects_count = ?", (count,))

    # -- the run ----------------------------------------------------------------------------

    def activate(self, at: datetime) -> None:
        """planned | paused | active -> active: the runner starts or resumes work."""
        self._move_run(RunState.ACTIVE, at)

    def pause(self, reason: str, at: datetime, *, resume_after: datetime | None = None) -> None:
        """active | planned -> paused, with the reason and the earliest useful resume time."""
        after = to_us(resume_after) if resume_after else None
        self._move_run(RunState.PAUSED, at, pause_reason=reason, resume_after=after)

    def finish(self, at: datetime) -> None:
        """active -> finished: every job is terminal and every report written."""
        self._move_run(RunState.FINISHED, at, pause_reason=None, resume_after=None)

    def _move_run(self, new: RunState, at: datetime, **fields: Any) -> None:
        with self._tx() as c:
            self._move_run_in(c, new, at, **fields)

    # -- batches ----------------------------------------------------------------------------

    def record_intent(self, batch_id: str, payload_digest: str, at: datetime) -> None:
        """planned -> submitting, durably, before the POST; ``payload_digest`` is its sha256.

        Only a live run submits: in a preview, declined or cancelled run this raises
        :class:`JournalError` and changes nothing.
        """
        with self._tx() as c:
            intent = self._intent(c)
            if intent != RunIntent.LIVE:
                raise JournalError(f"batch {batch_id}: the run is {intent.value}, not submitted")
            self._move_batch(
                c, batch_id, BatchState.SUBMITTING, (BatchState.PLANNED,), at,
                payload_digest=payload_digest, intent_at=to_us(at),
            )  # fmt: skip

    def mark_submitted(
        self,
        batch_id: str,
        request_id: str,
        jobs: Mapping[tuple[str, Action | str], str],
        at: datetime,
    ) -> None:
        """submitting -> submitted, recording ``{(user_key, action): job_id}`` in the same
        transaction. The mapping must cover every pending job of the batch exactly; a response
        that does not is the runner's cue to :meth:`mark_ambiguous` and reconcile instead.
        """
        with self._tx() as c:
            seq, _ = self._move_batch(
                c, batch_id, BatchState.SUBMITTED, (BatchState.SUBMITTING,), at,
                request_id=request_id, submitted_at=to_us(at), jobs_created=len(jobs),
            )  # fmt: skip
            self._adopt(c, batch_id, seq, jobs, to_us(at))
            left = self._pending_users(c, seq)
            if left:
                raise JournalError(f"batch {batch_id}: {len(left)} users got no job id")

    def mark_consented(self, batch_id: str, at: datetime) -> None:
        """submitting -> submitted for an opt-out batch sent through ``POST /consent``: the
        service accepted it and there is no job to follow, so its jobs become ``accepted``."""
        with self._tx() as c:
            seq, _ = self._move_batch(
                c, batch_id, BatchState.SUBMITTED, (BatchState.SUBMITTING,), at,
                request_id="consent", submitted_at=to_us(at), jobs_created=0,
            )  # fmt: skip
            c.execute(
                "UPDATE job SET state = 'accepted', submitted_at = ?, updated_at = ?,"
                " completed_at = ? WHERE state = 'pending'"
                " AND uid IN (SELECT uid FROM user WHERE batch_seq = ?)",
                (to_us(at), to_us(at), to_us(at), seq),
            )

    def split(self, batch_id: str, keep_users: int, at: datetime) -> str:
        """planned: keep the first ``keep_users`` users (plan order) in ``batch_id`` and move
        the rest to a new planned child batch, whose id is returned (to fit a request into
        what is left of the day's budget)."""
        if keep_users < 1:
            raise JournalError(f"batch {batch_id}: a split keeps at least one user")
        with self._tx() as c:
            row = c.execute(
                "SELECT seq, state FROM batch WHERE batch_id = ?", (batch_id,)
            ).fetchone()
            if row is None:
                raise JournalError(f"batch {batch_id}: unknown batch")
            if row[1] != BatchState.PLANNED:
                raise JournalError(f"batch {batch_id}: only a planned batch splits, not {row[1]}")
            materialise(c, row[0])
            users = self._pending_users(c, row[0])
            if len(users) <= keep_users:
                raise JournalError(f"batch {batch_id}: {len(users)} users do not split")
            return self._child_batch(c, batch_id, row[0], users[keep_users:], at)

    def mark_ambiguous(self, batch_id: str, at: datetime, *, reason: str = "ambiguous") -> None:
        """submitting -> ambiguous: the POST failed in a way that may have created jobs."""
        with self._tx() as c:
            self._move_batch(
                c, batch_id, BatchState.AMBIGUOUS, (BatchState.SUBMITTING,), at, error_code=reason
            )

    def recover_submitting(self, at: datetime, *, org: str | None = None) -> list[str]:
        """Every batch left ``submitting`` by a crash -> ambiguous; returns their ids, in order.

        With ``org``, only that org's batches: another org's submitter may have a POST in
        flight, and its ``submitting`` batch is not a crash's leftover.
        """
        with self._tx() as c:
            rows = c.execute(
                "UPDATE batch SET state = 'ambiguous', error_code = 'interrupted', updated_at = ?"
                " WHERE state = 'submitting' AND (? IS NULL OR org = ?) RETURNING seq, batch_id",
                (to_us(at), org, org),
            ).fetchall()
        return [b for _, b in sorted(rows)]

    def mark_failed(self, batch_id: str, code: str, message: str, at: datetime) -> None:
        """planned | submitting -> failed: the service rejected the batch (a 4xx, no jobs).

        Its pending jobs become ``failed`` with the code and message; any identity value of the
        batch that the message echoes is masked before it is stored.
        """
        with self._tx() as c:
            seq, _ = self._move_batch(
                c, batch_id, BatchState.FAILED, (BatchState.PLANNED, BatchState.SUBMITTING), at,
                jobs_created=0,
            )  # fmt: skip
            values = identity_values(c, "WHERE batch_seq = ?", (seq,))
            clean = redact(message, values)
            c.execute(
                "UPDATE batch SET error_code = ?, error_message = ? WHERE seq = ?",
                (code, clean, seq),
            )
            c.execute(
                "UPDATE job SET state = 'failed', error_code = ?, error_message = ?,"
                " updated_at = ? WHERE state = 'pending'"
                " AND uid IN (SELECT uid FROM user WHERE batch_seq = ?)",
                (code, clean, to_us(at), seq),
            )

    def reconcile(
        self, batch_id: str, adopted: Mapping[tuple[str, Action | str], str], at: datetime
    ) -> ReconcileResult:
        """ambiguous -> reconciled: adopt the jobs found on the service, and move every user
        with a job still pending into a new planned child batch, in one transaction.

        ``adopted`` is ``{(user_key, action): job_id}`` from matching the list endpoint; a key
        not pending in this batch raises :class:`JournalError`. A user whose actions were only
        partly found moves with the missing actions only, so no job is created twice.
        """
        with self._tx() as c:
            seq, intent = self._move_batch(
                c, batch_id, BatchState.RECONCILED, (BatchState.AMBIGUOUS,), at,
                jobs_created=len(adopted),
            )  # fmt: skip
            # adopted jobs were created at the POST; the intent time bounds it from below
            self._adopt(c, batch_id, seq, adopted, intent or to_us(at))
            missing = self._pending_users(c, seq)
            child = self._child_batch(c, batch_id, seq, missing, at) if missing else None
            if child and self._intent(c) == RunIntent.CANCELLED:
                self._cancel_planned(c, at)  # adopted what exists; create nothing new
        keys = tuple(k for _, k in missing)
        return ReconcileResult(adopted=len(adopted), missing_user_keys=keys, child_batch_id=child)

    def defer(self, batch_id: str, reason: str, at: datetime) -> str:
        """submitting -> reconciled for a POST the service refused before creating anything
        (the daily cap, a throttle): all users move to a new planned child batch, whose id is
        returned. The refused batch id is never POSTed again.
        """
        with self._tx() as c:
            seq, _ = self._move_batch(
                c, batch_id, BatchState.RECONCILED, (BatchState.SUBMITTING,), at,
                error_code=reason, jobs_created=0,
            )  # fmt: skip
            return self._child_batch(c, batch_id, seq, self._pending_users(c, seq), at)

    def _move_batch(
        self,
        c: sqlite3.Connection,
        batch_id: str,
        new: BatchState,
        expected: tuple[BatchState, ...],
        at: datetime,
        **fields: Any,
    ) -> tuple[int, int | None]:
        if not set(expected) <= set(BATCH_TRANSITIONS[new]):
            raise JournalError(f"batch: {new.value} is not reachable from {expected}")
        allowed = ", ".join(f"'{s.value}'" for s in expected)
        sets = "".join(f", {k} = :{k}" for k in fields)
        self._materialise_batch(c, batch_id)
        row = c.execute(
            f"UPDATE batch SET state = :new, updated_at = :at{sets}"
            f" WHERE batch_id = :batch_id AND state IN ({allowed}) RETURNING seq, intent_at",
            {"new": new.value, "at": to_us(at), "batch_id": batch_id, **fields},
        ).fetchone()
        if row is None:
            found = c.execute("SELECT state FROM batch WHERE batch_id = ?", (batch_id,)).fetchone()
            if found is None:
                raise JournalError(f"batch {batch_id}: unknown batch")
            raise JournalError(f"batch {batch_id}: illegal transition {found[0]} -> {new.value}")
        return int(row[0]), row[1]

    @staticmethod
    def _materialise_batch(c: sqlite3.Connection, batch_id: str) -> None:
        """The batch's deferred record, if it has one, as its user and job rows (before a
        transition touches them; :mod:`pipeline.journal.blobs`)."""
        seq = deferred_seq(c, batch_id)
        if seq is not None:
            materialise(c, seq)

    @staticmethod
    def _adopt(
        c: sqlite3.Connection,
        batch_id: str,
        seq: int,
        jobs: Mapping[tuple[str, Action | str], str],
        submitted_us: int,
    ) -> None:
        rows = [
            (job_id, submitted_us, submitted_us, str(action), user_key, seq)
            for (user_key, action), job_id in jobs.items()
        ]
        cur = c.executemany(
            "UPDATE job SET job_id = ?, state = 'submitted', submitted_at = ?, updated_at = ?"
            " WHERE state = 'pending' AND action = ?"
            " AND uid = (SELECT uid FROM user WHERE user_key = ? AND batch_seq = ?)",
            rows,
        )
        if cur.rowcount != len(rows):
            unmatched = len(rows) - cur.rowcount
            raise JournalError(f"batch {batch_id}: {unmatched} job ids match no pending job")

    @staticmethod
    def _pending_users(c: sqlite3.Connection, seq: int) -> list[tuple[int, str]]:
        rows = c.execute(
            "SELECT DISTINCT u.uid, u.user_key FROM user u JOIN job j ON j.uid = u.uid"
            " WHERE u.batch_seq = ? AND j.state = 'pending' ORDER BY u.uid",
            (seq,),
        ).fetchall()
        return [(int(uid), str(key)) for uid, key in rows]

    @staticmethod
    def _child_batch(
        c: sqlite3.Connection,
        batch_id: str,
        seq: int,
        users: list[tuple[int, str]],
        at: datetime,
    ) -> str:
        (children,) = c.execute(
            "SELECT count(*) FROM batch WHERE parent_batch_id = ?", (batch_id,)
        ).fetchone()
        child_id = f"{batch_id}.{children + 1}"
        (child_seq,) = c.execute("SELECT max(seq) + 1 FROM batch").fetchone()
        c.execute(
            "INSERT INTO batch (seq, batch_id, parent_batch_id, regulation, options_json, state,"
            " updated_at, org) SELECT ?, ?, batch_id, regulation, options_json, 'planned', ?, org"
            " FROM batch WHERE seq = ?",
            (child_seq, child_id, to_us(at), seq),
        )
        c.executemany(
            "UPDATE user SET batch_seq = ? WHERE uid = ?", [(child_seq, uid) for uid, _ in users]
        )
        return child_id
