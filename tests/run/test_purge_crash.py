"""A purge SIGKILLed at each of its steps, then run again, ends as an uninterrupted purge does.

The kill is placed by observed state, not by the clock: the child runs with
``DSAR_TEST_PURGE_PAUSE_AT=<step>``, says on stderr that it stopped there, and is killed then.
After each kill the journal must open (never half-scrubbed and unreadable); the purge run
again must leave no identity byte, no temporary copy, the same purge records as a purge never
interrupted, and a run that verifies.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.journal.schema import JOURNAL_FILE, connect
from pipeline.run.purge import PAUSE_ENV, STEPS
from tests.helpers.purge import finished_run, identity_hits
from tests.helpers.run import run_cli

KEPT = ("subject_key", "user_key", "job_id", "status", "result_path", "result_sha256")


def _kill_at(run_dir: Path, step: str) -> None:
    """Start ``dsar purge RUN_DIR`` in a child, SIGKILL it once it says it stopped at ``step``."""
    env = {**os.environ, PAUSE_ENV: step}
    with subprocess.Popen(
        [sys.executable, "-m", "pipeline", "purge", str(run_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                if f"paused at {step}" in line:
                    break
            else:
                pytest.fail(f"the purge ended (exit {proc.wait()}) before step {step}")
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _evidence(run_dir: Path) -> tuple[Any, Any]:
    """What a purge leaves that must not depend on where it was killed."""
    purges = json.loads((run_dir / "manifest.json").read_text())["purges"]
    files = [
        (p["what"], sorted((f["path"], f["sha256"], f["bytes"]) for f in p["files"]))
        for p in purges
    ]
    status = pq.read_table(run_dir / "status.parquet", columns=list(KEPT)).to_pylist()
    return files, status


@pytest.mark.slow
def test_a_purge_killed_at_any_step_and_run_again_ends_the_same(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory()
    run_dir, values = finished_run(tmp_path, emu, monkeypatch, n=30)
    copies = {}
    for name in ("reference", *STEPS):
        copy = tmp_path / f"ws-{name}" / run_dir.name
        shutil.copytree(run_dir, copy)
        copies[name] = copy
    assert run_cli(["purge", str(copies["reference"])], {}, monkeypatch) == 0
    expected = _evidence(copies["reference"])
    assert [what for what, _ in expected[0]] == ["results", "identities"]

    for step in STEPS:
        copy = copies[step]
        _kill_at(copy, step)
        if step == "copied":  # killed with the new journal written beside the old one
            assert list(copy.glob(".journal.sqlite.purge.*.tmp")), step
        conn = connect(copy / JOURNAL_FILE)  # the journal opens, whichever file it is
        try:
            assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok", step
            assert conn.execute("SELECT count(*) FROM user").fetchone()[0] > 0, step
        finally:
            conn.close()
        assert run_cli(["purge", str(copy)], {}, monkeypatch) == 0, step
        assert identity_hits(copy.parent, values) == {}, step
        assert [p.name for p in copy.glob(".journal.sqlite.*")] == [], step
        assert _evidence(copy) == expected, step
        assert run_cli(["verify", str(copy)], {}, monkeypatch) == 0, step
