"""dsar status, retry, resume (--no-wait, --max-runtime, --all), --dry-run and bad input."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.journal.ledger import Ledger
from tests.helpers.run import (
    assert_every_row_once,
    only_run,
    run_cli,
    write_config,
    write_subjects,
)


def test_no_wait_returns_after_submitting_and_resume_finishes(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory()
    write_subjects(tmp_path / "in.csv", 200)
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli([*argv, "--no-wait"], emu.env, monkeypatch) == 4
    run_dir = only_run(ws)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["state"] == "paused"
    assert summary["counts"]["status"]["pending"] == 0
    assert "dsar resume" in capsys.readouterr().err
    assert run_cli(["status", str(run_dir), "--json"], emu.env, monkeypatch) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "paused"
    assert status["pause_reason"] == "no_wait"
    assert status["deadlines"]["overdue"] == 0
    assert run_cli(["resume", "--all", str(ws)], emu.env, monkeypatch) in (0, 1)
    assert json.loads((run_dir / "summary.json").read_text())["state"] == "finished"
    assert emu.stats()["duplicate_user_keys"] == []


def test_status_lists_the_subjects_due_soonest(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory()
    path = tmp_path / "in.csv"
    path.write_text(
        "subject_key,email,action,regulation,received_at\n"
        "K-old,a@example.org,access,lgpd_bra,2026-01-01T00:00:00Z\n"
        "K-new,b@example.org,access,gdpr,2026-11-27T00:00:00Z\n",
        encoding="utf-8",
    )
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(path), "--config", str(cfg), "--workspace", str(ws), "--no-wait"]
    assert run_cli(argv, emu.env, monkeypatch) == 4
    run_dir = only_run(ws)
    status = pq.read_table(run_dir / "status.parquet").to_pylist()
    by_key = {r["subject_key"]: r for r in status}
    assert by_key["K-old"]["overdue"] is True
    assert run_cli(["status", str(run_dir)], emu.env, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "K-old" in out
    assert "overdue" in out
    assert run_cli(["status", str(run_dir), "--redact-keys"], emu.env, monkeypatch) == 0
    assert "K-old" not in capsys.readouterr().out


def test_retry_resubmits_error_jobs_as_new_attempts(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(simulation={"product_error_rate": 0.3})
    write_subjects(tmp_path / "in.csv", 150, actions=("access",))
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli(argv, emu.env, monkeypatch) == 1
    run_dir = only_run(ws)
    before = pq.read_table(run_dir / "status.parquet").to_pylist()
    errors = {r["subject_key"] for r in before if r["status"] == "error"}
    assert errors
    emu.control("config", {"simulation": {"product_error_rate": 0.0}})
    assert run_cli(["retry", str(run_dir)], emu.env, monkeypatch) == 0
    after = {r["subject_key"]: r for r in pq.read_table(run_dir / "status.parquet").to_pylist()}
    for key in errors:
        assert after[key]["status"] == "complete"
        assert after[key]["attempt"] == 2
    assert len(after) == 150
    assert emu.stats()["duplicate_user_keys"] == []


def test_max_runtime_pauses_and_resume_continues(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(
        simulation={"processing_s": [864_000.0, 864_000.0], "product_error_rate": 0.0}
    )  # each job takes 10 s of real time
    write_subjects(tmp_path / "in.csv", 50, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli([*argv, "--max-runtime", "1s"], emu.env, monkeypatch) == 4
    run_dir = only_run(ws)
    assert json.loads((run_dir / "summary.json").read_text())["pause_reason"] == "max_runtime"
    emu.control("advance", {"days": 11})
    assert run_cli(["resume", str(run_dir)], emu.env, monkeypatch) == 0
    assert_every_row_once(run_dir, 50)


def test_dry_run_plans_and_reports_without_any_api_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_subjects(tmp_path / "in.csv", 40, bad_every=10)
    ws = tmp_path / "ws"
    for var in ("DSAR_API_BASE_URL", "ADOBE_CLIENT_ID", "ADOBE_CLIENT_SECRET", "ADOBE_ORG_ID"):
        monkeypatch.delenv(var, raising=False)
    argv = ["run", str(tmp_path / "in.csv"), "--workspace", str(ws), "--dry-run"]
    assert run_cli(argv, {}, monkeypatch) == 4
    run_dir = only_run(ws)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["api_calls_total"] == 0
    assert summary["counts"]["status"]["pending"] > 0
    assert summary["counts"]["status"]["rejected"] == 4
    assert not (ws / "emulator.sqlite").exists()


def test_an_unreadable_input_exits_3_and_leaves_no_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: Any
) -> None:
    ws = tmp_path / "ws"
    assert (
        run_cli(["run", str(tmp_path / "missing.csv"), "--workspace", str(ws)], {}, monkeypatch)
        == 3
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("nothing,useful\n1,2\n", encoding="utf-8")
    code = run_cli(["run", str(bad), "--workspace", str(ws), "--dry-run"], {}, monkeypatch)
    assert code == 3
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert not ws.exists() or not [p for p in ws.iterdir() if p.is_dir() and p.name != "dataset"]


def test_credentials_without_a_base_url_are_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_subjects(tmp_path / "in.csv", 5)
    monkeypatch.delenv("DSAR_API_BASE_URL", raising=False)
    env = {"ADOBE_CLIENT_ID": "x", "ADOBE_CLIENT_SECRET": "y", "ADOBE_ORG_ID": "z@AdobeOrg"}
    argv = ["run", str(tmp_path / "in.csv"), "--workspace", str(tmp_path / "ws")]
    assert run_cli(argv, env, monkeypatch) == 2
    assert os.environ["ADOBE_CLIENT_ID"] == "x"


def test_jobs_list_get_and_download_reach_the_service(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(simulation={"product_error_rate": 0.0})
    write_subjects(tmp_path / "in.csv", 30, actions=("access",))
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli(argv, emu.env, monkeypatch) == 0
    capsys.readouterr()
    out = tmp_path / "jobs.parquet"
    assert (
        run_cli(["jobs", "list", "--regulation", "gdpr", "--out", str(out)], emu.env, monkeypatch)
        == 0
    )
    table = pq.read_table(out)
    assert table.num_rows == 30
    job_id = table.column("job_id")[0].as_py()
    assert run_cli(["jobs", "list", "--regulation", "gdpr", "--json"], emu.env, monkeypatch) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 30
    assert run_cli(["jobs", "get", job_id, "--json"], emu.env, monkeypatch) == 0
    details = json.loads(capsys.readouterr().out)
    assert details["status"] == "complete"
    assert details["products"]
    dest = tmp_path / "dl"
    assert run_cli(["jobs", "download", job_id, "--out", str(dest)], emu.env, monkeypatch) == 0
    assert (dest / f"{job_id}.zip").stat().st_size > 0
    assert run_cli(["jobs", "get", "no-such-job"], emu.env, monkeypatch) == 6
    bad = ["jobs", "list", "--regulation", "gdpr", "--from", "2026-01-01"]
    assert run_cli(bad, emu.env, monkeypatch) == 2


@pytest.mark.parametrize("via", ["jobs", "consent"])
def test_opt_out_rows_travel_apart_by_jobs_or_by_consent(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    emu = emulator_factory(simulation={"product_error_rate": 0.0})
    write_subjects(tmp_path / "in.csv", 60, actions=("access", "opt-out-of-sale"))
    cfg = write_config(
        tmp_path / "c.toml",
        job={"opt_out_via": via, "include": ["analytics", "audienceManager"]},
    )
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli(argv, emu.env, monkeypatch) == 0
    run_dir = only_run(ws)
    rows = pq.read_table(run_dir / "status.parquet").to_pylist()
    opt_out = [r for r in rows if r["action"] == "opt-out-of-sale"]
    assert opt_out
    stats = emu.stats()
    if via == "consent":
        assert {r["status"] for r in opt_out} == {"accepted"}
        assert all(r["job_id"] is None for r in opt_out)
        assert stats["consent_requests"] >= 1
        assert stats["jobs_created"] == len(rows) - len(opt_out)
    else:
        assert {r["status"] for r in opt_out} == {"complete"}
        assert stats["jobs_created"] == len(rows)
    assert_every_row_once(run_dir, 60)


@pytest.mark.slow
def test_the_sample_runs_end_to_end_on_the_embedded_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    sample = Path(__file__).resolve().parents[2] / "data" / "sample_subjects.csv"
    for var in ("DSAR_API_BASE_URL", "ADOBE_CLIENT_ID", "ADOBE_CLIENT_SECRET", "ADOBE_ORG_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    assert run_cli(["run", str(sample)], {}, monkeypatch) in (0, 1)
    out = capsys.readouterr()
    assert "dsar run summary" in out.out
    assert "embedded emulator" in out.err
    run_dir = only_run(tmp_path / "dsar-runs")
    for name in (
        "journal.sqlite", "status.parquet", "products.parquet", "rejects.parquet",
        "summary.json", "report.html", "manifest.json",
    ):  # fmt: skip
        assert (run_dir / name).is_file(), name
    assert (run_dir / "results").is_dir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["state"] == "finished"
    assert_every_row_once(run_dir, summary["input"]["rows"])


@pytest.mark.timeout(300)  # a safety net for a loaded machine, not a speed claim
def test_a_batch_is_split_to_use_the_whole_daily_budget(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Submitting is what is tested: both legs stop once submitted (--no-wait), so the test does
    # not wait for 6,000 jobs to finish and download (which outlasted the test's timeout on a
    # loaded machine); a held clock puts each leg on a known service day.
    emu = emulator_factory(
        limits={"daily_job_cap": 5000}, clock_frozen=True, clock_start="2026-03-02T09:00:00"
    )
    write_subjects(tmp_path / "in.csv", 3000, actions=("access+delete",))
    cfg = write_config(tmp_path / "c.toml", limits={"daily_job_cap": 5000})
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli([*argv, "--no-wait"], emu.env, monkeypatch) == 4
    assert emu.stats()["jobs_created"] == 5000  # 2 batches of 2,000 jobs and half of the third
    run_dir = only_run(ws)
    emu.control("advance", {"days": 1})
    assert run_cli(["resume", str(run_dir), "--no-wait"], emu.env, monkeypatch) == 4
    assert emu.stats()["jobs_created"] == 6000
    assert emu.stats()["duplicate_user_keys"] == []
    org = emu.env["ADOBE_ORG_ID"]
    with Ledger.open(ws) as ledger:
        first, second = (ledger.usage(org, date(2026, 3, d)) for d in (2, 3))
    assert (first.used, first.reserved, second.used, second.reserved) == (5000, 0, 1000, 0)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["counts"]["status"]["pending"] == 0
    assert_every_row_once(run_dir, 3000)


def test_jobs_past_the_services_retention_end_the_run_as_errors(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(simulation={"product_error_rate": 0.0})
    write_subjects(tmp_path / "in.csv", 20, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli([*argv, "--no-wait"], emu.env, monkeypatch) == 4
    emu.control("advance", {"days": 32})  # done long ago, and forgotten after 30 days
    run_dir = only_run(ws)
    assert run_cli(["resume", str(run_dir)], emu.env, monkeypatch) == 1
    rows = pq.read_table(run_dir / "status.parquet").to_pylist()
    assert {r["status"] for r in rows} == {"error"}
    assert {r["error_code"] for r in rows} == {"JOB_NOT_FOUND"}


def test_a_result_gone_from_the_service_is_reported_not_retried_forever(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(simulation={"product_error_rate": 0.0}, content_retention_days=0)
    write_subjects(tmp_path / "in.csv", 10, actions=("access",))
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli(argv, emu.env, monkeypatch) == 1  # finished, but answers are missing
    rows = pq.read_table(run_dir := only_run(ws) / "status.parquet").to_pylist()
    assert {r["status"] for r in rows} == {"complete"}
    assert {r["error_code"] for r in rows} == {"RESULT_NOT_FOUND"}
    assert run_dir.is_file()


def test_json_logs_are_one_object_per_line(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory()
    write_subjects(tmp_path / "in.csv", 20)
    cfg = write_config(tmp_path / "c.toml")
    argv = [
        "run", str(tmp_path / "in.csv"), "--config", str(cfg),
        "--workspace", str(tmp_path / "ws"), "--log-format", "json", "--no-wait",
    ]  # fmt: skip
    assert run_cli(argv, emu.env, monkeypatch) == 4
    err = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in err if line.startswith("{")]
    assert any(r["logger"] == "dsar.run" and "planned" in r["msg"] for r in records)
    assert all({"ts", "level", "logger", "msg"} <= r.keys() for r in records)
