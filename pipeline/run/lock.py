"""One driver per run, one ``resume --all`` per workspace: exclusive locks on ``.lock`` files.

A driver (``run``, ``submit``, ``resume``, ``retry``, ``cancel``'s journal write, and
``resume --all`` for its workspace) takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``RUN_DIR/.lock``
(or ``WORKSPACE/.lock``), a 0600 file, and holds it for its whole life. Once it holds the lock
it writes its pid and start time (UTC) into the file, so a second driver can say who holds it:
that one exits at once with :class:`~pipeline.errors.RunLocked` (exit 7).

The kernel drops the lock when its holder dies, however it dies (SIGKILL included): the next
driver takes it over and overwrites the holder's line. The file itself is never removed
(removing a lock file while another process waits on it would let two processes hold "the"
lock). Readers (``status``, ``report``, ``export``, ``verify``) take no lock; :func:`lock_holder`
tells them whether a driver is at work, on Linux from ``/proc/locks`` without touching the lock
(which also names the holder when its line is not written yet, or is a dead holder's).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..api.clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigError, RunLocked

LOCK_FILE = ".lock"
PROC_LOCKS = Path("/proc/locks")


@dataclass(frozen=True, kw_only=True)
class Holder:
    """Who holds a lock: a pid and the UTC time it took the lock (either may be unknown)."""

    pid: int | None
    since: str | None

    def describe(self) -> str:
        """``"pid 1234 since 2026-12-03T08:01:02Z"``."""
        who = f"pid {self.pid}" if self.pid else "another dsar process"
        return f"{who} since {self.since}" if self.since else who


@contextmanager
def hold_lock(directory: Path, what: str, *, clock: Clock = SYSTEM_CLOCK) -> Iterator[Holder]:
    """Hold the exclusive lock of ``directory`` for the block; yields this process's line.

    ``what`` names the locked thing in the error (``"run 2026...-ab12cd"``). Raises
    :class:`RunLocked` at once if another process holds it, :class:`ConfigError` if the
    directory cannot hold a lock file.
    """
    path = directory / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"{directory}: cannot create the lock file ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd, _proc_pids(os.fstat(fd)))
            raise RunLocked(what, holder.pid, holder.since) from None
        me = Holder(pid=os.getpid(), since=f"{clock.utc_now():%Y-%m-%dT%H:%M:%SZ}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid={me.pid} since={me.since}\n".encode(), 0)
        yield me
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


def lock_holder(directory: Path) -> Holder | None:
    """The holder of ``directory``'s lock, or None when no process holds it.

    On Linux it reads ``/proc/locks`` and never touches the lock (a reader that took it, even
    for an instant, could make a driver starting at that very instant exit as busy). Elsewhere
    it tries a shared lock and lets it go at once, which has that small window.
    """
    path = directory / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        pids = _proc_pids(os.fstat(fd))
        held = _held_per_probe(fd) if pids is None else bool(pids)
        return _holder(fd, pids) if held else None
    finally:
        os.close(fd)


def _holder(fd: int, pids: list[int] | None) -> Holder:
    """The lock file's line, unless ``/proc/locks`` names another pid: the holder may not have
    written its line yet, and the line may be a dead holder's (then the time is unknown)."""
    holder = _read_holder(fd)
    if pids and holder.pid not in pids:
        return Holder(pid=pids[0], since=None)
    return holder


def _read_holder(fd: int) -> Holder:
    """The ``pid=N since=T`` line of a lock file (fields left None when absent or garbled)."""
    text = os.pread(fd, 200, 0).decode("ascii", errors="replace")
    fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
    pid = fields.get("pid", "")
    return Holder(pid=int(pid) if pid.isdigit() else None, since=fields.get("since") or None)


def _proc_pids(st: os.stat_result) -> list[int] | None:
    """The pids ``/proc/locks`` lists as holding a flock on the file of ``st`` (empty: none);
    None when there is no ``/proc/locks`` to read."""
    try:
        text = PROC_LOCKS.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    pids = []
    for line in text.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF" (blocked waiters have "->")
        parts = line.split()
        if len(parts) < 6 or parts[1] != "FLOCK" or "->" in parts:
            continue
        dev_ino = parts[5].split(":")
        if len(dev_ino) != 3:
            continue
        try:
            dev_major, dev_minor, inode = int(dev_ino[0], 16), int(dev_ino[1], 16), int(dev_ino[2])
            pid = int(parts[4])
        except ValueError:
            continue
        if (dev_major, dev_minor, inode) == (major, minor, st.st_ino):
            pids.append(pid)
    return pids


def _held_per_probe(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False
