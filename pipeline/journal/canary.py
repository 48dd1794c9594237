"""The canary's record in the journal: its progress, and its verdict as a state machine.

A run planned with a canary (``job.canary_users = N``) holds its first N users (plan order:
``user.uid <= N``) in requests of their own. Nothing else of the run is submitted until the
canary is judged. The ``canary`` row appears when every canary job has left ``pending`` (the
wait starts then) and moves once per verdict::

    (no row) --start_canary--> waiting --pass_canary--> passed       (the rest is submitted)
                                       --fail_canary--> failed     --release_canary--> released
                                   --time_out_canary--> timed_out  --release_canary--/

``failed`` and ``timed_out`` hold the run: ``dsar resume`` / ``resume --all`` keep following
the canary's jobs but submit nothing more; only ``dsar submit RUN_DIR`` releases it. Each
move is one short transaction whose expected state is checked; an illegal one raises
:class:`~pipeline.errors.JournalError` and changes nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from ..errors import JournalError
from .blobs import BLOB_JOB_STATE, records
from .models import from_us, from_us_required, to_us
from .schema import JournalStore

# job states that are done with (the canary's share counts failed batches as errors)
_OPEN = ("submitted", "processing")
_ERRORS = ("error", "failed")


class CanaryState(enum.StrEnum):
    """Where the canary's verdict stands."""

    WAITING = "waiting"
    PASSED = "passed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    RELEASED = "released"  # held, then released by ``dsar submit``


HELD = (CanaryState.FAILED, CanaryState.TIMED_OUT)
# new state -> states it may be entered from
CANARY_TRANSITIONS: dict[CanaryState, tuple[CanaryState, ...]] = {
    CanaryState.PASSED: (CanaryState.WAITING,),
    CanaryState.FAILED: (CanaryState.WAITING,),
    CanaryState.TIMED_OUT: (CanaryState.WAITING,),
    CanaryState.RELEASED: HELD,
}


@dataclass(frozen=True, kw_only=True)
class CanaryProgress:
    """The canary's jobs by where they stand (first attempts of users ``uid <= N``)."""

    jobs: int
    pending: int
    open: int
    errors: int

    @property
    def share(self) -> float:
        """Jobs in error (or refused) over the canary's jobs; 0.0 for no job."""
        return self.errors / self.jobs if self.jobs else 0.0


@dataclass(frozen=True, kw_only=True)
class CanaryInfo:
    """The canary row: what it was judged against, and its verdict."""

    users: int
    max_error: float
    wait_s: float
    state: CanaryState
    started_at: datetime
    decided_at: datetime | None
    jobs: int
    errors: int
    still_open: int

    def as_dict(self) -> dict[str, object]:
        """The canary for summary.json and ``dsar status --json``: settings and verdict."""
        return {
            "state": self.state.value,
            "users": self.users,
            "jobs": self.jobs,
            "errors": self.errors,
            "still_open": self.still_open,
            "max_error": self.max_error,
            "wait_s": self.wait_s,
            "held": self.held,
            "started_at": self.started_at.isoformat(),
            "decided_at": None if self.decided_at is None else self.decided_at.isoformat(),
        }

    @property
    def held(self) -> bool:
        """True while the verdict holds the rest of the run back."""
        return self.state in HELD

    @property
    def share(self) -> float:
        """The error share the verdict was made on."""
        return self.errors / self.jobs if self.jobs else 0.0


class CanaryRecord(JournalStore):
    """The canary's reads and its three moves."""

    def canary(self) -> CanaryInfo | None:
        """The canary row, or None before a canary was fully sent (or in a run without one)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT users, max_error, wait_s, state, started_at, decided_at, jobs, errors,"
                " still_open FROM canary"
            ).fetchone()
        if row is None:
            return None
        return CanaryInfo(
            users=int(row[0]),
            max_error=float(row[1]),
            wait_s=float(row[2]),
            state=CanaryState(row[3]),
            started_at=from_us_required(row[4]),
            decided_at=from_us(row[5]),
            jobs=int(row[6]),
            errors=int(row[7]),
            still_open=int(row[8]),
        )

    def _started(self) -> CanaryInfo:
        info = self.canary()
        if info is None:
            raise JournalError("canary: not started")
        return info

    def canary_progress(self, users: int) -> CanaryProgress:
        """Counts of the first attempts of the first ``users`` users' jobs."""
        with self._read() as c:  # one snapshot: a record materialised meanwhile counts once
            rows = c.execute(
                "SELECT state, count(*) FROM job WHERE uid <= ? AND attempt = 1 GROUP BY state",
                (users,),
            ).fetchall()
            blobs = list(records(c, "WHERE p.uid_first <= ?", (users,), BLOB_JOB_STATE))
        by = {str(state): int(n) for state, n in rows}
        for record in blobs:  # deferred records' jobs: never retried, all first attempts
            owner, _ = record.jobs()
            n = int((owner + record.uid_first <= users).sum())
            by[record.batch[0]] = by.get(record.batch[0], 0) + n
        return CanaryProgress(
            jobs=sum(by.values()),
            pending=by.get("pending", 0),
            open=sum(by.get(s, 0) for s in _OPEN),
            errors=sum(by.get(s, 0) for s in _ERRORS),
        )

    def canary_batches(self, users: int) -> set[str]:
        """Ids of the planned batches that hold a canary user (the first ``users``)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT b.batch_id FROM batch b JOIN user u ON u.batch_seq = b.seq"
                " WHERE b.state = 'planned' AND u.uid <= ? UNION"
                " SELECT b.batch_id FROM batch b JOIN plan_users p ON p.seq = b.seq"
                " WHERE b.state = 'planned' AND p.uid_first <= ?",
                (users, users),
            ).fetchall()
        return {str(r[0]) for r in rows}

    def start_canary(
        self, *, users: int, max_error: float, wait_s: float, at: datetime
    ) -> CanaryInfo:
        """(no row) -> waiting: every canary job has left ``pending``; the wait starts ``at``."""
        with self._tx() as c:
            if c.execute("SELECT 1 FROM canary").fetchone():
                raise JournalError("canary: already started")
            c.execute(
                "INSERT INTO canary (singleton, users, max_error, wait_s, state, started_at,"
                " updated_at) VALUES (1, ?, ?, ?, 'waiting', ?, ?)",
                (users, max_error, wait_s, to_us(at), to_us(at)),
            )
        return self._started()

    def pass_canary(self, progress: CanaryProgress, at: datetime) -> CanaryInfo:
        """waiting -> passed: every canary job is terminal, few enough in error."""
        return self._judge(CanaryState.PASSED, progress, at)

    def fail_canary(self, progress: CanaryProgress, at: datetime) -> CanaryInfo:
        """waiting -> failed: every canary job is terminal, too many in error."""
        return self._judge(CanaryState.FAILED, progress, at)

    def time_out_canary(self, progress: CanaryProgress, at: datetime) -> CanaryInfo:
        """waiting -> timed_out: the wait passed with canary jobs still open."""
        return self._judge(CanaryState.TIMED_OUT, progress, at)

    def _judge(self, verdict: CanaryState, progress: CanaryProgress, at: datetime) -> CanaryInfo:
        self._move_canary(
            verdict,
            at,
            decided_at=to_us(at),
            jobs=progress.jobs,
            errors=progress.errors,
            still_open=progress.open,
        )
        return self._started()

    def release_canary(self, at: datetime) -> None:
        """failed | timed_out -> released: ``dsar submit`` lets the rest of the run go."""
        self._move_canary(CanaryState.RELEASED, at, released_at=to_us(at))

    def _move_canary(self, new: CanaryState, at: datetime, **fields: int) -> None:
        allowed = ", ".join(f"'{s.value}'" for s in CANARY_TRANSITIONS[new])
        sets = "".join(f", {k} = :{k}" for k in fields)
        with self._tx() as c:
            cur = c.execute(
                f"UPDATE canary SET state = :new, updated_at = :at{sets}"
                f" WHERE state IN ({allowed})",
                {"new": new.value, "at": to_us(at), **fields},
            )
            if cur.rowcount != 1:
                row = c.execute("SELECT state FROM canary").fetchone()
                was = row[0] if row else "not started"
                raise JournalError(f"canary: illegal transition {was} -> {new.value}")
