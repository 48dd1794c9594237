"""Job transitions of the run journal: sweeps, details, downloads, retries, API counters.

Mixed into :class:`pipeline.journal.store.Journal`; every method is one short transaction and an
illegal strict transition raises :class:`JournalError` without changing anything.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from ..errors import JournalError
from ..logs import mask_values, masked_values
from ..models import Action, JobStatus, ProductResponse
from .blobs import next_ids
from .models import (
    JOB_TRANSITIONS,
    NEEDS_DOWNLOAD_SQL,
    JobDetailRecord,
    JobObservation,
    JobState,
    RunState,
    to_us,
)
from .schema import JournalStore


def redact(text: str | None, values: Iterable[str]) -> str | None:
    """``text`` with each of ``values`` masked: :func:`pipeline.logs.mask_values`."""
    return mask_values(text, masked_values(values)) if text else text


def identity_values(c: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> set[str]:
    """The identity values of the users selected by ``where`` (for masking messages)."""
    values: set[str] = set()
    for (blob,) in c.execute(f"SELECT identities FROM user {where}", params):
        values.update(str(v) for _, v, _ in orjson.loads(blob))
    return values


def retry_key(first_key: str, round_no: int) -> str:
    """The user key of a retry: the first attempt's key plus ``.r<round>``."""
    return f"{first_key}.r{round_no}"


def _first_key(user_key: str, attempt: int) -> str:
    return user_key if attempt == 1 else user_key.rsplit(".r", 1)[0]


def _in(states: Iterable[JobState]) -> str:
    return ", ".join(f"'{s.value}'" for s in states)


class JobTransitions(JournalStore):
    """Job-level writes: what list sweeps, ``GET /jobs/{id}`` and downloads learned."""

    def observe(self, observations: Iterable[JobObservation], at: datetime) -> list[str]:
        """Apply one list sweep in one transaction; returns the job ids that turned terminal.

        Only forward moves apply (submitted -> processing -> complete | error); a repeated or
        stale status, and job ids that are not this run's, are ignored (the list endpoint
        returns every job of the org).
        """
        now = to_us(at)
        turned: list[str] = []
        with self._tx() as c:
            for obs in observations:
                new = JobState(JobStatus(obs.status).value)
                if new is JobState.SUBMITTED:
                    continue
                seen = to_us(obs.updated_at) if obs.updated_at else now
                if self._set_job(c, obs.job_id, new, seen) and new is not JobState.PROCESSING:
                    turned.append(obs.job_id)
        return turned

    @staticmethod
    def _set_job(c: sqlite3.Connection, job_id: str, new: JobState, at_us: int) -> bool:
        terminal = new in (JobState.COMPLETE, JobState.ERROR)
        cur = c.execute(
            "UPDATE job SET state = ?, updated_at = ?,"
            " completed_at = CASE WHEN ? THEN ? ELSE completed_at END"
            f" WHERE job_id = ? AND state IN ({_in(JOB_TRANSITIONS[new])})",
            (new.value, at_us, terminal, at_us, job_id),
        )
        return cur.rowcount == 1

    def record_details(
        self,
        job_id: str,
        products: Sequence[ProductResponse],
        at: datetime,
        *,
        has_result: bool,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> None:
        """Store a terminal job's per-product outcomes (from its one ``GET /jobs/{id}``).

        Replaces any earlier details of the job; ``has_result`` says a download URL was offered.
        Messages that echo an identity value of the job's user are masked. Raises
        :class:`JournalError` unless the job is complete or error.
        """
        detail = JobDetailRecord(
            job_id=job_id,
            products=tuple(products),
            has_result=has_result,
            error_code=error_code,
            error_message=error_message,
        )
        self.record_details_many([detail], at)

    def record_details_many(self, details: Sequence[JobDetailRecord], at: datetime) -> None:
        """:meth:`record_details` for many jobs in one transaction (one fsync per poll round)."""
        with self._tx() as c:
            for d in details:
                self._record_details_in(c, d, to_us(at))

    @staticmethod
    def _record_details_in(c: sqlite3.Connection, d: JobDetailRecord, at_us: int) -> None:
        job_id, products = d.job_id, d.products
        row = c.execute("SELECT uid, state FROM job WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise JournalError(f"job {job_id}: unknown job")
        if row[1] not in (JobState.COMPLETE, JobState.ERROR):
            raise JournalError(f"job {job_id}: details need a terminal job, not {row[1]}")
        values = identity_values(c, "WHERE uid = ?", (row[0],))
        c.execute("DELETE FROM product WHERE job_id = ?", (job_id,))
        c.executemany(
            "INSERT INTO product VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    job_id, p.product, p.status, p.response_code, redact(p.message, values),
                    to_us(p.processed_at) if p.processed_at else None, p.retry_count,
                )
                for p in products
            ],
        )  # fmt: skip
        c.execute(
            "UPDATE job SET details_at = ?, has_result = ?, products_total = ?,"
            " products_complete = ?, products_error = ?, error_code = ?, error_message = ?"
            " WHERE job_id = ?",
            (
                at_us, int(d.has_result), len(products),
                sum(p.status == JobStatus.COMPLETE for p in products),
                sum(p.status == JobStatus.ERROR for p in products),
                d.error_code, redact(d.error_message, values), job_id,
            ),
        )  # fmt: skip

    def mark_downloaded(
        self,
        job_id: str,
        result_path: str,
        sha256: str,
        at: datetime,
        *,
        plain_sha256: str | None = None,
    ) -> None:
        """complete -> downloaded, for a job whose details offered a result. ``sha256`` is the
        file's as stored; ``plain_sha256`` the plaintext's when it is stored encrypted."""
        self.mark_downloaded_many([(job_id, result_path, sha256, plain_sha256)], at)

    def mark_downloaded_many(
        self, done: Sequence[tuple[str, str, str, str | None]], at: datetime
    ) -> None:
        """:meth:`mark_downloaded` for many ``(job_id, result_path, sha256, plain_sha256)`` in
        one transaction."""
        with self._tx() as c:
            for job_id, result_path, sha256, plain_sha256 in done:
                cur = c.execute(
                    "UPDATE job SET state = 'downloaded', result_path = ?, result_sha256 = ?,"
                    " result_plain_sha256 = ?, updated_at = ?"
                    f" WHERE job_id = ? AND {NEEDS_DOWNLOAD_SQL}",
                    (result_path, sha256, plain_sha256, to_us(at), job_id),
                )
                if cur.rowcount != 1:
                    row = c.execute(
                        "SELECT state, has_result FROM job WHERE job_id = ?", (job_id,)
                    ).fetchone()
                    if row is None:
                        raise JournalError(f"job {job_id}: unknown job")
                    what = "has no result to download" if not row[1] else f"is {row[0]}"
                    raise JournalError(f"job {job_id}: cannot mark downloaded, it {what}")

    def mark_result_unavailable(self, job_id: str, code: str, message: str, at: datetime) -> None:
        """A complete job whose offered result cannot be fetched (gone after the service's
        retention, or no permission): stop trying, and say why in its error columns."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE job SET has_result = 0, error_code = ?, error_message = ?, updated_at = ?"
                f" WHERE job_id = ? AND {NEEDS_DOWNLOAD_SQL}",
                (code, message, to_us(at), job_id),
            )
            if cur.rowcount != 1:
                raise JournalError(f"job {job_id}: no result waiting to be downloaded")

    def add_api_calls(self, counts: Mapping[tuple[str, int | str], int]) -> None:
        """Add ``{(endpoint template, status): n}`` to the run's API-call counters."""
        with self._tx() as c:
            c.executemany(
                "INSERT INTO api_call VALUES (?, ?, ?) ON CONFLICT (endpoint, status)"
                " DO UPDATE SET count = count + excluded.count",
                [(e, str(s), n) for (e, s), n in counts.items() if n],
            )

    def plan_retry(
        self,
        at: datetime,
        *,
        users_per_batch: int = 1000,
        key_for: Callable[[str, int], str] = retry_key,
    ) -> list[str]:
        """Plan new attempts for every job in ``error`` not retried yet; returns new batch ids.

        Round ``n`` gives each retried user (subject and part) one new user key,
        ``key_for(first attempt's key, n)``, carrying only its errored actions; each new job
        links to the job it retries (attempt + 1). Users are grouped by request options
        (opt-out-of-sale apart) into planned batches ``retry<n>-<k>``. A finished or paused
        run goes back to planned.
        """
        now = to_us(at)
        with self._tx() as c:
            rows = c.execute(
                "SELECT j.jid, j.action, j.attempt, u.uid, u.user_key, u.subject_key, u.part,"
                " u.identities, u.input_rows, u.received_at, b.regulation, b.options_json, b.org"
                " FROM job j JOIN user u ON u.uid = j.uid JOIN batch b ON b.seq = u.batch_seq"
                f" WHERE j.state = '{JobState.ERROR.value}'"
                " AND NOT EXISTS (SELECT 1 FROM job r WHERE r.parent_jid = j.jid)"
                " ORDER BY j.uid, j.jid"
            ).fetchall()
            if not rows:
                return []
            by_user: dict[tuple[str, int], list[Any]] = {}
            for r in rows:  # one new user per (subject, part), however many old ones erred
                by_user.setdefault((r[5], r[6]), []).append(r)
            groups: dict[tuple[str, bool], list[list[Any]]] = defaultdict(list)
            for user_rows in by_user.values():
                opt_out = user_rows[0][1] == Action.OPT_OUT_OF_SALE
                groups[(user_rows[0][11] + user_rows[0][12], opt_out)].append(user_rows)
            (rounds,) = c.execute(
                "SELECT count(*) FROM batch WHERE batch_id GLOB 'retry*-00001'"
            ).fetchone()
            (seq,) = c.execute("SELECT max(seq) FROM batch").fetchone()
            uid, jid = next_ids(c)  # above the ranges deferred records reserved too
            batch_ids: list[str] = []
            for group in sorted(groups):
                members = groups[group]
                for start in range(0, len(members), users_per_batch):
                    seq += 1
                    batch_id = f"retry{rounds + 1}-{len(batch_ids) + 1:05d}"
                    batch_ids.append(batch_id)
                    first = members[start][0]
                    c.execute(
                        "INSERT INTO batch (seq, batch_id, regulation, options_json, state,"
                        " updated_at, org) VALUES (?, ?, ?, ?, 'planned', ?, ?)",
                        (seq, batch_id, first[10], first[11], now, first[12]),
                    )
                    for user_rows in members[start : start + users_per_batch]:
                        uid += 1
                        old = user_rows[0]
                        key = key_for(_first_key(old[4], old[2]), rounds + 1)
                        c.execute(
                            "INSERT INTO user VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (uid, key, old[5], old[6], seq, old[7], old[8], old[9]),
                        )
                        for r in user_rows:
                            jid += 1
                            c.execute(
                                "INSERT INTO job (jid, uid, action, attempt, parent_jid, state)"
                                " VALUES (?, ?, ?, ?, ?, 'pending')",
                                (jid, uid, r[1], r[2] + 1, r[0]),
                            )
            c.execute(
                "UPDATE run SET state = 'planned', updated_at = ? WHERE state IN (?, ?)",
                (now, RunState.FINISHED.value, RunState.PAUSED.value),
            )
        return batch_ids
