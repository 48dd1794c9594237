"""Spill files of pass 1: valid identity cells, hash-partitioned by subject key.

All cells of one subject key land in the same partition, whatever their place in the input, so
pass 2 can merge subjects one partition at a time in bounded memory. Partitions are Arrow IPC
stream files in a private temporary directory, removed when the plan closes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

_MIX = np.uint64(0x9E3779B97F4A7C15)
_LANES = np.arange(8, dtype=np.int64)
_SHIFTS = (np.arange(8, dtype=np.uint64) * np.uint64(8)).astype(np.uint64)


def _word(data: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """The (up to) 8 bytes of ``data`` from ``start`` (exclusive of ``stop``) as one uint64."""
    index = start[:, None] + _LANES
    inside = index < stop[:, None]
    padded = np.append(data, np.uint8(0))  # index len(data) reads a zero
    raw = padded[np.where(inside, index, len(data))].astype(np.uint64)
    word: np.ndarray = (raw << _SHIFTS).sum(axis=1, dtype=np.uint64)
    return word


def bucket_of(values: pa.Array, buckets: int) -> np.ndarray:
    """A stable bucket in ``range(buckets)`` for each string of ``values``.

    Mixes the length with the first and the last 8 bytes: cheap (no pass over every byte) and
    spread well enough for keys that differ anywhere in their first or last 8 bytes.
    """
    values = values.cast(pa.string())
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)
    offsets = offsets[values.offset : values.offset + n + 1].astype(np.int64)
    raw = values.buffers()[2]
    data = np.frombuffer(raw, dtype=np.uint8) if raw is not None else np.zeros(0, np.uint8)
    start, stop = offsets[:-1], offsets[1:]
    head = _word(data, start, stop)
    tail = _word(data, np.maximum(stop - 8, start), stop)
    with np.errstate(over="ignore"):
        digest = (head * _MIX) ^ (tail + (stop - start).astype(np.uint64))
        digest *= _MIX
        digest ^= digest >> np.uint64(29)
        digest *= _MIX
        digest ^= digest >> np.uint64(32)
    bucket: np.ndarray = (digest % np.uint64(buckets)).astype(np.int64)
    return bucket


def split_by_bucket(cells: pa.Table, buckets: int) -> list[tuple[int, pa.Table]]:
    """``cells`` cut into (bucket, cells of that bucket), input order kept inside a bucket."""
    if cells.num_rows == 0:
        return []
    if buckets == 1:
        return [(0, cells)]
    bucket = bucket_of(cells.column("key").combine_chunks(), buckets).astype(np.uint16)
    order = np.argsort(bucket, kind="stable")  # a radix sort for 16-bit keys
    ordered = cells.take(pa.array(order))
    counts = np.bincount(bucket, minlength=buckets)
    parts: list[tuple[int, pa.Table]] = []
    start = 0
    for index, count in enumerate(counts):
        if count:
            parts.append((index, ordered.slice(start, int(count))))
        start += int(count)
    return parts


class SpillWriter:
    """Appends cells to ``count`` partition files under ``directory``."""

    def __init__(self, directory: Path, count: int, schema: pa.Schema) -> None:
        self.paths = [directory / f"part-{i:05d}.arrows" for i in range(count)]
        self._writers = [pa.ipc.new_stream(str(p), schema) for p in self.paths]

    def write(self, parts: list[tuple[int, pa.Table]]) -> None:
        """Append each (bucket, cells) to its partition."""
        for bucket, cells in parts:
            self._writers[bucket].write_table(cells)

    def close(self) -> None:
        """Finish every partition file."""
        for writer in self._writers:
            writer.close()


def read_partition(path: Path) -> pa.Table:
    """All cells of one partition."""
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_stream(source).read_all()
