"""Stages 1 to 3 end to end: an input file becomes rejects, batches and a plan summary.

Two passes keep memory bounded by the batch and partition size, not the file size, although
the rows of one subject may be anywhere in the file:

1. stream record batches, apply the row rules (:mod:`pipeline.input.rules`), write rejects, and
   spill the valid identity cells into hash partitions of the subject key (Arrow IPC files in a
   locked :class:`~pipeline.input.spill.SpillFolder`, swept by the next planning if the process
   dies);
2. load one partition at a time, merge the rows of each subject, reject conflicting subjects,
   collapse duplicate identities, split (or reject) subjects with more than 9 identities, and
   pack users into batches (:mod:`pipeline.input.batching`).

Usage (the run engine writes the columnar batches, ``plan.frames()``, into its journal in one
transaction, each batch's users as one deferred record whose JSON is built when its rows are)::

    with plan_input(path, settings, run_id="r1", rejects_path=run_dir / "rejects.parquet") as plan:
        for batch in plan.batches():      # PlannedBatch objects; plan.frames() for BatchFrame
            ...
        summary = plan.summary            # complete once the batches are consumed
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import keys
from ..constants import DEPRECATED_REGULATIONS
from ..errors import InputError
from ..files import Closing, publish, temp_path
from ..models import PlannedBatch
from ..settings import Settings
from .batching import Batcher, BatchFrame, with_stored_json
from .columns import Layout, resolve_layout
from .dedupe import SKIPPED_SCHEMA, Blocklist
from .merge import Merged, merge_partition
from .rules import CELL_SCHEMA, REJECT_SCHEMA, IdentityKinds, Normalised, normalise_batch
from .sources import open_source
from .spill import (
    SpillFolder,
    SpillWriter,
    read_partition,
    split_by_bucket,
    sweep_spill_folders,
)
from .upload import job_settings_for

log = logging.getLogger("dsar.input")

PARTITION_ROWS = 70_000  # input rows per spill partition: bounds pass-2 memory
WORKERS = 2  # threads: Arrow kernels and NumPy sorts release the GIL
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class PlanSummary:
    """What a plan amounts to. Counts of users and requests are final once batches are read."""

    rows: int = 0
    rejected_rows: int = 0
    subjects: int = 0
    users: int = 0
    requests: int = 0
    jobs: int = 0
    skipped: int = 0  # jobs an earlier run already submitted (dedupe): not planned again
    daily_job_cap: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    deprecated_regulations: Counter[str] = field(default_factory=Counter)
    ignored_columns: tuple[str, ...] = ()

    @property
    def days(self) -> int:
        """Days the daily job cap makes the submission take (0 when there are no jobs)."""
        return math.ceil(self.jobs / self.daily_job_cap) if self.daily_job_cap else 0


class RejectsWriter:
    """Streams reject rows into a Parquet file, published atomically by :meth:`close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # the pid tells a later run whether the writer is dead (pipeline.run.leftovers)
        self._tmp = temp_path(path)
        self._writer = pq.ParquetWriter(self._tmp, REJECT_SCHEMA)

    def write(self, rejects: pa.Table) -> None:
        """Append ``rejects`` (REJECT_SCHEMA)."""
        if rejects.num_rows:
            self._writer.write_table(rejects.cast(REJECT_SCHEMA))

    def close(self) -> None:
        """Finish the file and move it into place."""
        self._writer.close()
        publish(self._tmp, self.path)


class Plan(Closing):
    """The result of pass 1, and pass 2 as a generator of batches; a context manager.

    Read the batches once, through :meth:`batches` or :meth:`frames`; then ``summary`` is
    complete and ``rejects_path`` holds every rejected row. Closing removes the spill files.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        run_id: str,
        partitions: list[Path],
        spill: SpillFolder,
        rejects: RejectsWriter,
        summary: PlanSummary,
        blocklist: Blocklist | Callable[[], Blocklist] | None = None,
    ) -> None:
        self.settings = settings
        self._blocklist_source = blocklist
        self.blocklist: Blocklist | None = None
        self._skipped: list[pa.Table] = []
        self.run_id = run_id
        self.summary = summary
        self.rejects_path = rejects.path
        self._partitions = partitions
        self._spill = spill
        self._rejects = rejects
        self.kinds = IdentityKinds()
        self._consumed = False
        self._closed = False

    def frames(self, *, allow_empty: bool = False, stored: bool = False) -> Iterator[BatchFrame]:
        """Pass 2: the columnar batches, in a deterministic order.

        When every row was rejected this raises :class:`InputError` at the end, unless
        ``allow_empty`` (a run records the rejects-only plan and reports it). With ``stored``,
        each frame's users also carry the JSON the journal stores
        (:func:`~pipeline.input.batching.with_stored_json`), built in the merge workers."""
        if self._consumed:
            raise RuntimeError("a plan's batches can be read once")
        self._consumed = True
        source = self._blocklist_source  # a callable was loading while pass 1 ran
        self.blocklist = source() if callable(source) else source
        batcher = Batcher(
            run_id=self.run_id,
            job=self.settings.job,
            users_per_request=self.settings.limits.users_per_request,
            orgs=[(org.name, org.include) for org in self.settings.org_list()],
        )
        summary = self.summary
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dsar-merge") as pool:
            merge = self._merge_stored if stored else self._merge
            for merged, skipped in ordered_map(pool, merge, self._partitions, ahead=WORKERS - 1):
                self._reject(merged.rejects)
                summary.subjects += merged.subjects
                if skipped.num_rows:
                    summary.skipped += skipped.num_rows
                    self._skipped.append(skipped)
                yield from self._count(batcher.add(merged.users))
        yield from self._count(batcher.flush())
        self.close()
        if summary.users == 0 and summary.skipped == 0 and not allow_empty:
            raise InputError(
                f"no valid row: all {summary.rows} rows were rejected, see {self.rejects_path}"
            )

    def skipped(self) -> pa.Table:
        """The jobs dedupe took out of the plan (SKIPPED_SCHEMA); complete once the batches
        are consumed."""
        return pa.concat_tables([SKIPPED_SCHEMA.empty_table(), *self._skipped])

    def _merge(self, path: Path) -> tuple[Merged, pa.Table]:
        """One partition's subjects (in a worker thread), less the jobs dedupe skips."""
        cells = read_partition(path)
        merged = merge_partition(
            cells,
            self.run_id,
            self.settings.input.on_too_many_ids,
            self.kinds.pairs,
            [org.name for org in self.settings.org_list()],
        )
        if self.blocklist is None:
            return merged, SKIPPED_SCHEMA.empty_table()
        users, skipped = self.blocklist.split(merged.users)
        return Merged(users=users, rejects=merged.rejects, subjects=merged.subjects), skipped

    def _merge_stored(self, path: Path) -> tuple[Merged, pa.Table]:
        merged, skipped = self._merge(path)
        users = with_stored_json(merged.users)
        return Merged(users=users, rejects=merged.rejects, subjects=merged.subjects), skipped

    def batches(self, *, allow_empty: bool = False) -> Iterator[PlannedBatch]:
        """Pass 2: the typed batches the run engine journals, in a deterministic order."""
        for frame in self.frames(allow_empty=allow_empty):
            yield frame.to_planned()

    def _count(self, frames: Iterator[BatchFrame]) -> Iterator[BatchFrame]:
        for frame in frames:
            self.summary.users += frame.users.num_rows
            self.summary.requests += 1
            self.summary.jobs += frame.job_count
            yield frame

    def _reject(self, rejects: pa.Table) -> None:
        if rejects.num_rows:
            self.summary.rejected_rows += rejects.num_rows
            for item in pc.value_counts(rejects.column("reason_code")).to_pylist():
                self.summary.reasons[str(item["values"])] += int(item["counts"])
            self._rejects.write(rejects)

    def close(self) -> None:
        """Finish the rejects file and remove the spill folder (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._rejects.close()
        finally:
            self._spill.remove()


def key_secret(settings: Settings, env: Mapping[str, str]) -> bytes:
    """The secret of derived subject keys: the variable named by ``input.key_secret_env``."""
    return keys.key_secret(env, settings.input.key_secret_env)


def plan_input(
    path: Path,
    settings: Settings,
    *,
    run_id: str,
    rejects_path: Path,
    env: Mapping[str, str] | None = None,
    spill_dir: Path | None = None,
    blocklist: Blocklist | Callable[[], Blocklist] | None = None,
) -> Plan:
    """Run pass 1 over ``path`` and return the :class:`Plan` whose batches are pass 2.

    With ``blocklist`` (the workspace registry's earlier jobs), pass 2 leaves out the jobs it
    blocks: :meth:`Plan.skipped` lists them and ``summary.skipped`` counts them. A callable
    (e.g. a future's ``result``) is called when pass 2 starts: the blocklist may load while
    pass 1 reads the file.

    Raises :class:`InputError` (exit 3) when the file is unreadable, has no data row or lacks
    a required column; ``rejects_path`` is written in every case where rows were read. The spill
    folder goes under ``spill_dir`` (default: the system's temporary directory), after the dead
    spill folders of earlier plannings there are swept.
    """
    env = os.environ if env is None else env
    source = open_source(path, delimiter=settings.input.delimiter)
    if source.upload is not None:
        settings = job_settings_for(source.upload, settings, str(path))
    layout = resolve_layout(
        source.columns,
        settings.input,
        str(path),
        layout="long" if source.format == "json" else None,
    )
    if layout.ignored:
        log.warning("ignoring %d unmapped column(s): %s", len(layout.ignored), layout.ignored)
    root = spill_dir or Path(tempfile.gettempdir())
    sweep_spill_folders(root)
    folder = SpillFolder.create(root, own_root=spill_dir is not None)
    count = max(1, math.ceil(source.estimated_rows / PARTITION_ROWS))
    try:
        spill = SpillWriter(folder.path, count, CELL_SCHEMA)
        rejects = RejectsWriter(rejects_path)
    except BaseException:
        folder.remove()
        raise
    summary = PlanSummary(
        daily_job_cap=settings.limits.daily_job_cap, ignored_columns=layout.ignored
    )
    plan = Plan(
        settings=settings,
        run_id=run_id,
        partitions=spill.paths,
        spill=folder,
        rejects=rejects,
        summary=summary,
        blocklist=blocklist,
    )
    try:
        _spill(source.batches(settings.input.batch_rows), layout, plan, spill, env)
    except BaseException:
        plan.close()
        raise
    if summary.rows == 0:
        plan.close()
        raise InputError(f"{path}: no data rows (header only)")
    for regulation, rows in summary.deprecated_regulations.items():
        log.warning(
            "regulation %r is deprecated: %d row(s) mapped to %r",
            regulation,
            rows,
            DEPRECATED_REGULATIONS[regulation],
        )
    return plan


def _spill(
    batches: Iterator[pa.RecordBatch],
    layout: Layout,
    plan: Plan,
    spill: SpillWriter,
    env: Mapping[str, str],
) -> None:
    secret = key_secret(plan.settings, env)
    settings = plan.settings
    buckets = len(spill.paths)
    orgs = tuple(org.name for org in settings.org_list())

    def normalise(
        item: tuple[int, pa.RecordBatch],
    ) -> tuple[Normalised, list[tuple[int, pa.Table]]]:
        first_row, batch = item
        result = normalise_batch(
            batch, first_row, layout, settings.job, secret, plan.kinds, orgs, settings.default_org
        )
        return result, split_by_bucket(result.cells, buckets)

    try:
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dsar-rules") as pool:
            for result, parts in ordered_map(pool, normalise, _numbered(batches), ahead=WORKERS):
                plan.summary.rows += result.rows
                plan.summary.deprecated_regulations.update(result.deprecated)
                plan._reject(result.rejects)
                spill.write(parts)
    finally:
        spill.close()


def _numbered(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[int, pa.RecordBatch]]:
    first = 0
    for batch in batches:
        yield first, batch
        first += batch.num_rows


def ordered_map(
    pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], *, ahead: int
) -> Iterator[R]:
    """``map(fn, items)`` on ``pool``, in order, with at most ``ahead + 1`` items in flight."""
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def render_summary(summary: PlanSummary) -> str:
    """The plan as the lines ``dsar validate`` prints (counts only, never values)."""
    lines = [
        f"rows          {summary.rows:>12,}",
        f"rejected rows {summary.rejected_rows:>12,}",
        f"subjects      {summary.subjects:>12,}",
        f"users         {summary.users:>12,}",
        f"requests      {summary.requests:>12,}",
        f"jobs          {summary.jobs:>12,}",
        f"skipped jobs  {summary.skipped:>12,}   (submitted by an earlier run: dedupe)",
        f"days          {summary.days:>12,}   (daily cap {summary.daily_job_cap:,} jobs)",
    ]
    for reason, count in sorted(summary.reasons.items()):
        lines.append(f"  {reason:<20} {count:>10,}")
    return "\n".join(lines)


def validate_file(
    path: Path,
    settings: Settings,
    *,
    out_dir: Path,
    env: Mapping[str, str] | None = None,
    blocklist: Blocklist | None = None,
) -> PlanSummary:
    """Plan ``path`` without any API call: write ``out_dir/rejects.parquet``, return the counts
    (with ``blocklist``, how many jobs dedupe would skip).

    Raises :class:`InputError` when the file is unreadable or holds no valid row.
    """
    with plan_input(
        path,
        settings,
        run_id="validate",
        rejects_path=out_dir / "rejects.parquet",
        env=env,
        blocklist=blocklist,
    ) as plan:
        for _ in plan.frames():
            pass
        return plan.summary
