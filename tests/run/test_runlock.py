"""The lock files themselves: one holder, its line, readers that never take the lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import RunLocked
from pipeline.run import lock as runlock
from pipeline.run.lock import LOCK_FILE, hold_lock, lock_holder


@pytest.fixture(params=["proc-locks", "probe"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each test with /proc/locks, and once as on a system without it."""
    if request.param == "probe":
        monkeypatch.setattr(runlock, "PROC_LOCKS", Path("/nonexistent/locks"))
    return str(request.param)


def test_the_holder_writes_its_pid_and_start_time_in_a_private_file(
    tmp_path: Path, reader: str
) -> None:
    assert lock_holder(tmp_path) is None  # no lock file: nobody
    with hold_lock(tmp_path, "run r") as me:
        assert me.pid == os.getpid()
        assert (tmp_path / LOCK_FILE).read_text() == f"pid={me.pid} since={me.since}\n"
        assert (tmp_path / LOCK_FILE).stat().st_mode & 0o777 == 0o600
        assert lock_holder(tmp_path) == me
        with pytest.raises(RunLocked) as exc, hold_lock(tmp_path, "run r"):
            pass
        assert exc.value.exit_code == 7
        assert str(exc.value) == (
            f"run r is being driven by pid {me.pid} since {me.since}; try again when it ends"
        )
    assert lock_holder(tmp_path) is None
    assert (tmp_path / LOCK_FILE).exists()  # never removed: see the module docstring


def test_a_reader_never_blocks_a_driver_that_starts(tmp_path: Path) -> None:
    with hold_lock(tmp_path, "run r"):
        pass
    # /proc/locks is read, the lock is not taken: a driver can start while status runs
    (tmp_path / LOCK_FILE).touch()
    for _ in range(50):
        assert lock_holder(tmp_path) is None
        with hold_lock(tmp_path, "run r"):
            assert lock_holder(tmp_path) is not None


def test_a_holder_without_its_line_is_named_from_proc_locks_or_not_at_all(
    tmp_path: Path, reader: str
) -> None:
    (tmp_path / LOCK_FILE).write_text("garbage\n")
    with hold_lock(tmp_path, "run r") as me:
        assert lock_holder(tmp_path) == me  # the holder's line replaced the garbage
    code = (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR);"
        " fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()"
    )
    (tmp_path / LOCK_FILE).write_text("pid=x since=\n")  # garbled, or a dead holder's
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / LOCK_FILE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "held\n"  # the child holds it, and wrote no line
        # /proc/locks names the child, though its line is garbled; a probe cannot say who
        who = f"pid {child.pid}" if reader == "proc-locks" else "another dsar process"
        with pytest.raises(RunLocked, match=f"by {who}; try again"), hold_lock(tmp_path, "r"):
            pass
        holder = lock_holder(tmp_path)
        assert holder is not None
        expected = child.pid if reader == "proc-locks" else None
        assert (holder.pid, holder.since) == (expected, None)
    finally:
        child.kill()
        child.wait(30)
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()
    with hold_lock(tmp_path, "run r"):  # its lock died with it
        pass
