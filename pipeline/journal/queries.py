"""Read queries of the run journal: what to do next, progress counts, and report rows.

Mixed into :class:`pipeline.journal.store.Journal`. Short queries run on the journal's connection;
the report iterators read one WAL snapshot through a second, read-only connection, so a
report of 1,000,000 rows neither blocks the runner's writes nor sees half of one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from ..errors import JournalError
from ..input.batching import stored_json
from ..models import Action, Identity, PlannedBatch, PlannedUser, RequestOptions, UserRequest
from .blobs import (
    BLOB_JOBS_BY_STATE,
    CANCELLED_CODE,
    CANCELLED_MESSAGE,
    Record,
    deferred_seq,
    materialise,
    records,
)
from .models import (
    NEEDS_DETAILS_SQL,
    NEEDS_DOWNLOAD_SQL,
    OPEN_JOB_STATES,
    BatchInfo,
    BatchState,
    JobState,
    JournalCounts,
    OpenWindow,
    ProductRow,
    PurgedFile,
    PurgeRecord,
    RunInfo,
    RunIntent,
    RunMeta,
    RunState,
    StatusRow,
    from_us,
    from_us_required,
    state_in,
)
from .schema import JournalStore

_OPEN_J = state_in(OPEN_JOB_STATES, "j.state")
# one org's rows (the org name bound twice; NULL: every org), of a query joining batch b
_OF_ORG = "(? IS NULL OR b.org = ?)"
# batch states whose POST created nothing, and those whose jobs_created is final
_NEVER_CREATED = (BatchState.PLANNED, BatchState.CANCELLED, BatchState.FAILED)
_SETTLED = (BatchState.SUBMITTED, BatchState.RECONCILED)
# the same for a query of the job table alone
_JOB_OF_ORG = (
    "(? IS NULL OR EXISTS (SELECT 1 FROM user u JOIN batch b ON b.seq = u.batch_seq"
    " WHERE u.uid = job.uid AND b.org = ?))"
)

REPORT_CHUNK_ROWS = 10_000

_BATCH_COLS = (
    "b.batch_id, b.parent_batch_id, b.regulation, b.state,"
    " (SELECT count(*) FROM job j JOIN user u ON u.uid = j.uid WHERE u.batch_seq = b.seq)"
    " + coalesce((SELECT p.jobs FROM plan_users p WHERE p.seq = b.seq), 0),"
    " b.payload_digest, b.intent_at, b.submitted_at, b.request_id, b.error_code, b.error_message,"
    " b.org"
)

# the latest attempt of every (user, action): a retried job is superseded by its child
_STATUS_SQL = """
SELECT j.jid, u.subject_key, u.user_key, u.part, j.attempt, j.action, b.regulation, b.request_id,
       j.job_id, j.state, j.submitted_at, j.updated_at, j.completed_at, j.products_total,
       j.products_complete, j.products_error, j.result_path, j.result_sha256, j.error_code,
       j.error_message, u.input_rows, u.received_at, j.result_purged_at, j.result_plain_sha256,
       NULL, NULL, NULL, b.org
FROM job j JOIN user u ON u.uid = j.uid JOIN batch b ON b.seq = u.batch_seq
WHERE NOT EXISTS (SELECT 1 FROM job r WHERE r.parent_jid = j.jid)
ORDER BY j.jid
"""
# the jobs dedupe left out of the plan: status `skipped`, after the plan's jobs
_SKIPPED_SQL = """
SELECT subject_key, user_key, part, 1, action, regulation, NULL, NULL, 'skipped', NULL, NULL,
       NULL, 0, 0, 0, NULL, NULL, NULL, NULL, input_rows, received_at, NULL, NULL,
       'DUPLICATE', previous_run_id, previous_job_id, NULL
FROM skipped ORDER BY sid
"""
_PRODUCTS_SQL = """
SELECT p.job_id, u.subject_key, j.action, p.product, p.status, p.response_code, p.message,
       p.processed_date, p.retry_count, b.org
FROM product p JOIN job j ON j.job_id = p.job_id JOIN user u ON u.uid = j.uid
JOIN batch b ON b.seq = u.batch_seq
WHERE NOT EXISTS (SELECT 1 FROM job r WHERE r.parent_jid = j.jid)
ORDER BY j.jid, p.product
"""


def options_json(options: RequestOptions) -> str:
    """The stored form of a batch's request options."""
    return orjson.dumps(
        {
            "regulation": options.regulation,
            "include": list(options.include),
            "priority": options.priority,
            "expand_ids": options.expand_ids,
            "merge_policy_id": options.merge_policy_id,
        }
    ).decode()


def _options(blob: str, org: str) -> RequestOptions:
    raw = orjson.loads(blob)
    return RequestOptions(
        regulation=raw["regulation"],
        include=tuple(raw["include"]),
        priority=raw["priority"],
        expand_ids=raw["expand_ids"],
        merge_policy_id=raw["merge_policy_id"],
        org=org,
    )


def _batch_info(row: Any) -> BatchInfo:
    return BatchInfo(
        batch_id=row[0], parent_batch_id=row[1], regulation=row[2], state=BatchState(row[3]),
        job_count=row[4], payload_digest=row[5], intent_at=from_us(row[6]),
        submitted_at=from_us(row[7]), request_id=row[8], error_code=row[9], error_message=row[10],
        org=row[11],
    )  # fmt: skip


class JournalQueries(JournalStore):
    """What the runner, ``dsar status`` and the reports read."""

    @property
    def has_plan(self) -> bool:
        """True once :meth:`write_plan` committed."""
        with self._lock:
            return self._conn.execute("SELECT 1 FROM run").fetchone() is not None

    def run_info(self) -> RunInfo:
        """The run's metadata and state; :class:`JournalError` if no plan was written."""
        with self._lock:
            row = self._conn.execute(
                "SELECT run_id, created_at, input_path, input_sha256, input_rows, config_digest,"
                " tool_version, settings_json, org_id, rejects_count, state, pause_reason,"
                " resume_after, updated_at, intent, stop_polling, identities_purged_at FROM run"
            ).fetchone()
        if row is None:
            raise JournalError("the journal holds no plan")
        created = from_us_required(row[1])
        updated = from_us_required(row[13])
        meta = RunMeta(
            run_id=row[0], created_at=created, input_path=row[2], input_sha256=row[3],
            input_rows=row[4], config_digest=row[5], tool_version=row[6],
            settings=orjson.loads(row[7]), org_id=row[8],
        )  # fmt: skip
        return RunInfo(
            meta=meta, rejects_count=row[9], state=RunState(row[10]), pause_reason=row[11],
            resume_after=from_us(row[12]), updated_at=updated, intent=RunIntent(row[14]),
            stop_polling=bool(row[15]), identities_purged_at=from_us(row[16]),
        )  # fmt: skip

    def batches_to_submit(self, limit: int | None = None, *, org: str | None = None) -> list[str]:
        """Ids of planned batches in plan order (child and retry batches come last); only
        the batches of the org named ``org`` when given (None: every org)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT batch_id FROM batch WHERE state = 'planned'"
                " AND (? IS NULL OR org = ?) ORDER BY seq LIMIT ?",
                (org, org, -1 if limit is None else limit),
            ).fetchall()
        return [r[0] for r in rows]

    def unresolved_batches(self, *, org: str | None = None) -> list[BatchInfo]:
        """Batches in submitting or ambiguous, in plan order: reconcile them before submitting
        (only the org named ``org`` when given)."""
        return self._batches(
            f"WHERE b.state IN ('submitting', 'ambiguous') AND {_OF_ORG} ORDER BY b.seq",
            (org, org),
        )

    def jobs_created(self, batch_ids: Iterable[str]) -> dict[str, int | None]:
        """What each of ``batch_ids`` created at the service, as the journal has committed it:
        the jobs of a settled POST (``submitted``, ``reconciled``: adopted or deferred), 0 for a
        batch never POSTed or refused (``planned``, ``cancelled``, ``failed``), None while the
        outcome is unknown (``submitting``, ``ambiguous``: reconciliation will tell) or was
        settled before the journal counted it. Unknown batch ids are left out.

        The daily-cap ledger's reservations are settled from this (the journal is the truth).
        """
        ids = list(batch_ids)
        found: dict[str, int | None] = {}
        with self._read() as c:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                rows = c.execute(
                    f"SELECT batch_id, state, jobs_created FROM batch WHERE batch_id IN ({marks})",
                    chunk,
                )
                for batch_id, state, created in rows:
                    if state in _NEVER_CREATED:
                        found[batch_id] = 0
                    elif state in _SETTLED:
                        found[batch_id] = created
                    else:
                        found[batch_id] = None
        return found

    def batch_info(self, batch_id: str) -> BatchInfo:
        """One batch's bookkeeping; :class:`JournalError` if unknown."""
        found = self._batches("WHERE b.batch_id = ?", (batch_id,))
        if not found:
            raise JournalError(f"batch {batch_id}: unknown batch")
        return found[0]

    def _batches(self, where: str, params: tuple[Any, ...] = ()) -> list[BatchInfo]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_BATCH_COLS} FROM batch b {where}", params)
            return [_batch_info(r) for r in rows.fetchall()]

    def load_batch(self, batch_id: str) -> PlannedBatch:
        """The batch as a :class:`PlannedBatch` to POST: its users with their pending actions.

        A user whose other actions were adopted by a reconciliation carries only the rest.
        """
        with self._lock:
            deferred = deferred_seq(self._conn, batch_id)
        if deferred is not None:  # its deferred record becomes rows first (blobs.materialise)
            with self._tx() as c:
                materialise(c, deferred)
        with self._read() as c:
            row = c.execute(
                "SELECT seq, options_json, org FROM batch WHERE batch_id = ?", (batch_id,)
            ).fetchone()
            if row is None:
                raise JournalError(f"batch {batch_id}: unknown batch")
            users = c.execute(
                "SELECT u.uid, u.user_key, u.subject_key, u.part, u.identities, u.input_rows,"
                " u.received_at, group_concat(j.action, ' ')"
                " FROM user u JOIN job j ON j.uid = u.uid"
                " WHERE u.batch_seq = ? AND j.state = 'pending' GROUP BY u.uid ORDER BY u.uid",
                (row[0],),
            ).fetchall()
        planned = []
        for _, key, subject, part, ids, rows, received, actions in users:
            chosen = set(actions.split(" "))
            request = UserRequest(
                key=key,
                actions=tuple(a for a in Action if a.value in chosen),
                identities=tuple(Identity(n, v, t) for n, v, t in orjson.loads(ids)),
            )
            planned.append(PlannedUser(subject, part, request, tuple(orjson.loads(rows)), received))
        options = _options(row[1], row[2])
        return PlannedBatch(batch_id=batch_id, options=options, users=tuple(planned))

    def open_windows(self, *, org: str | None = None) -> list[OpenWindow]:
        """Per regulation: open jobs (submitted or processing) and the oldest submit time
        (of the org named ``org`` only, when given)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT b.regulation, count(*), min(j.submitted_at) FROM job j"
                " JOIN user u ON u.uid = j.uid JOIN batch b ON b.seq = u.batch_seq"
                f" WHERE {_OPEN_J} AND {_OF_ORG} GROUP BY b.regulation"
                " ORDER BY b.regulation",
                (org, org),
            ).fetchall()
        out = []
        for regulation, count, oldest in rows:
            at = from_us_required(oldest)  # open jobs always have a submit time
            out.append(OpenWindow(regulation=regulation, open_jobs=count, oldest_submitted_at=at))
        return out

    def open_jobs(self, regulation: str, *, org: str | None = None) -> dict[str, datetime]:
        """Job id -> submit time of one regulation's jobs still submitted or processing (of
        the org named ``org`` only, when given)."""
        # Streamed, not fetchall(), and one datetime per distinct time (a batch's jobs share
        # theirs): 200,000 open jobs cost 92 MB of peak RSS per sweep the other way.
        times: dict[int, datetime] = {}
        out: dict[str, datetime] = {}
        with self._lock:
            rows = self._conn.execute(
                "SELECT j.job_id, j.submitted_at FROM job j JOIN user u ON u.uid = j.uid"
                " JOIN batch b ON b.seq = u.batch_seq"
                f" WHERE {_OPEN_J} AND b.regulation = ? AND {_OF_ORG}",
                (regulation, org, org),
            )
            for job_id, at in rows:
                when = times.get(at)
                if when is None:
                    when = times[at] = from_us_required(at)
                out[job_id] = when
        return out

    def unacknowledged_times(self, regulation: str, *, org: str | None = None) -> list[datetime]:
        """Distinct submit times of one regulation's jobs never seen past ``submitted`` (of the
        org named ``org`` only, when given).

        A batch's jobs share one submit time, so this is a short list even for many jobs.
        """
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT j.submitted_at FROM job j JOIN user u ON u.uid = j.uid"
                " JOIN batch b ON b.seq = u.batch_seq"
                f" WHERE j.state = '{JobState.SUBMITTED.value}' AND b.regulation = ?"
                f" AND {_OF_ORG}",
                (regulation, org, org),
            ).fetchall()
        return [from_us_required(at) for (at,) in rows]

    def jobs_needing_details(self, limit: int = 1000, *, org: str | None = None) -> list[str]:
        """Terminal jobs whose ``GET /jobs/{id}`` has not been recorded yet, oldest first (of
        the org named ``org`` only, when given)."""
        return self._job_ids(
            "job_needs_details",
            f"{NEEDS_DETAILS_SQL} AND {_JOB_OF_ORG} ORDER BY completed_at, jid",
            limit,
            org,
        )

    def jobs_needing_download(self, limit: int = 1000, *, org: str | None = None) -> list[str]:
        """Complete jobs whose details offered a result that is not on disk yet (of the org
        named ``org`` only, when given)."""
        return self._job_ids(
            "job_needs_download",
            f"{NEEDS_DOWNLOAD_SQL} AND {_JOB_OF_ORG} ORDER BY jid",
            limit,
            org,
        )

    def results_unavailable(self) -> int:
        """Complete jobs whose offered result could not be fetched (see error_code)."""
        with self._lock:
            (n,) = self._conn.execute(
                f"SELECT count(*) FROM job WHERE state = '{JobState.COMPLETE.value}'"
                " AND error_code IS NOT NULL"
            ).fetchone()
        return int(n)

    def downloads_waiting(self) -> int:
        """How many complete jobs offered a result that is not on disk yet."""
        with self._lock:
            (n,) = self._conn.execute(
                f"SELECT count(*) FROM job WHERE {NEEDS_DOWNLOAD_SQL}"
            ).fetchone()
        return int(n)

    def _job_ids(self, index: str, where: str, limit: int, org: str | None) -> list[str]:
        # the partial index named keeps each poll round off a 1,000,000-row scan
        sql = f"SELECT job_id FROM job INDEXED BY {index} WHERE {where} LIMIT ?"
        with self._lock:
            return [r[0] for r in self._conn.execute(sql, (org, org, limit)).fetchall()]

    def counts(self) -> JournalCounts:
        """Jobs (latest attempts only) and batches by state; cheap enough for every tick."""
        with self._read() as c:
            jobs = dict.fromkeys((s.value for s in JobState), 0)
            jobs.update(
                c.execute(
                    "SELECT state, count(*) FROM job j WHERE NOT EXISTS"
                    " (SELECT 1 FROM job r WHERE r.parent_jid = j.jid) GROUP BY state"
                ).fetchall()
            )
            batches = dict.fromkeys((s.value for s in BatchState), 0)
            batches.update(c.execute("SELECT state, count(*) FROM batch GROUP BY state").fetchall())
            for _, state, n in c.execute(BLOB_JOBS_BY_STATE).fetchall():
                jobs[state] += n
            (users,) = c.execute(
                "SELECT (SELECT count(*) FROM user)"
                " + (SELECT coalesce(sum(users), 0) FROM plan_users)"
            ).fetchone()
        return JournalCounts(jobs=jobs, batches=batches, users=users)

    def api_calls(self) -> dict[str, dict[str, int]]:
        """``{endpoint template: {status: count}}`` accumulated over the run."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            rows = self._conn.execute(
                "SELECT endpoint, status, count FROM api_call ORDER BY endpoint, status"
            ).fetchall()
        for endpoint, status, count in rows:
            out.setdefault(endpoint, {})[status] = count
        return out

    def timings(self) -> dict[str, Any]:
        """First intent, first and last submit, last completion (aware datetimes or None)."""
        with self._lock:
            intent, first_sub = self._conn.execute(
                "SELECT min(intent_at), min(submitted_at) FROM batch"
            ).fetchone()
            last_sub, last_done = self._conn.execute(
                "SELECT max(submitted_at), max(completed_at) FROM job"
            ).fetchone()
        return {
            "first_intent_at": from_us(intent),
            "first_submitted_at": from_us(first_sub),
            "last_submitted_at": from_us(last_sub),
            "last_completed_at": from_us(last_done),
        }

    def iter_status_rows(self, chunk_rows: int = REPORT_CHUNK_ROWS) -> Iterator[list[StatusRow]]:
        """status.parquet rows in chunks, from one snapshot; latest attempt of each job."""
        with self._snapshot() as c:
            blobs = records(c, cols=_BLOB_STATUS_COLS)
            chunk: list[StatusRow] = []
            for row in _by_jid(c.execute(_STATUS_SQL), blobs, chunk_rows):
                chunk.append(row)
                if len(chunk) == chunk_rows:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk
            cur = c.execute(_SKIPPED_SQL)
            while rows := cur.fetchmany(chunk_rows):
                yield [StatusRow._make(r) for r in rows]

    def states_by_org(self) -> dict[str, dict[str, int]]:
        """The latest attempt of every job, counted by org and journal state (the rows of
        status.parquet but the skipped ones)."""
        by_org = self._count_by_org(
            "SELECT b.org, j.state, count(*) FROM job j JOIN user u ON u.uid = j.uid"
            " JOIN batch b ON b.seq = u.batch_seq"
            " WHERE NOT EXISTS (SELECT 1 FROM job r WHERE r.parent_jid = j.jid)"
            " GROUP BY b.org, j.state ORDER BY b.org"
        )
        with self._lock:
            blobs = self._conn.execute(BLOB_JOBS_BY_STATE).fetchall()
        for org, state, n in blobs:  # the deferred records' jobs (blobs.virtual rows)
            states = by_org.setdefault(org, {})
            states[state] = states.get(state, 0) + int(n)
        return dict(sorted(by_org.items()))

    def jobs_created_by_org(self) -> dict[str, dict[str, int]]:
        """Jobs the service created (every attempt with a job id), by org and UTC day of
        their submission (``YYYY-MM-DD``): what each org spent of its daily caps."""
        return self._count_by_org(
            "SELECT b.org, date(j.submitted_at / 1000000, 'unixepoch'), count(*) FROM job j"
            " JOIN user u ON u.uid = j.uid JOIN batch b ON b.seq = u.batch_seq"
            " WHERE j.job_id IS NOT NULL AND j.submitted_at IS NOT NULL"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        )

    def _count_by_org(self, sql: str) -> dict[str, dict[str, int]]:
        """``{org: {key: count}}`` of a query selecting (org, key, count) rows."""
        with self._lock:
            rows = self._conn.execute(sql).fetchall()
        by_org: dict[str, dict[str, int]] = {}
        for org, key, n in rows:
            by_org.setdefault(org, {})[key] = int(n)
        return by_org

    def skipped_count(self) -> int:
        """Jobs dedupe left out of the plan (an earlier run of the workspace submitted them)."""
        with self._lock:
            (n,) = self._conn.execute("SELECT count(*) FROM skipped").fetchone()
        return int(n)

    def iter_product_rows(self, chunk_rows: int = REPORT_CHUNK_ROWS) -> Iterator[list[ProductRow]]:
        """products.parquet rows in chunks, from one snapshot."""
        with self._snapshot() as c:
            cur = c.execute(_PRODUCTS_SQL)
            while chunk := cur.fetchmany(chunk_rows):
                yield [ProductRow._make(r) for r in chunk]

    def purges(self) -> list[PurgeRecord]:
        """Every purge of the run, oldest first."""
        with self._lock:
            rows = self._conn.execute("SELECT at, what, files FROM purge ORDER BY seq").fetchall()
        return [
            PurgeRecord(
                what=what,
                at=from_us_required(at),
                files=tuple(PurgedFile(**f) for f in orjson.loads(files)),
            )
            for at, what, files in rows
        ]


# the batch columns a deferred record's virtual status rows read
_BLOB_STATUS_COLS = "b.regulation, b.request_id, b.org, b.state, b.updated_at"


def _by_jid(cur: Any, blobs: Iterator[Record], chunk_rows: int) -> Iterator[StatusRow]:
    """The status rows of the job table (``jid`` first) and the virtual rows of the deferred
    records, merged in jid order: each record holds a reserved range of jids, so its rows go
    in one piece before the first stored row above its range."""
    blob = next(blobs, None)
    while rows := cur.fetchmany(chunk_rows):
        for row in rows:
            while blob is not None and blob.jid_first < row[0]:
                yield from _virtual_status(blob)
                blob = next(blobs, None)
            yield StatusRow._make(row[1:])
    while blob is not None:
        yield from _virtual_status(blob)
        blob = next(blobs, None)


def _virtual_status(record: Record) -> Iterator[StatusRow]:
    """A deferred record's jobs as status rows: ``pending`` while its batch is planned, else
    ``cancelled`` with the fields :meth:`RunIntents.cancel` writes."""
    regulation, request_id, org, state, updated_at = record.batch
    planned = state == BatchState.PLANNED.value
    job_state = JobState.PENDING.value if planned else JobState.CANCELLED.value
    updated = None if planned else updated_at
    code = None if planned else CANCELLED_CODE
    message = None if planned else CANCELLED_MESSAGE
    owner, actions = record.jobs()
    users = record.users
    _, input_rows = stored_json(users)
    take = pa.array(owner)
    columns = (
        users.column("subject_key").take(take).to_pylist(),
        users.column("user_key").take(take).to_pylist(),
        users.column("part").take(take).to_pylist(),
        actions.tolist(),
        input_rows.take(take).to_pylist(),
        users.column("received_at").take(take).to_pylist(),
    )
    for subject, key, part, action, rows, received in zip(*columns, strict=True):
        yield StatusRow(
            subject, key, part, 1, action, regulation, request_id, None, job_state, None,
            updated, None, 0, 0, 0, None, None, code, message, rows, received, None, None,
            None, None, None, org,
        )  # fmt: skip
