"""What killed dsar processes leave behind is removed at the next start of a run.

Spill folders hold identity values: each lives in ``WORKSPACE/.spill`` (0700), locked by its
owner, and the next run of the workspace removes those whose owner is dead, keeping live ones.
Temporary files carry their writer's pid and go the same way. A run directory whose planning
a live process is doing is not taken over.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.files import sha256_file
from pipeline.input.spill import SPILL_PREFIX, SpillFolder, sweep_spill_folders
from pipeline.journal.models import RunIntent
from pipeline.journal.store import Journal
from pipeline.run.leftovers import spill_root
from pipeline.run.runner import settings_snapshot
from pipeline.settings import load_settings
from tests.helpers.run import run_cli, write_config, write_subjects

REPO = Path(__file__).resolve().parents[2]
NO_PRODUCT_ERRORS = {"product_error_rate": 0.0}  # a clean run exits 0
_HOLD_A_SPILL_FOLDER = """
import sys
from pathlib import Path
from pipeline.input.spill import SpillFolder
folder = SpillFolder.create(Path(sys.argv[1]), own_root=True)
(folder.path / "part-00000.arrows").write_bytes(b"identities")
print(folder.path, flush=True)
sys.stdin.read()
"""
_BEGIN_PLANNING = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from pipeline.journal.store import Journal
with Journal.open(Path(sys.argv[1])) as journal:
    journal.begin_planning(
        run_id="r-live", input_path=sys.argv[2], input_sha256="0" * 64, settings={},
        at=datetime.now(UTC),
    )
print("planning", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def live_process() -> Iterator[subprocess.Popen[bytes]]:
    """A process that lives until the test ends (it waits on its stdin)."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(10)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    return proc.pid


def _killed_owner_of_a_spill_folder(root: Path) -> Path:
    """A spill folder whose owner was SIGKILLed while holding it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD_A_SPILL_FOLDER, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    path = Path(proc.stdout.readline().decode().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdin.close()
    proc.stdout.close()
    return path


def _run(tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, name: str) -> int:
    """A small run ``name`` in ``tmp_path/ws``, on an emulator that fails no product."""
    emu = emulator_factory(simulation=NO_PRODUCT_ERRORS)
    write_subjects(tmp_path / f"{name}.csv", 20)
    cfg = write_config(tmp_path / "c.toml")
    argv = ["run", str(tmp_path / f"{name}.csv"), "--config", str(cfg)]
    argv += ["--workspace", str(tmp_path / "ws"), "--run-dir", str(tmp_path / "ws" / name)]
    return run_cli(argv, emu.env, monkeypatch)


def test_a_spill_folder_is_private_named_by_its_owner_and_kept_while_it_lives(
    tmp_path: Path,
) -> None:
    root = tmp_path / "ws" / ".spill"
    folder = SpillFolder.create(root, own_root=True)
    assert folder.path.name.startswith(f"{SPILL_PREFIX}{os.getpid()}-")
    assert stat.S_IMODE(folder.path.stat().st_mode) == 0o700
    assert sweep_spill_folders(root) == 0, "a live planning's folder was swept"
    assert folder.path.is_dir()
    folder.remove()
    assert not root.exists(), "an empty spill root is left behind"


def test_the_next_run_of_the_workspace_removes_the_spill_folder_of_a_killed_planning(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = spill_root(tmp_path / "ws")
    dead = _killed_owner_of_a_spill_folder(root)
    assert (dead / "part-00000.arrows").exists(), "the kill should leave the folder"
    staged = root / f".{SPILL_PREFIX}{_dead_pid()}-abcdefgh"  # killed between mkdir and lock
    staged.mkdir()
    live = SpillFolder.create(root, own_root=True)  # another planning, still running
    try:
        assert _run(tmp_path, emulator_factory, monkeypatch, "next") == 0
        assert not dead.exists()
        assert not staged.exists()
        assert live.path.is_dir(), "a live planning's spill folder was removed"
    finally:
        live.remove()
    assert not root.exists()


def test_temporary_files_of_dead_writers_are_removed_and_a_live_writers_kept(
    tmp_path: Path,
    emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    live_process: subprocess.Popen[bytes],
) -> None:
    old = tmp_path / "ws" / "old"
    old.mkdir(parents=True)
    dead_pid = _dead_pid()
    dead = [old / f".rejects.parquet.{dead_pid}.tmp", old / f".status.parquet.{dead_pid}.tmp"]
    kept = [old / f".summary.json.{live_process.pid}.tmp", old / "notes.tmp"]
    for path in dead + kept:
        path.write_bytes(b"half-written")
    assert _run(tmp_path, emulator_factory, monkeypatch, "next") == 0
    assert [p for p in dead if p.exists()] == []
    assert [p for p in kept if p.exists()] == kept


def _begin_planning(run_dir: Path, input_path: Path) -> None:
    """The record a planning makes first (with the sha256 of another file)."""
    with Journal.open(run_dir) as journal:
        journal.begin_planning(
            run_id="r-interrupted",
            input_path=str(input_path),
            input_sha256="0" * 64,
            settings={},
            at=datetime.now(UTC),
        )


@pytest.fixture
def live_planner(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A process that has begun planning ``tmp_path/ws/busy`` and is still at it."""
    run_dir = tmp_path / "ws" / "busy"
    write_subjects(tmp_path / "in.csv", 5)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _BEGIN_PLANNING, str(run_dir), str(tmp_path / "in.csv")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    assert proc.stdout.readline() == b"planning\n"
    yield proc, run_dir
    proc.stdin.close()
    proc.stdout.close()
    proc.wait(10)


def test_a_run_dir_that_a_live_process_is_planning_is_not_taken_over(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: Any,
    live_planner: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, run_dir = live_planner
    argv = ["run", str(tmp_path / "in.csv"), "--workspace", str(tmp_path / "ws")]
    assert run_cli([*argv, "--run-dir", str(run_dir)], {}, monkeypatch) == 2
    assert run_cli(["resume", str(run_dir)], {}, monkeypatch) == 2
    err = capfd.readouterr().err
    assert f"is being planned by process {proc.pid}" in err
    with Journal.open(run_dir) as journal:
        assert journal.planning() is not None
        assert not journal.has_plan


def test_resuming_a_killed_planning_whose_input_changed_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: Any
) -> None:
    write_subjects(tmp_path / "in.csv", 5)
    run_dir = tmp_path / "ws" / "changed"
    _begin_planning(run_dir, tmp_path / "in.csv")  # by this process: not a live other planner
    assert run_cli(["resume", str(run_dir)], {}, monkeypatch) == 3
    assert "changed since the run started" in capfd.readouterr().err


def test_a_run_killed_before_its_planning_was_recorded_is_started_again_by_run(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capfd: Any
) -> None:
    """The journal exists but holds neither plan nor planning record: ``dsar resume`` cannot
    know the input and says how to start again; ``dsar run --run-dir`` does."""
    run_dir = tmp_path / "ws" / "early"
    Journal.open(run_dir).close()
    assert run_cli(["resume", str(run_dir)], {}, monkeypatch) == 2
    assert f"`dsar run INPUT --run-dir {run_dir}`" in capfd.readouterr().err
    assert _run(tmp_path, emulator_factory, monkeypatch, "early") == 0
    with Journal.open(run_dir) as journal:
        assert journal.has_plan


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_planning_killed_before_anyone_was_asked_plans_again_as_a_preview_only(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, dry_run: bool
) -> None:
    """A dry run killed while planning, or a run against a real service killed before its
    confirmation, is planned again by ``resume --all`` as a preview: 0 POSTs until
    ``dsar submit`` (the explicit act) submits it."""
    emu = emulator_factory(simulation=NO_PRODUCT_ERRORS)
    write_subjects(tmp_path / "in.csv", 12)
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    settings = load_settings(cfg, env=emu.env, overrides={"output": {"workspace": str(ws)}})
    run_dir = ws / "killed"
    with Journal.open(run_dir) as journal:  # by this process: not a live other planner
        journal.begin_planning(
            run_id="r-killed",
            input_path=str(tmp_path / "in.csv"),
            input_sha256=sha256_file(tmp_path / "in.csv"),
            settings=settings_snapshot(settings),
            at=datetime.now(UTC),
            dry_run=dry_run,
        )
    assert run_cli(["resume", "--all", str(ws)], emu.env, monkeypatch) == 4
    assert emu.stats()["jobs_created"] == 0
    with Journal.open(run_dir) as journal:
        assert journal.has_plan
        assert journal.run_info().intent == RunIntent.PREVIEW
    assert run_cli(["resume", "--all", str(ws)], emu.env, monkeypatch) == 0  # skipped
    assert emu.stats()["jobs_created"] == 0
    with Journal.open(run_dir) as journal:
        planned = sum(journal.counts().jobs.values())
    assert run_cli(["submit", str(run_dir), "--yes"], emu.env, monkeypatch) == 0
    assert emu.stats()["jobs_created"] == planned > 0
