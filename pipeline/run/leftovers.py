"""What a killed dsar process leaves behind, and its removal at the next start.

A SIGKILL skips every ``finally``: a planning leaves its spill folder (identity values) and the
half-written ``.rejects.parquet.<pid>.tmp``; a report pass leaves ``.<report>.<pid>.tmp``. Spill
folders of a run live in ``WORKSPACE/.spill`` (0700) and are locked by their owner
(:class:`pipeline.input.spill.SpillFolder`); temporary files carry their writer's pid. At the
start of every run and resume, :func:`sweep_workspace` removes the spill folders whose owner is
dead and, in each run directory of the workspace, the temporary files whose writer is dead."""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path

from ..input.spill import pid_alive, sweep_spill_folders

log = logging.getLogger("dsar.run")

SPILL_FOLDER = ".spill"
# ".status.parquet.1234.tmp", ".journal.sqlite.1234.5678.new": the writer's pid in the name
_TEMP_FILE = re.compile(r"^\..+\.(\d+)\.tmp$|^\.journal\.sqlite\.(\d+)\.\d+\.new$")
# written by versions that did not put the pid in the name: only a restart of the run removes it
_LEGACY_TEMP_FILES = (".rejects.parquet.tmp",)


def spill_root(workspace: Path) -> Path:
    """Where the runs of ``workspace`` spill while they plan."""
    return workspace / SPILL_FOLDER


def sweep_workspace(workspace: Path) -> None:
    """Remove the leftovers of dead processes in ``workspace``: spill folders, temp files."""
    folders = sweep_spill_folders(spill_root(workspace), own_root=True)
    files = 0
    with contextlib.suppress(OSError):
        for run_dir in workspace.iterdir():
            if run_dir.is_dir() and run_dir.name != SPILL_FOLDER:
                files += remove_dead_temp_files(run_dir)
        for partition in workspace.glob("dataset/*/run_id=*"):  # pipeline.run.recurring
            files += remove_dead_temp_files(partition)
        files += remove_dead_temp_files(workspace)  # the registry's blocking snapshot
    if folders or files:
        log.info("removed %d spill folder(s) and %d temporary file(s) of dead runs", folders, files)


def remove_dead_temp_files(run_dir: Path, *, legacy: bool = False) -> int:
    """Remove the temporary files of ``run_dir`` whose writer is dead; returns how many.

    With ``legacy`` (a restart of this run, whose old process is known dead), also the files
    whose name carries no pid.
    """
    removed = 0
    try:
        names = [p.name for p in run_dir.iterdir() if p.name.startswith(".")]
    except OSError:
        return 0
    for name in names:
        match = _TEMP_FILE.match(name)
        dead = match is not None and not pid_alive(int(match.group(1) or match.group(2)))
        if dead or (legacy and name in _LEGACY_TEMP_FILES):
            with contextlib.suppress(FileNotFoundError):
                (run_dir / name).unlink()
                removed += 1
    return removed
