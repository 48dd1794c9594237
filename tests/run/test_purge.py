"""dsar purge: a finished run keeps no identity value and no result, and its evidence survives.

Runs go to the emulator on its virtual clock; the purge then works on the run directory alone.
Every byte under the workspace is searched for each identity value of the input (the journal,
its WAL, reports, results): the search finds them before the purge, so it can fail.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.run.lock import hold_lock
from tests.helpers.purge import finished_run, identity_hits, only_run
from tests.helpers.run import run_cli, write_config, write_subjects


def test_a_purged_run_holds_no_identity_value_and_still_verifies(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory()
    run_dir, values = finished_run(tmp_path, emu, monkeypatch)
    ws = run_dir.parent
    zips = sorted(p.name for p in (run_dir / "results").glob("*.zip"))
    before = identity_hits(ws, values)
    assert "journal.sqlite" in {Path(k).name for k in before}  # the search can find them
    assert any(k.startswith(f"{run_dir.name}/results/") for k in before)
    status_before = pq.read_table(run_dir / "status.parquet").to_pylist()

    assert run_cli(["purge", str(run_dir)], {}, monkeypatch) == 0
    out = capsys.readouterr().out
    assert f"{len(zips)} result files removed" in out
    assert identity_hits(ws, values) == {}
    assert not (run_dir / "journal.sqlite-wal").exists()  # the old WAL is gone with its bytes

    # the evidence: every removed file with its sha256 and size, the status rows kept
    manifest = json.loads((run_dir / "manifest.json").read_text())
    whats = [p["what"] for p in manifest["purges"]]
    assert whats == ["results", "identities"]
    listed = {f["path"]: f for f in manifest["purges"][0]["files"]}
    assert sorted(listed) == [f"results/{z}" for z in zips]
    status = pq.read_table(run_dir / "status.parquet").to_pylist()
    assert len(status) == len(status_before)
    for row, old in zip(status, status_before, strict=True):
        for key in ("subject_key", "user_key", "job_id", "status", "result_sha256"):
            assert row[key] == old[key]
        if old["result_path"]:
            assert listed[old["result_path"]]["sha256"] == old["result_sha256"]
            assert row["result_purged_at"] is not None

    assert run_cli(["verify", str(run_dir)], {}, monkeypatch) == 0
    assert f"{len(zips)} files removed by dsar purge" in capsys.readouterr().out
    report_html = (run_dir / "report.html").read_text()
    assert 'id="purges"' in report_html
    assert f">{len(zips):,}</td>" in report_html
    assert run_cli(["status", str(run_dir), "--json"], {}, monkeypatch) == 0
    status_json = json.loads(capsys.readouterr().out)
    assert [p["what"] for p in status_json["purges"]] == ["results", "identities"]
    assert status_json["damaged"] == []
    assert "dsar retry" not in status_json["next"]  # nothing to resubmit them with
    assert run_cli(["status", str(run_dir)], {}, monkeypatch) == 0
    assert "purged identities" in capsys.readouterr().out
    assert run_cli(["report", str(run_dir)], {}, monkeypatch) == 0
    out_csv = tmp_path / "status.csv"
    assert run_cli(["export", str(run_dir), "--out", str(out_csv)], {}, monkeypatch) == 0
    assert run_cli(["verify", str(run_dir)], {}, monkeypatch) == 0  # report kept the purges
    assert json.loads((run_dir / "manifest.json").read_text())["purges"] == manifest["purges"]

    # a kept report altered by one byte fails verification
    report = run_dir / "status.parquet"
    data = bytearray(report.read_bytes())
    data[len(data) // 2] ^= 0xFF
    report.write_bytes(bytes(data))
    capsys.readouterr()
    assert run_cli(["verify", str(run_dir)], {}, monkeypatch) == 1
    assert "status.parquet: changed" in capsys.readouterr().out


def test_purge_again_changes_nothing_and_records_nothing_twice(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory()
    run_dir, _ = finished_run(tmp_path, emu, monkeypatch, n=10)
    assert run_cli(["purge", str(run_dir), "--results"], {}, monkeypatch) == 0
    first = json.loads((run_dir / "manifest.json").read_text())["purges"]
    assert [p["what"] for p in first] == ["results"]
    assert run_cli(["purge", str(run_dir), "--results"], {}, monkeypatch) == 0
    assert run_cli(["purge", str(run_dir), "--identities"], {}, monkeypatch) == 0
    assert run_cli(["purge", str(run_dir), "--identities"], {}, monkeypatch) == 0
    purges = json.loads((run_dir / "manifest.json").read_text())["purges"]
    assert [p["what"] for p in purges] == ["results", "identities"]
    assert purges[0] == first[0]
    # a retry needs the identities: refused, saying why
    assert run_cli(["retry", str(run_dir)], {}, monkeypatch) == 2
    assert "identity values were purged" in capsys.readouterr().err


def test_an_unfinished_run_is_refused_unless_forced_and_then_cancelled(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory()
    values = write_subjects(tmp_path / "in.csv", 20)
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli([*argv, "--dry-run"], emu.env, monkeypatch) == 4
    run_dir = only_run(ws)
    capsys.readouterr()
    assert run_cli(["purge", str(run_dir)], {}, monkeypatch) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "not finished" in err[0]
    assert "--force" in err[0]
    assert identity_hits(run_dir, values)  # refused: nothing was touched

    assert run_cli(["purge", str(run_dir), "--force"], {}, monkeypatch) == 0
    assert "cancelled" in capsys.readouterr().out
    assert identity_hits(ws, values) == {}
    assert json.loads((run_dir / "summary.json").read_text())["counts"]["status"]["cancelled"]
    # nothing can be sent without the identities: submit and retry refuse
    assert run_cli(["submit", str(run_dir), "--yes"], emu.env, monkeypatch) == 2
    assert run_cli(["retry", str(run_dir)], emu.env, monkeypatch) == 2
    assert emu.stats()["jobs_created"] == 0


def test_a_run_driven_by_another_process_is_not_purged(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory()
    run_dir, values = finished_run(tmp_path, emu, monkeypatch, n=5)
    with hold_lock(run_dir, "run"):
        assert run_cli(["purge", str(run_dir)], {}, monkeypatch) == 7
    assert f"pid {os.getpid()}" in capsys.readouterr().err
    assert identity_hits(run_dir, values)


def test_purge_all_takes_the_finished_runs_older_than_asked(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory()
    run_dir, values = finished_run(tmp_path, emu, monkeypatch, n=8)
    ws = run_dir.parent
    (tmp_path / "in2.csv").write_text("subject_key,email,action\nK1,k1.person@example.org,access\n")
    cfg = tmp_path / "c.toml"
    argv = ["run", str(tmp_path / "in2.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli([*argv, "--no-wait"], emu.env, monkeypatch) == 4  # unfinished, left alone
    assert run_cli(["purge", "--all", str(ws), "--older-than", "30d"], {}, monkeypatch) == 0
    assert "0 runs purged" in capsys.readouterr().out
    assert identity_hits(run_dir, values)
    assert emu.clock is not None
    emu.clock.offset_s += 31 * 86_400  # a month later on the run's clock
    assert run_cli(["purge", "--all", str(ws), "--older-than", "30d"], emu.env, monkeypatch) == 0
    captured = capsys.readouterr()
    assert "1 runs purged" in captured.out
    assert "not finished" in captured.err
    assert identity_hits(run_dir, values) == {}
    assert identity_hits(ws, ["k1.person@example.org"])  # the unfinished run keeps its own


def test_retention_is_applied_by_resume_all_once_the_windows_have_passed(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory()
    run_dir, values = finished_run(tmp_path, emu, monkeypatch, n=12)
    ws = run_dir.parent
    cfg = write_config(
        tmp_path / "cron.toml", retention={"results_days": 30, "identities_days": 60}
    )
    cron = ["resume", "--all", str(ws), "--config", str(cfg)]
    assert run_cli(cron, emu.env, monkeypatch) == 0
    assert list((run_dir / "results").glob("*.zip"))
    assert emu.clock is not None
    emu.clock.offset_s += 31 * 86_400
    assert run_cli(cron, emu.env, monkeypatch) == 0
    assert "retention: purged" in capsys.readouterr().err
    assert not list((run_dir / "results").glob("*"))
    assert identity_hits(run_dir, values)  # the identities' window has not passed yet
    emu.clock.offset_s += 30 * 86_400
    assert run_cli(cron, emu.env, monkeypatch) == 0
    assert identity_hits(ws, values) == {}
    purges = json.loads((run_dir / "manifest.json").read_text())["purges"]
    assert [p["what"] for p in purges] == ["results", "identities"]
    assert run_cli(["verify", str(run_dir)], {}, monkeypatch) == 0


def test_purge_all_names_a_run_another_process_drives_and_exits_7(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory()
    run_dir, values = finished_run(tmp_path, emu, monkeypatch, n=5)
    capsys.readouterr()
    with hold_lock(run_dir, "run"):
        assert run_cli(["purge", "--all", str(run_dir.parent)], {}, monkeypatch) == 7
    assert f"{run_dir.name}: skipped" in capsys.readouterr().err
    assert identity_hits(run_dir, values)
    assert run_cli(["purge", "--all", str(run_dir.parent)], {}, monkeypatch) == 0
    assert identity_hits(run_dir, values) == {}
