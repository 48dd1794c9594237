"""``dsar run`` on a Privacy Service UI upload file: the file's request options reach the service.

Real HTTP against the emulator; where the emulator keeps no trace of an option (priority,
expandIds, mergePolicyId), a recording proxy between dsar and the emulator reads the POSTs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.journal.store import Journal
from tests.helpers.recorder import recording_proxy
from tests.helpers.run import run_cli, write_config
from tests.privacy import scan as privacy


def _upload(path: Path, n: int, **options: Any) -> Path:
    """A UI upload file of ``n`` users (an email each, access) with ``options`` at the top."""
    users = [
        {
            "key": f"U{i:04d}",
            "action": ["access"],
            "userIDs": [{"namespace": "email", "value": f"ui.{i}@example.org", "type": "standard"}],
        }
        for i in range(n)
    ]
    privacy.register(f"ui.{i}@example.org" for i in range(n))
    path.write_text(json.dumps({"users": users, "regulation": "gdpr", **options}), "utf-8")
    return path


def _run(tmp: Path, emu_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, **job: Any) -> int:
    cfg = write_config(tmp / "c.toml", **({"job": job} if job else {}))
    argv = ["run", str(tmp / "ui.json"), "--config", str(cfg), "--workspace", str(tmp / "ws")]
    return run_cli(argv, emu_env, monkeypatch)


def test_the_upload_files_products_are_the_products_the_service_receives(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory()
    _upload(tmp_path / "ui.json", 30, include=["Analytics", "AudienceManager"])
    assert _run(tmp_path, emu.env, monkeypatch) in (0, 1)
    requests = {job.request for job in emu.server.backend.store}
    assert requests
    assert {r.products for r in requests} == {("Analytics", "AudienceManager")}
    assert emu.stats()["jobs_created"] == 30
    (run_dir,) = [d for d in (tmp_path / "ws").iterdir() if d.is_dir() and d.name != "dataset"]
    products = pq.read_table(run_dir / "products.parquet", columns=["product"])
    assert set(products.column("product").to_pylist()) == {"Analytics", "AudienceManager"}
    with Journal.open(run_dir) as journal:  # the run's recorded settings say what was asked
        recorded = journal.run_info().meta.settings["job"]
    assert recorded["include"] == ["Analytics", "AudienceManager"]


def test_the_upload_files_priority_expand_ids_and_merge_policy_reach_the_post_body(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory()
    _upload(
        tmp_path / "ui.json",
        5,
        include=["Analytics"],
        priority="low",
        expandIds=True,
        mergePolicyId=124,
    )
    with recording_proxy(emu.server.root_url) as proxy:
        env = {**emu.env, "DSAR_API_BASE_URL": proxy.root_url + "data/core/privacy/"}
        assert _run(tmp_path, env, monkeypatch) in (0, 1)
        posts = proxy.bodies("/jobs")
    assert len(posts) == 1
    body = posts[0]
    assert (body["include"], body["priority"], body["expandIds"]) == (["Analytics"], "low", True)
    assert body["mergePolicyId"] == "124"
    assert body["regulation"] == "gdpr"
    assert len(body["users"]) == 5


def test_an_explicit_config_option_that_differs_from_the_files_is_refused_before_any_post(
    tmp_path: Path,
    emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emu = emulator_factory()
    _upload(tmp_path / "ui.json", 3, include=["Analytics"], priority="low")
    code = _run(tmp_path, emu.env, monkeypatch, priority="normal")
    err = capsys.readouterr().err
    assert code == 2
    (line,) = [ln for ln in err.splitlines() if ln.startswith("dsar: ")]
    assert "priority = low" in line
    assert "[job] priority = normal" in line
    assert "POST jobs" not in emu.stats()["requests"]
    ws = tmp_path / "ws"
    runs = [d for d in ws.iterdir() if d.is_dir() and d.name != "dataset"] if ws.exists() else []
    assert not runs  # no run dir left


def test_an_explicit_config_option_equal_to_the_files_lets_the_run_proceed(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory()
    _upload(tmp_path / "ui.json", 3, include=["analytics"], priority="low")
    code = _run(tmp_path, emu.env, monkeypatch, priority="low", include=["Analytics"])
    assert code in (0, 1)
    assert {job.request.products for job in emu.server.backend.store} == {("Analytics",)}


def test_an_upload_key_dsar_does_not_understand_is_refused_with_exit_3(
    tmp_path: Path,
    emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emu = emulator_factory()
    _upload(tmp_path / "ui.json", 3, analyticsDeleteMethod="anonymize")
    assert _run(tmp_path, emu.env, monkeypatch) == 3
    err = capsys.readouterr().err
    assert "'analyticsDeleteMethod'" in err
    assert "Traceback" not in err
    assert "POST jobs" not in emu.stats()["requests"]
