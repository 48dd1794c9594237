"""``dsar resume --config F``: what may change on resume is honoured, what may not is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ConfigError
from pipeline.journal.store import Journal
from pipeline.run.resume_settings import MAY_CHANGE, resume_settings, setting_changes
from pipeline.run.runner import settings_snapshot
from pipeline.settings import load_settings
from tests.helpers.run import Emu, run_cli, write_config, write_subjects


def _planned_run(
    tmp_path: Path, emu: Emu, monkeypatch: pytest.MonkeyPatch, **sections: Any
) -> Path:
    """A live run of 50 delete subjects with nothing submitted yet: planned with ``--dry-run``
    and then confirmed (the state of a run killed right after its confirmation)."""
    name = f"in-{len(list(tmp_path.glob('in-*.csv')))}"
    write_subjects(tmp_path / f"{name}.csv", 50, actions=("delete",))
    cfg = write_config(tmp_path / f"{name}.toml", **sections)
    run_dir = tmp_path / "ws" / name
    argv = ["run", str(tmp_path / f"{name}.csv"), "--config", str(cfg), "--dry-run",
            "--workspace", str(tmp_path / "ws"), "--run-dir", str(run_dir)]  # fmt: skip
    assert run_cli(argv, emu.env, monkeypatch) == 4
    with Journal.open(run_dir) as journal:
        journal.go_live(datetime.now(UTC), org_id=None)
    return run_dir


def _summary(run_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return result


def test_resume_refuses_a_config_that_changes_the_plan_and_names_each_key(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory()
    run_dir = _planned_run(tmp_path, emu, monkeypatch)
    capsys.readouterr()
    bad = write_config(
        tmp_path / "bad.toml",
        job={"regulation": "ccpa", "include": ["analytics"]},
        limits={"users_per_request": 10, "requests_per_second": 5},
        api={"base_url": "https://elsewhere.example/"},
    )
    for command in (["resume", str(run_dir)], ["retry", str(run_dir)]):
        assert run_cli([*command, "--config", str(bad)], emu.env, monkeypatch) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert 'job.regulation: "gdpr" in the journal, "ccpa" in' in line
        assert '"analytics"' in line
        assert "limits.users_per_request: 1000 in the journal, 10 in" in line
        assert "api.base_url:" in line
        assert "https://elsewhere.example/" in line
        assert "requests_per_second" not in line  # that one may change
        assert emu.env["ADOBE_CLIENT_SECRET"] not in line
    assert emu.stats()["requests"] == {}
    assert _summary(run_dir)["pause_reason"] == "dry_run"  # untouched


def test_resume_applies_what_may_change_for_that_invocation_only(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(simulation={"product_error_rate": 0.0})
    run_dir = _planned_run(tmp_path, emu, monkeypatch)
    capsys.readouterr()
    # the same regulation as planned is no change; a lower daily cap is
    lower_cap = write_config(
        tmp_path / "cap.toml", job={"regulation": "gdpr"}, limits={"daily_job_cap": 20}
    )
    assert run_cli(["resume", str(run_dir), "--config", str(lower_cap)], emu.env, monkeypatch) == 4
    assert "limits.daily_job_cap 20000 -> 20" in capsys.readouterr().err
    assert _summary(run_dir)["pause_reason"] == "daily_cap"
    assert emu.stats()["jobs_created"] == 20
    # without the config the run is driven with its journalled cap again
    assert run_cli(["resume", str(run_dir)], emu.env, monkeypatch) == 0
    assert emu.stats()["jobs_created"] == 50
    assert emu.stats()["duplicate_user_keys"] == []


def test_resume_all_with_a_config_checks_every_run_before_driving_any(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(simulation={"product_error_rate": 0.0})
    gdpr = _planned_run(tmp_path, emu, monkeypatch)
    ccpa = _planned_run(tmp_path, emu, monkeypatch, job={"regulation": "ccpa"})
    capsys.readouterr()
    ws = str(tmp_path / "ws")
    gdpr_only = write_config(tmp_path / "gdpr.toml", job={"regulation": "gdpr"})
    assert run_cli(["resume", "--all", ws, "--config", str(gdpr_only)], emu.env, monkeypatch) == 2
    err = capsys.readouterr().err
    assert f"{ccpa}: " in err
    assert 'job.regulation: "ccpa" in the journal, "gdpr" in' in err
    assert f"{gdpr}: " not in err
    assert emu.stats()["jobs_created"] == 0  # not even the run the config suits
    faster = write_config(tmp_path / "fast.toml", poll={"interval_s": 0.1})
    assert run_cli(["resume", "--all", ws, "--config", str(faster)], emu.env, monkeypatch) == 0
    assert capsys.readouterr().err.count("resume: poll.interval_s 0.2 -> 0.1") == 2  # each run
    assert _summary(gdpr)["state"] == _summary(ccpa)["state"] == "finished"
    assert emu.stats()["jobs_created"] == 100


def test_a_key_the_config_leaves_out_keeps_its_journalled_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    planned = load_settings(
        None,
        env={},
        overrides={"output": {"workspace": "ws"}, "limits": {"users_per_request": 7}},
    )
    snapshot = json.loads(json.dumps(settings_snapshot(planned)))  # as the journal holds it
    config = write_config(tmp_path / "c.toml", output={"workspace": "ws"})  # relative, same
    resumed = resume_settings(snapshot, {}, config)
    assert resumed.limits.users_per_request == 7  # not the default 1000
    assert resumed.limits.requests_per_second == 1000  # from the file
    assert resumed.poll.interval_s == 0.2
    elsewhere = write_config(tmp_path / "d.toml", output={"workspace": "other"})
    with pytest.raises(ConfigError, match=r"output\.workspace"):
        resume_settings(snapshot, {}, elsewhere)


RECIPIENT = "age1nka2f4r0tu5fh4z74mqrs460yy9mel7y3zytwr08d5qwc267csqsa329fa"


def test_only_keys_that_drive_the_run_may_change() -> None:
    base = load_settings(None, env={})
    changed = load_settings(
        None,
        env={},
        overrides={
            "api": {"timeout_s": 5.0, "base_url": "https://x.example/"},
            "job": {"priority": "low"},
            "input": {"key_column": "id"},
            "limits": {"max_in_flight": 2, "users_per_request": 3},
            "poll": {"interval_s": 1.0},
            "results": {"encrypt_to": [RECIPIENT]},
            "retention": {"results_days": 7},
        },
    )
    verdicts = {c.key: c.allowed for c in setting_changes(base, changed)}
    assert verdicts == {
        "api.base_url": False,
        "api.timeout_s": True,
        "job.priority": False,
        "input.key_column": False,
        "limits.max_in_flight": True,
        "limits.users_per_request": False,
        "poll.interval_s": True,
        "results.encrypt_to": False,  # half a run's results encrypted: refused
        "retention.results_days": True,
    }
    assert all(key.split(".")[0] in {"api", "limits", "poll", "retention"} for key in MAY_CHANGE)
