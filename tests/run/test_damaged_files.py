"""Damaged run files: each command says which file and what to do, in one line, with its code.

One real run (against the emulator, on its own thread) is made once per module; every test
copies it, damages one file the way a disk, a person or a tool would, and runs a command on
the copy through the real CLI. The contract (README "Damaged run files"):

- a report file that cannot be read (status.parquet cut short or altered): status, report and
  export exit 3 naming it and `dsar resume RUN_DIR`, which rewrites it; verify exits 1;
- journal.sqlite that is not SQLite, or cut short: status, resume and retry exit 6 naming it;
  report and export still work (they read the reports only); verify exits 1;
- rejects.parquet cut short (written once, at planning): status, report and resume exit 3
  saying to restore it from a backup;
- a result ZIP removed: status and report exit 3 naming it and `dsar jobs download`, and report
  leaves manifest.json as it was; verify exits 1; resume warns; export works.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.cli.main import main
from pipeline.emulator import EmulatorServer
from tests.helpers.run import emulator_config, env_for, write_config, write_subjects
from tests.privacy import scan as privacy


@dataclass(frozen=True)
class FinishedRun:
    """A finished run directory with result ZIPs, and the identity values it was made from."""

    run_dir: Path
    identities: tuple[str, ...]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    root = tmp_path_factory.mktemp("finished")
    identities = write_subjects(root / "in.csv", 12, actions=("access",))
    cfg = write_config(root / "c.toml")
    server = EmulatorServer(emulator_config(simulation={"product_error_rate": 0.0})).start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env_for(server).items():
                mp.setenv(key, value)
            argv = ["run", str(root / "in.csv"), "--config", str(cfg), "--yes"]
            argv += ["--workspace", str(root / "ws")]  # its own registry: nothing to skip
            assert main([*argv, "--run-dir", str(root / "run")]) == 0
    finally:
        server.stop()
    assert list((root / "run" / "results").glob("*.zip"))
    return FinishedRun(root / "run", tuple(identities))


@pytest.fixture
def run_copy(finished_run: FinishedRun, tmp_path: Path) -> Path:
    """A private copy of the finished run (the privacy scan knows its identity values)."""
    privacy.register(finished_run.identities)
    dest = tmp_path / "run"
    shutil.copytree(finished_run.run_dir, dest)
    return dest


def _cut_status(run: Path) -> str:
    path = run / "status.parquet"
    path.write_bytes(path.read_bytes()[:300])
    return "status.parquet"


def _alter_status(run: Path) -> str:
    """Flip bytes inside the Parquet footer (the file keeps its length and magic bytes)."""
    path = run / "status.parquet"
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - footer + 8
    data[start : start + 48] = bytes(b ^ 0xFF for b in data[start : start + 48])
    path.write_bytes(bytes(data))
    return "status.parquet"


def _journal_not_sqlite(run: Path) -> str:
    for extra in run.glob("journal.sqlite-*"):
        extra.unlink()
    (run / "journal.sqlite").write_bytes(b"this is not a database\n" * 40)
    return "journal.sqlite"


def _journal_cut(run: Path) -> str:
    for extra in run.glob("journal.sqlite-*"):
        extra.unlink()
    path = run / "journal.sqlite"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3 + 100])
    return "journal.sqlite"


def _cut_rejects(run: Path) -> str:
    path = run / "rejects.parquet"
    path.write_bytes(path.read_bytes()[:-20])
    return "rejects.parquet"


def _summary_not_json(run: Path) -> str:
    (run / "summary.json").write_text('{"run_id": "cut sh', encoding="utf-8")
    return "summary.json"


def _zip_removed(run: Path) -> str:
    first = sorted((run / "results").glob("*.zip"))[0]
    first.unlink()
    return f"results/{first.name}"


Damage = Callable[[Path], str]
DAMAGES: dict[str, Damage] = {
    "status.parquet cut short": _cut_status,
    "status.parquet altered": _alter_status,
    "journal.sqlite not SQLite": _journal_not_sqlite,
    "journal.sqlite cut short": _journal_cut,
    "result ZIP removed": _zip_removed,
    "rejects.parquet cut short": _cut_rejects,
    "summary.json not JSON": _summary_not_json,
}

# (damage, command) -> (exit code, what the one line says to do; None: the command works)
EXPECTED: dict[tuple[str, str], tuple[int, str | None]] = {}
for _name in ("status.parquet cut short", "status.parquet altered"):
    EXPECTED |= {
        (_name, "status"): (3, "dsar resume"),
        (_name, "report"): (3, "dsar resume"),
        (_name, "export"): (3, "dsar resume"),
    }
for _name in ("journal.sqlite not SQLite", "journal.sqlite cut short"):
    EXPECTED |= {
        (_name, "status"): (6, "restore it from a backup"),
        (_name, "resume"): (6, "restore it from a backup"),
        (_name, "retry"): (6, "restore it from a backup"),
        (_name, "report"): (0, None),
        (_name, "export"): (0, None),
    }
EXPECTED |= {
    ("rejects.parquet cut short", "status"): (3, "restore it from a backup"),
    ("rejects.parquet cut short", "report"): (3, "restore it from a backup"),
    ("rejects.parquet cut short", "resume"): (3, "restore it from a backup"),
    ("rejects.parquet cut short", "export"): (0, None),
    ("summary.json not JSON", "status"): (3, "dsar resume"),
    ("summary.json not JSON", "report"): (3, "dsar resume"),
    ("result ZIP removed", "status"): (3, "dsar jobs download"),
    ("result ZIP removed", "report"): (3, "dsar jobs download"),
    ("result ZIP removed", "export"): (0, None),
}


def _dsar(command: str, run: Path, capsys: Any) -> tuple[int, str, str]:
    argv = [command, str(run)]
    if command == "export":
        argv += ["--out", str(run.parent / "status.csv")]
    code = main(argv)
    out, err = capsys.readouterr()
    for bad in ("Traceback", "internal error"):
        assert bad not in out + err
    return code, out, err


@pytest.mark.parametrize(
    ("damage", "command"), list(EXPECTED), ids=[" / ".join(k) for k in EXPECTED]
)
def test_a_command_on_a_damaged_run_says_which_file_and_what_to_do(
    run_copy: Path, capsys: Any, damage: str, command: str
) -> None:
    name = DAMAGES[damage](run_copy)
    manifest = (run_copy / "manifest.json").read_bytes()
    code, _, err = _dsar(command, run_copy, capsys)
    expected_code, remedy = EXPECTED[(damage, command)]
    assert code == expected_code, err
    lines = [line for line in err.splitlines() if line.startswith("dsar: ")]
    if remedy is None:
        assert lines == []
        return
    assert len(lines) == 1, err
    assert f"{name} is damaged" in lines[0]
    assert remedy in lines[0]
    assert (run_copy / "manifest.json").read_bytes() == manifest, "the evidence was rewritten"


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_verify_names_every_damaged_file_and_exits_1(
    run_copy: Path, capsys: Any, damage: str
) -> None:
    name = DAMAGES[damage](run_copy)
    code, out, _ = _dsar("verify", run_copy, capsys)
    assert code == 1
    named = [line for line in out.splitlines() if name in line]
    assert len(named) == 1, out
    assert "restore it" in named[0] or "dsar resume" in named[0] or "jobs download" in named[0]


@pytest.mark.parametrize(
    "damage", ["status.parquet cut short", "status.parquet altered", "summary.json not JSON"]
)
def test_resume_rewrites_a_damaged_report_and_says_so(
    run_copy: Path, capsys: Any, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    name = DAMAGES[damage](run_copy)
    code, _, err = _dsar("resume", run_copy, capsys)
    assert code == 0
    said = err + caplog.text
    assert f"{name} is damaged" in said
    assert "rewriting it from the journal" in said
    assert pq.read_table(run_copy / "status.parquet").num_rows > 0
    assert _dsar("verify", run_copy, capsys)[0] == 0


def test_resume_names_a_lost_result_and_verify_still_finds_it(
    run_copy: Path, capsys: Any, caplog: pytest.LogCaptureFixture
) -> None:
    name = _zip_removed(run_copy)
    code, _, err = _dsar("resume", run_copy, capsys)
    assert code == 0  # every job is complete; the lost file is said, not hidden
    assert f"{name} is damaged" in err + caplog.text
    assert "dsar jobs download" in err + caplog.text
    code, out, _ = _dsar("verify", run_copy, capsys)  # the rewritten manifest lacks it ...
    assert code == 1  # ... but status.parquet still names it
    assert name in out


def test_resume_all_skips_a_run_whose_journal_is_damaged_and_drives_the_others(
    run_copy: Path,
    tmp_path: Path,
    emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """One damaged journal in a workspace is named in one line and ends the command with
    exit 6; the other runs of the workspace are still advanced."""
    ws = run_copy.parent
    _journal_not_sqlite(run_copy)
    emu = emulator_factory(simulation={"product_error_rate": 0.0})
    for key, value in emu.env.items():
        monkeypatch.setenv(key, value)
    write_subjects(tmp_path / "more.csv", 5, actions=("delete",))
    cfg = write_config(tmp_path / "more.toml")
    argv = ["run", str(tmp_path / "more.csv"), "--config", str(cfg), "--yes", "--no-wait"]
    assert main([*argv, "--workspace", str(ws), "--run-dir", str(ws / "other")]) == 4
    capsys.readouterr()
    assert main(["resume", "--all", str(ws)]) == 6
    err = capsys.readouterr().err
    assert f"{run_copy.name}: skipped, {run_copy / 'journal.sqlite'} is damaged" in err
    assert "Traceback" not in err
    summary = json.loads((ws / "other" / "summary.json").read_text())
    assert summary["state"] == "finished"
