"""The run's intent in the journal: preview, live, declined, cancelled; and the run's state moves.

Only a ``live`` run is submitted (:meth:`Journal.record_intent` refuses any other). ``dsar run``
writes its plan as a ``preview``: a dry run stays one, a confirmed run turns live just before
its first POST (:meth:`RunIntents.go_live`), a declined prompt makes it ``declined``. A process
killed between planning and the confirmation therefore leaves a preview, never a run that a
later ``dsar resume --all`` would submit without asking::

    preview --go_live--> live --cancel--> cancelled
       |                  ^                  ^
       +--decline--> declined --cancel-------+      (a preview may be cancelled too)

:meth:`RunIntents.cancel` ends every planned batch and its pending jobs as ``cancelled`` in one
transaction. A batch whose POST outcome is unknown (``submitting``/``ambiguous``) is left for
the next resume to reconcile: the jobs the service made are adopted, the missing users end
``cancelled`` instead of being planned again.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import JournalError
from .models import (
    NEEDS_DETAILS_SQL,
    NEEDS_DOWNLOAD_SQL,
    OPEN_JOB_STATES,
    RUN_TRANSITIONS,
    RunIntent,
    RunState,
    state_in,
    to_us,
)
from .schema import JournalStore

# batches whose POST may have created jobs: reconciled on resume, even in a cancelled run
_UNRESOLVED = "('submitting', 'ambiguous')"


@dataclass(frozen=True, kw_only=True)
class CancelResult:
    """What :meth:`RunIntents.cancel` did and left: counts only."""

    batches_cancelled: int
    jobs_cancelled: int
    jobs_in_flight: int  # at the service, not terminal yet: polled unless polling stopped
    batches_unresolved: int  # POST outcome unknown: reconciled (never re-POSTed) on resume
    finished: bool  # nothing left to do: the run is finished


class RunIntents(JournalStore):
    """The run-level writes: state moves and the intent marks."""

    def go_live(self, at: datetime, *, org_id: str | None) -> None:
        """preview -> live: the user confirmed; records the org the plan is submitted to."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE run SET intent = 'live', org_id = coalesce(org_id, ?), updated_at = ?"
                " WHERE intent = 'preview'",
                (org_id, to_us(at)),
            )
            if cur.rowcount != 1:
                raise JournalError(f"run: {self._intent(c).value}, not a preview")

    def decline(self, at: datetime) -> None:
        """preview -> declined (and paused): the prompt was answered no; nothing is sent."""
        with self._tx() as c:
            cur = c.execute("UPDATE run SET intent = 'declined' WHERE intent = 'preview'")
            if cur.rowcount != 1:
                raise JournalError(f"run: {self._intent(c).value}, not a preview")
            self._move_run_in(c, RunState.PAUSED, at, pause_reason="declined")

    def cancel(self, at: datetime, *, stop_polling: bool) -> CancelResult:
        """Any intent -> cancelled, in one transaction: every planned batch and its pending
        jobs end ``cancelled``. With ``stop_polling`` the jobs at the service are not followed
        any more (a cancel without it, repeated with it, stops polling; never the reverse).
        The run finishes at once when nothing is left to follow or reconcile; otherwise a
        paused or planned run is paused as ``cancelled``."""
        with self._tx() as c:
            c.execute(
                "UPDATE run SET intent = 'cancelled', stop_polling = max(stop_polling, ?),"
                " updated_at = ?",
                (int(stop_polling), to_us(at)),
            )
            batches, jobs = self._cancel_planned(c, at)
            (state, stopped) = c.execute("SELECT state, stop_polling FROM run").fetchone()
            (unresolved,) = c.execute(
                f"SELECT count(*) FROM batch WHERE state IN {_UNRESOLVED}"
            ).fetchone()
            (in_flight,) = c.execute(
                f"SELECT count(*) FROM job WHERE {state_in(OPEN_JOB_STATES)}"
            ).fetchone()
            finished = state == RunState.FINISHED
            if not finished and unresolved == 0 and (stopped or not self._follow_up(c)):
                self._finish_in(c, at)
                finished = True
            elif state == RunState.PAUSED:  # no longer waiting for the cap or anything else
                c.execute("UPDATE run SET pause_reason = 'cancelled', resume_after = NULL")
            elif state == RunState.PLANNED:
                self._move_run_in(c, RunState.PAUSED, at, pause_reason="cancelled")
        return CancelResult(
            batches_cancelled=batches,
            jobs_cancelled=jobs,
            jobs_in_flight=int(in_flight),
            batches_unresolved=int(unresolved),
            finished=finished,
        )

    def close_cancelled(self, at: datetime) -> bool:
        """Finish a cancelled run that stopped polling once no POST is left to reconcile
        (after a resume adopted what the service had); returns True if the run is finished."""
        with self._tx() as c:
            state, intent, stopped = c.execute(
                "SELECT state, intent, stop_polling FROM run"
            ).fetchone()
            if state == RunState.FINISHED:
                return True
            if intent != RunIntent.CANCELLED or not stopped:
                return False
            (unresolved,) = c.execute(
                f"SELECT count(*) FROM batch WHERE state IN {_UNRESOLVED} OR state = 'planned'"
            ).fetchone()
            if unresolved:
                return False
            self._finish_in(c, at)
            return True

    @staticmethod
    def _intent(c: sqlite3.Connection) -> RunIntent:
        row = c.execute("SELECT intent FROM run").fetchone()
        if row is None:
            raise JournalError("the journal holds no plan")
        return RunIntent(row[0])

    @staticmethod
    def _cancel_planned(c: sqlite3.Connection, at: datetime) -> tuple[int, int]:
        """planned -> cancelled for every batch, and pending -> cancelled for their jobs (the
        jobs of a batch still held as a deferred record read ``cancelled`` from its state)."""
        seqs = [
            r[0]
            for r in c.execute(
                "UPDATE batch SET state = 'cancelled', error_code = 'cancelled', updated_at = ?"
                " WHERE state = 'planned' RETURNING seq",
                (to_us(at),),
            ).fetchall()
        ]
        jobs = 0
        for seq in seqs:
            jobs += c.execute(
                "UPDATE job SET state = 'cancelled', error_code = 'cancelled',"
                " error_message = 'the run was cancelled before this job was submitted',"
                " updated_at = ? WHERE state = 'pending'"
                " AND uid IN (SELECT uid FROM user WHERE batch_seq = ?)",
                (to_us(at), seq),
            ).rowcount
            # a deferred record stays one: its jobs read `cancelled` (blobs.BLOB_JOB_STATE)
            row = c.execute("SELECT jobs FROM plan_users WHERE seq = ?", (seq,)).fetchone()
            jobs += row[0] if row else 0
        return len(seqs), jobs

    @staticmethod
    def _follow_up(c: sqlite3.Connection) -> bool:
        """True while a job is open at the service, or terminal but still needing details or
        its results download."""
        row = c.execute(
            f"SELECT 1 FROM job WHERE {state_in(OPEN_JOB_STATES)}"
            f" OR ({NEEDS_DETAILS_SQL}) OR ({NEEDS_DOWNLOAD_SQL}) LIMIT 1"
        ).fetchone()
        return row is not None

    def _finish_in(self, c: sqlite3.Connection, at: datetime) -> None:
        state = c.execute("SELECT state FROM run").fetchone()[0]
        if state != RunState.ACTIVE:
            self._move_run_in(c, RunState.ACTIVE, at)
        self._move_run_in(c, RunState.FINISHED, at, pause_reason=None, resume_after=None)

    @staticmethod
    def _move_run_in(c: sqlite3.Connection, new: RunState, at: datetime, **fields: Any) -> None:
        allowed = ", ".join(f"'{s.value}'" for s in RUN_TRANSITIONS[new])
        sets = "".join(f", {k} = :{k}" for k in fields)
        cur = c.execute(
            f"UPDATE run SET state = :new, updated_at = :at{sets} WHERE state IN ({allowed})",
            {"new": new.value, "at": to_us(at), **fields},
        )
        if cur.rowcount != 1:
            row = c.execute("SELECT state FROM run").fetchone()
            if row is None:
                raise JournalError("the journal holds no plan")
            raise JournalError(f"run: illegal transition {row[0]} -> {new.value}")
