"""Spill files of pass 1: valid identity cells, hash-partitioned by subject key.

All cells of one subject key land in the same partition, whatever their place in the input, so
pass 2 can merge subjects one partition at a time in bounded memory. Partitions are Arrow IPC
stream files in a :class:`SpillFolder`, removed when the plan closes.

A spill folder holds identity values, so it must not outlive its planning, not even a SIGKILL:
its owner holds an ``flock`` on it while it lives, and :func:`sweep_spill_folders` (called
before every planning and every resume) removes the folders whose lock is free, that is whose
owner died. The folder is made under a hidden staging name and renamed once locked, so a sweep
never sees a live folder unlocked; a staging folder is swept once the pid in its name is dead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

SPILL_PREFIX = "dsar-plan-"
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


class SpillFolder:
    """A private (0700) folder ``ROOT/dsar-plan-<pid>-<random>``, locked while it is in use.

    :meth:`create` makes and locks it; :meth:`remove` deletes it and releases the lock (the
    kernel releases the lock of a killed owner, which is how a sweep knows it is dead), and
    can remove ``ROOT`` too once it is empty.
    """

    def __init__(self, path: Path, fd: int, *, own_root: bool) -> None:
        self.path = path
        self._fd: int | None = fd
        self._own_root = own_root

    @classmethod
    def create(cls, root: Path, *, own_root: bool = False) -> SpillFolder:
        """Make and lock a new spill folder under ``root`` (created 0700 if absent). With
        ``own_root`` (a folder for spill folders only), :meth:`remove` removes an empty root."""
        for _ in range(3):  # another planning may remove an empty root in between
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                stage = Path(tempfile.mkdtemp(prefix=f".{SPILL_PREFIX}{os.getpid()}-", dir=root))
                break
            except FileNotFoundError:
                continue
        else:
            raise FileNotFoundError(f"{root}: removed while a spill folder was made in it")
        fd = os.open(stage, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path = stage.with_name(stage.name[1:])
            stage.rename(path)
        except BaseException:
            os.close(fd)
            shutil.rmtree(stage, ignore_errors=True)
            raise
        return cls(path, fd, own_root=own_root)

    def remove(self) -> None:
        """Delete the folder and its files, then release the lock (idempotent)."""
        if self._fd is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)
        self._fd = None
        if self._own_root:
            with contextlib.suppress(OSError):  # not empty: another planning uses it
                self.path.parent.rmdir()


def sweep_spill_folders(root: Path, *, own_root: bool = False) -> int:
    """Remove the spill folders under ``root`` whose owner is dead; returns how many.

    A folder whose lock another process (or another planning of this one) holds is kept.
    Legacy or foreign names (without the owner's pid) are left alone. With ``own_root``, an
    empty ``root`` is removed too.
    """
    removed = 0
    try:
        entries = list(root.iterdir())
    except OSError:
        return 0
    for entry in entries:
        name = entry.name
        if name.startswith(SPILL_PREFIX):
            dead = _unlocked(entry)
        elif name.startswith(f".{SPILL_PREFIX}"):
            dead = not pid_alive(_owner_pid(name[len(SPILL_PREFIX) + 1 :]))
        else:
            continue
        if dead:
            shutil.rmtree(entry, ignore_errors=True)
            removed += not entry.exists()
    if own_root:
        with contextlib.suppress(OSError):
            root.rmdir()
    return removed


def _owner_pid(rest: str) -> int:
    head, sep, _ = rest.partition("-")
    return int(head) if sep and head.isdigit() else 0


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (pid 0, unknown, counts as alive: keep its folder)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _unlocked(folder: Path) -> bool:
    """Whether nobody holds the lock of ``folder`` (its owner died); False if unsure."""
    if not _owner_pid(folder.name[len(SPILL_PREFIX) :]):
        return False  # not named by this dsar: a legacy folder of a running older version
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return False
    else:
        return True
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
