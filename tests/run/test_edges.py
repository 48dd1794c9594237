"""Smaller things users hit: a run whose every row is rejected, and retry with nothing to retry."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.cli.main import main
from pipeline.emulator import EmulatorConfig
from pipeline.errors import ConfigError
from pipeline.run.jobs import JobQuery, check_lookback
from tests.helpers.run import only_run, run_cli, write_config, write_subjects

CREDENTIAL_VARS = (
    "DSAR_API_BASE_URL",
    "DSAR_IMS_URL",
    "ADOBE_CLIENT_ID",
    "ADOBE_CLIENT_SECRET",
    "ADOBE_ORG_ID",
)


def _all_bad(path: Path) -> None:
    path.write_text(
        "subject_key,email,action\nA,broken-at-example.org,access\nB,x,delete\nC,y,access\n",
        encoding="utf-8",
    )


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_run_whose_every_row_is_rejected_keeps_its_rejects_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, dry_run: bool
) -> None:
    for var in CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)
    _all_bad(tmp_path / "in.csv")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--workspace", str(ws)]
    assert main([*argv, "--dry-run"] if dry_run else argv) == 3
    run_dir = only_run(ws)
    rejects = run_dir / "rejects.parquet"
    err = capsys.readouterr().err
    assert f"see {rejects}" in err  # the line points at a file that exists
    assert pq.read_table(rejects).column("input_row").to_pylist() == [0, 1, 2]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["state"] == "finished"
    assert summary["counts"]["status"]["rejected"] == 3
    assert summary["api_calls_total"] == 0
    assert (run_dir / "report.html").is_file()
    assert main(["status", str(run_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["rejected_rows"] == 3
    assert str(rejects) in status["next"]
    assert main(["resume", str(run_dir)]) == 3  # still nothing to do, still pointing there
    assert f"see {rejects}" in capsys.readouterr().err


def test_retry_with_no_job_in_error_needs_no_credentials_and_calls_nothing(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(simulation={"product_error_rate": 0.0})
    write_subjects(tmp_path / "in.csv", 30, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli(argv, emu.env, monkeypatch) == 0
    run_dir = only_run(ws)
    requests_before = emu.stats()["requests"]
    capsys.readouterr()
    for var in CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)
    assert main(["retry", str(run_dir)]) == 0
    assert "nothing to retry" in capsys.readouterr().err
    assert emu.stats()["requests"] == requests_before


def test_retry_of_a_paused_run_with_no_error_points_at_resume(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(simulation={"product_error_rate": 0.0})
    write_subjects(tmp_path / "in.csv", 10, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli([*argv, "--no-wait"], emu.env, monkeypatch) == 4  # submitted, not polled
    run_dir = only_run(ws)
    created = emu.stats()["jobs_created"]
    capsys.readouterr()
    for var in CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)
    assert main(["retry", str(run_dir)]) == 4
    err = capsys.readouterr().err
    assert "nothing to retry" in err
    assert f"dsar resume {run_dir}" in err
    assert emu.stats()["jobs_created"] == created


def _json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` parsed as a JSON object (a plain-text line fails the test)."""
    records = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(r, dict) for r in records)
    return records


def test_json_log_format_writes_only_json_lines_ending_with_one_summary(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capfd: Any
) -> None:
    emu = emulator_factory(simulation={"product_error_rate": 0.0})
    write_subjects(tmp_path / "in.csv", 40, actions=("delete",), bad_every=10)
    cfg = write_config(tmp_path / "c.toml")
    ws = tmp_path / "ws"
    json_flags = ["--log-format", "json"]
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli([*argv, *json_flags, "--no-wait"], emu.env, monkeypatch) == 4
    run_dir = only_run(ws)
    out, err = capfd.readouterr()
    (paused,) = _json_lines(out)
    assert _json_lines(err)  # the log records
    assert paused["logger"] == "dsar.summary"
    assert paused["exit_code"] == 4
    assert paused["state"] == "paused"
    assert paused["run_dir"] == str(run_dir)
    assert paused["next"] == f"`dsar resume {run_dir}`"
    assert run_cli(["resume", str(run_dir), *json_flags], emu.env, monkeypatch) == 1
    out, err = capfd.readouterr()
    (done,) = _json_lines(out)
    _json_lines(err)
    assert done["exit_code"] == 1  # finished, 4 rows rejected
    assert done["state"] == "finished"
    assert done["rejected_rows"] == 4
    assert done["jobs"]["complete"] == 36
    assert done["api_calls"] > 0
    assert str(run_dir / "rejects.parquet") in done["msg"]
    assert run_cli(["retry", str(run_dir), *json_flags], emu.env, monkeypatch) == 0
    out, err = capfd.readouterr()
    assert _json_lines(out)[-1]["msg"].startswith("nothing to retry")
    _json_lines(err)
    assert run_cli(["resume", "--all", str(ws), *json_flags], emu.env, monkeypatch) == 0
    out, err = capfd.readouterr()
    assert out == ""
    assert _json_lines(err)[-1]["msg"] == "no unfinished run in the workspace"
    assert main(["resume", str(tmp_path / "nowhere"), *json_flags]) == 2
    out, err = capfd.readouterr()
    assert out == ""
    (error,) = _json_lines(err)
    assert error["level"] == "error"
    assert error["exit_code"] == 2
    assert "holds no run journal" in error["msg"]
    assert main(["resume", "--all", str(tmp_path / "in.csv"), *json_flags]) == 2
    assert _json_lines(capfd.readouterr().err)[0]["exit_code"] == 2


def test_the_45_day_lookback_of_jobs_list_is_counted_in_utc_days() -> None:
    today = date(2026, 3, 31)
    check_lookback(JobQuery(regulation="gdpr"), today)  # no dates: the service's 7 days
    edge = date(2026, 2, 14)  # 45 days before
    check_lookback(JobQuery(regulation="gdpr", from_date=edge, to_date=today), today)
    older = JobQuery(regulation="gdpr", from_date=edge - timedelta(days=1), to_date=edge)
    with pytest.raises(ConfigError, match=r"46 days ago.*at most 45 days back.*2026-02-14"):
        check_lookback(older, today)


def test_jobs_list_refuses_a_from_date_past_the_lookback_before_any_call(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory()
    today = datetime.now(UTC).date()

    def jobs_list(first: date) -> list[str]:
        last = first + timedelta(days=10)
        return ["jobs", "list", "--regulation", "gdpr", "--json",
                "--from", first.isoformat(), "--to", last.isoformat()]  # fmt: skip

    assert run_cli(jobs_list(today - timedelta(days=60)), emu.env, monkeypatch) == 2
    err = capsys.readouterr().err
    assert "60 days ago" in err
    assert "at most 45 days back" in err
    assert emu.stats()["requests"] == {}  # refused before a token was asked for
    assert run_cli(jobs_list(today - timedelta(days=40)), emu.env, monkeypatch) == 0
    assert emu.stats()["requests"]


class _Terminal(io.StringIO):
    """A stream that says it is a terminal (where progress would draw bars)."""

    def isatty(self) -> bool:
        return True


def test_json_log_format_on_a_terminal_draws_no_progress_bars(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(simulation={"product_error_rate": 0.0})
    write_subjects(tmp_path / "in.csv", 20, actions=("delete",))
    cfg = write_config(tmp_path / "c.toml")
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg),
            "--workspace", str(tmp_path / "ws"), "--log-format", "json"]  # fmt: skip
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run_cli(argv, emu.env, monkeypatch) == 0
    records = _json_lines(terminal.getvalue())
    assert any(r["logger"] == "dsar.progress" for r in records)


README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(title)
    return text[start : text.index("\n## ", start)]


def test_the_readme_example_points_dsar_at_a_dsar_emulator(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory()
    section = _readme_section("**Pointing dsar at `dsar emulator`.**")
    toml = section.split("```toml\n", 1)[1].split("```", 1)[0]
    port = emu.server.base_url.split(":")[2].split("/")[0]
    config = tmp_path / "emulator-target.toml"
    config.write_text(toml.replace("8765", port), encoding="utf-8")
    for var in CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)
    for var in ("ADOBE_CLIENT_ID", "ADOBE_CLIENT_SECRET", "ADOBE_ORG_ID"):
        monkeypatch.setenv(var, emu.env[var])
    argv = ["jobs", "list", "--regulation", "gdpr", "--config", str(config)]
    assert main([*argv, "--workspace", str(tmp_path / "ws")]) == 0
    assert emu.stats()["requests"]  # the emulator answered (token and list)
    assert not (tmp_path / "ws" / "emulator.sqlite").exists()  # not the embedded one
    shell = section.split("```sh\n", 1)[1].split("```", 1)[0]
    assert f"DSAR_API_BASE_URL={emu.server.base_url.replace(port, '8765')}" in shell
    assert f"DSAR_IMS_URL={emu.server.ims_url.replace(port, '8765')}" in shell
    default_client = EmulatorConfig().clients[0]  # what `dsar emulator` serves without ADOBE_*
    assert f"ADOBE_CLIENT_ID={default_client.client_id}" in shell
    assert f"ADOBE_ORG_ID={default_client.org_id}" in shell
    jobs_list = next(line for line in README.read_text().splitlines() if "`dsar jobs list" in line)
    assert "45 days" in jobs_list
