"""Compact job storage: slotted records, a by-id map, creation-ordered (org, regulation) indexes.

A job is immutable once created: its products' outcomes and times are drawn at creation and
packed into a few bytes, and its status at any moment is derived from the emulator clock. That
keeps a million jobs in a few hundred megabytes and makes listing a bisect plus a slice.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field

from .catalog import ERROR_OUTCOMES

# (namespace, value, type, namespaceId or None, isDeletedClientSide)
Identity = tuple[str, str, str, int | None, bool]


class Request:
    """What the jobs of one POST share: ids, org, regulation, products, creation time."""

    __slots__ = ("created_at", "org_id", "products", "regulation", "request_id", "submitted_by")

    def __init__(
        self,
        request_id: str,
        org_id: str,
        regulation: str,
        submitted_by: str,
        products: tuple[str, ...],
        created_at: float,
    ) -> None:
        self.request_id = request_id
        self.org_id = org_id
        self.regulation = regulation
        self.submitted_by = submitted_by
        self.products = products
        self.created_at = created_at


class User:
    """One data subject of a POST: the caller's key and the identities sent for it."""

    __slots__ = ("ids", "key")

    def __init__(self, key: str, ids: tuple[Identity, ...]) -> None:
        self.key = key
        self.ids = ids


@dataclass(frozen=True, slots=True)
class ProductState:
    """One product's part of a job: outcome index into ``OUTCOMES`` and its two event times."""

    product: str
    outcome: int
    ack_at: float
    done_at: float


class Job:
    """One (user, action) job; status is a function of the clock, see :meth:`status_at`."""

    __slots__ = (
        "ack_at",
        "action",
        "done_at",
        "failed",
        "job_id",
        "packed",
        "request",
        "seq",
        "user",
    )

    def __init__(
        self,
        seq: int,
        job_id: str,
        request: Request,
        user: User,
        action: str,
        packed: bytes,
        summary: tuple[float, float, bool] | None = None,
    ) -> None:
        self.seq = seq
        self.job_id = job_id
        self.request = request
        self.user = user
        self.action = action
        self.packed = packed
        # (first ack, last done, any product failed): given by the simulator, else unpacked.
        self.ack_at, self.done_at, self.failed = summary or summarize(self.products())

    def status_at(self, now: float) -> str:
        """``submitted`` until a product acknowledges, ``processing`` until all are done."""
        if now < self.ack_at:
            return "submitted"
        if now < self.done_at:
            return "processing"
        return "error" if self.failed else "complete"

    def products(self) -> list[ProductState]:
        """The per-product states, unpacked."""
        names = self.request.products
        return unpack_products(names, self.packed, self.request.created_at)

    def last_modified_at(self, now: float) -> float:
        """The time of the latest product event at or before ``now``."""
        if now >= self.done_at:
            return self.done_at
        if now < self.ack_at:
            return self.request.created_at
        events = [self.request.created_at]
        for state in self.products():
            events.extend(t for t in (state.ack_at, state.done_at) if t <= now)
        return max(events)


def summarize(states: list[ProductState]) -> tuple[float, float, bool]:
    """(first ack, last done, whether any product failed) of a job's product states."""
    return (
        min(s.ack_at for s in states),
        max(s.done_at for s in states),
        any(s.outcome in ERROR_OUTCOMES for s in states),
    )


def pack_products(outcomes: list[int], acks_ms: list[int], dones_ms: list[int]) -> bytes:
    """Outcome indexes plus ack/done delays (milliseconds after creation) as compact bytes."""
    n = len(outcomes)
    return struct.pack(f"<{n}B{n}I{n}I", *outcomes, *acks_ms, *dones_ms)


def unpack_products(names: tuple[str, ...], packed: bytes, created_at: float) -> list[ProductState]:
    """The inverse of :func:`pack_products`, with delays turned into absolute times."""
    n = len(names)
    values = struct.unpack(f"<{n}B{n}I{n}I", packed)
    return [
        ProductState(
            names[i],
            values[i],
            created_at + values[n + i] / 1000,
            created_at + values[2 * n + i] / 1000,
        )
        for i in range(n)
    ]


@dataclass(slots=True)
class _Index:
    jobs: list[Job] = field(default_factory=list)
    times: array[float] = field(default_factory=lambda: array("d"))


class JobStore:
    """All jobs: by id, and per (org, regulation) in creation order for windowed listing."""

    def __init__(self) -> None:
        self._by_id: dict[str, Job] = {}
        self._indexes: dict[tuple[str, str], _Index] = {}
        self._per_day: dict[tuple[str, int], int] = {}
        self.next_seq = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, job: Job) -> None:
        """Store ``job``; jobs must arrive in non-decreasing creation time."""
        req = job.request
        index = self._indexes.setdefault((req.org_id, req.regulation), _Index())
        index.jobs.append(job)
        index.times.append(req.created_at)
        self._by_id[job.job_id] = job
        day_key = (req.org_id, int(req.created_at // 86400))
        self._per_day[day_key] = self._per_day.get(day_key, 0) + 1
        self.next_seq = max(self.next_seq, job.seq + 1)

    def get(self, job_id: str) -> Job | None:
        """The job with this id, if any."""
        return self._by_id.get(job_id)

    def jobs_on_day(self, org_id: str, day: int) -> int:
        """How many jobs ``org_id`` created on UTC day number ``day``."""
        return self._per_day.get((org_id, day), 0)

    def window(
        self, org_id: str, regulation: str, start: float, end: float
    ) -> tuple[list[Job], int, int]:
        """Jobs of (org, regulation) created in ``[start, end)``: ``jobs[lo:hi]``, oldest first.

        The list is the live index (not a copy), so callers slice only what they need.
        """
        index = self._indexes.get((org_id, regulation))
        if index is None:
            return [], 0, 0
        lo = bisect_left(index.times, start)
        hi = bisect_left(index.times, end)
        return index.jobs, lo, hi

    def position(self, org_id: str, regulation: str, at: float) -> int:
        """How many jobs of (org, regulation) were created before ``at``."""
        index = self._indexes.get((org_id, regulation))
        return 0 if index is None else bisect_left(index.times, at)

    def __iter__(self) -> Iterator[Job]:
        return iter(self._by_id.values())
