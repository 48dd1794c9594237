"""A hypothesis state machine drives the journal like a runner facing a faulty service.

POSTs succeed, fail ambiguously before or after creating jobs, are refused or deferred; the
process crashes (the connection is closed and the journal reopened) at any point; resumes
turn interrupted batches ambiguous and reconcile them against what the fake service holds.
After every step: no (user key, action) was created twice on the service, every state is
legal and was reached by legal moves, and every planned user is in exactly one batch.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Mapping
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pipeline.journal.models import (
    BATCH_TRANSITIONS,
    JOB_TRANSITIONS,
    BatchState,
    JobObservation,
    JobState,
)
from pipeline.journal.store import Journal
from pipeline.models import Action
from tests.helpers.plans import at, iter_plan, meta

SUBJECTS = 7


def _reachable(transitions: Mapping[Any, tuple[Any, ...]]) -> set[tuple[str, str]]:
    """Every (old, new) state pair joined by one or more legal moves."""
    pairs = {(str(old), str(new)) for new, olds in transitions.items() for old in olds}
    grown = True
    while grown:
        extra = {(a, d) for a, b in pairs for c, d in pairs if b == c} - pairs
        pairs |= extra
        grown = bool(extra)
    return pairs


BATCH_MOVES = _reachable(BATCH_TRANSITIONS)
JOB_MOVES = _reachable(JOB_TRANSITIONS)


class JournalMachine(RuleBasedStateMachine):
    """A runner and a fake service around one journal."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="dsar-journal-"))
        self.journal = Journal.open(self.dir)
        plan = iter_plan(SUBJECTS, per_batch=2)
        self.journal.write_plan(meta(rows=SUBJECTS), plan, rejects_count=0)
        self.clock = count(1)
        self.ids = count(1)
        self.service: dict[tuple[str, str], list[str]] = {}  # (user_key, action) -> job ids
        self.batches: dict[str, str] = {}
        self.jobs: dict[tuple[str, str], str] = {}
        self.snapshot()

    def now(self) -> object:
        return at(next(self.clock))

    def teardown(self) -> None:
        self.journal.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the fake service ---------------------------------------------------------------

    def post(self, batch_id: str) -> dict[tuple[str, Action], str]:
        created = {}
        for u in self.journal.load_batch(batch_id).users:
            for a in u.request.actions:
                job_id = f"job-{next(self.ids)}"
                self.service.setdefault((u.user_key, a.value), []).append(job_id)
                created[(u.user_key, a)] = job_id
        return created

    def next_planned(self, index: int) -> str | None:
        planned = self.journal.batches_to_submit()
        return planned[index % len(planned)] if planned else None

    # -- rules ----------------------------------------------------------------------------

    @rule(index=st.integers(0, 20), outcome=st.sampled_from(
        ["ok", "lost_after_create", "lost_before_create", "crash_before", "crash_after",
         "rejected", "deferred"]))  # fmt: skip
    def submit(self, index: int, outcome: str) -> None:
        batch_id = self.next_planned(index)
        if batch_id is None:
            return
        self.journal.record_intent(batch_id, "digest", self.now())  # type: ignore[arg-type]
        if outcome == "rejected":
            self.journal.mark_failed(batch_id, "PRVCY-1000-400", "refused", self.now())  # type: ignore[arg-type]
        elif outcome == "deferred":
            self.journal.defer(batch_id, "daily_cap", self.now())  # type: ignore[arg-type]
        elif outcome == "crash_before":
            self.crash()
        else:
            created = self.post(batch_id) if outcome != "lost_before_create" else {}
            if outcome == "ok":
                self.journal.mark_submitted(batch_id, "req", created, self.now())  # type: ignore[arg-type]
            elif outcome == "crash_after":
                self.crash()
            else:
                self.journal.mark_ambiguous(batch_id, self.now())  # type: ignore[arg-type]

    @rule()
    def crash(self) -> None:
        """The process dies (the connection goes away without a goodbye) and is resumed."""
        self.journal.close()
        self.journal = Journal.open(self.dir)
        self.journal.recover_submitting(self.now())  # type: ignore[arg-type]

    @rule(data=st.data())
    def reconcile(self, data: st.DataObject) -> None:
        ambiguous = [b for b in self.journal.unresolved_batches() if b.state == "ambiguous"]
        if not ambiguous:
            return
        batch = data.draw(st.sampled_from(ambiguous))
        found = {}
        for u in self.journal.load_batch(batch.batch_id).users:
            for a in u.request.actions:
                made = self.service.get((u.user_key, a.value))
                if made:
                    found[(u.user_key, a)] = made[0]
        self.journal.reconcile(batch.batch_id, found, self.now())  # type: ignore[arg-type]

    @rule(data=st.data(), status=st.sampled_from(["processing", "complete", "error"]))
    def sweep(self, data: st.DataObject, status: str) -> None:
        known = sorted(j for ids in self.service.values() for j in ids)
        if not known:
            return
        picked = data.draw(st.lists(st.sampled_from(known), max_size=4, unique=True))
        obs = [JobObservation(job_id=j, status=status) for j in picked]
        self.journal.observe(obs, self.now())  # type: ignore[arg-type]

    @rule()
    def retry(self) -> None:
        self.journal.plan_retry(self.now())  # type: ignore[arg-type]

    # -- invariants -----------------------------------------------------------------------

    def snapshot(self) -> None:
        with sqlite3.connect(self.journal.path) as c:
            self.batches = dict(c.execute("SELECT batch_id, state FROM batch").fetchall())
            self.jobs = {
                (u, a): s
                for u, a, s in c.execute(
                    "SELECT u.user_key, j.action, j.state FROM job j JOIN user u USING (uid)"
                )
            }
        c.close()

    @invariant()
    def no_job_is_created_twice(self) -> None:
        twice = [k for k, ids in self.service.items() if len(ids) > 1]
        assert not twice, f"created twice: {twice}"

    @invariant()
    def states_are_legal_and_reached_by_legal_moves(self) -> None:
        before_batches, before_jobs = self.batches, self.jobs
        self.snapshot()
        for batch_id, state in self.batches.items():
            assert state in set(BatchState)
            old = before_batches.get(batch_id)
            assert old is None or old == state or (old, state) in BATCH_MOVES, (old, state)
        for key, state in self.jobs.items():
            assert state in set(JobState)
            old = before_jobs.get(key)
            assert old is None or old == state or (old, state) in JOB_MOVES, (old, state)

    @invariant()
    def every_user_is_in_exactly_one_live_place(self) -> None:
        with sqlite3.connect(self.journal.path) as c:
            orphans = c.execute(
                "SELECT count(*) FROM user WHERE batch_seq NOT IN (SELECT seq FROM batch)"
            ).fetchone()[0]
            # a pending job waits in a batch that may still be POSTed or reconciled
            stray = c.execute(
                "SELECT b.state FROM job j JOIN user u USING (uid) JOIN batch b"
                " ON b.seq = u.batch_seq WHERE j.state = 'pending'"
                " AND b.state NOT IN ('planned', 'submitting', 'ambiguous')"
            ).fetchall()
            latest = c.execute(
                "SELECT u.subject_key, j.action, count(*) FROM job j JOIN user u USING (uid)"
                " WHERE NOT EXISTS (SELECT 1 FROM job r WHERE r.parent_jid = j.jid)"
                " GROUP BY u.subject_key, j.action"
            ).fetchall()
        c.close()
        assert orphans == 0
        assert stray == []
        assert len(latest) == SUBJECTS * 2
        assert all(n == 1 for _, _, n in latest)

    @invariant()
    def journal_job_ids_match_the_service(self) -> None:
        with sqlite3.connect(self.journal.path) as c:
            rows = c.execute(
                "SELECT u.user_key, j.action, j.job_id FROM job j JOIN user u USING (uid)"
                " WHERE j.job_id IS NOT NULL"
            ).fetchall()
        c.close()
        for user_key, action, job_id in rows:
            assert self.service[(user_key, action)] == [job_id]


TestJournalMachine = JournalMachine.TestCase
TestJournalMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestJournalMachine = pytest.mark.slow(TestJournalMachine)
