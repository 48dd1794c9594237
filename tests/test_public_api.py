"""The public API: ``pipeline.__all__`` resolves and is documented, ``import pipeline`` is cheap,
the sync run calls refuse a running loop, their async twins finish runs inside one, and the
README's "Using dsar from Python" examples run as written."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import pipeline
from pipeline.errors import ConfigError
from pipeline.journal.store import Journal

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample_subjects.csv"
CREDENTIALS = ("DSAR_API_BASE_URL", "ADOBE_CLIENT_ID", "ADOBE_CLIENT_SECRET", "ADOBE_ORG_ID")


def test_every_public_name_resolves_and_is_documented() -> None:
    assert len(set(pipeline.__all__)) == len(pipeline.__all__)
    for name in pipeline.__all__:
        value = getattr(pipeline, name)
        if name != "__version__":
            assert (getattr(value, "__doc__", None) or "").strip(), name
    namespace: dict[str, Any] = {}
    exec("from pipeline import *", namespace)
    assert set(pipeline.__all__) <= set(namespace)
    assert set(pipeline.__all__) <= set(dir(pipeline))


def test_every_sync_call_has_an_async_twin() -> None:
    for name in ("start_run", "resume_run", "resume_all", "submit_run"):
        assert f"{name}_async" in pipeline.__all__
        assert asyncio.iscoroutinefunction(getattr(pipeline, f"{name}_async")), name
    for name in ("list_jobs", "get_job", "download_job"):
        assert asyncio.iscoroutinefunction(getattr(pipeline, f"{name}_async")), name


def test_import_pipeline_loads_no_stage() -> None:
    code = "import sys, pipeline; print(sorted(m for m in sys.modules if m.startswith('pipeline')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() == "['pipeline']"


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as the working directory, holding the sample, with no credentials set."""
    for var in CREDENTIALS:
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "data").mkdir()
    shutil.copy(SAMPLE, tmp_path / "data" / SAMPLE.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def test_sync_calls_in_a_running_loop_name_their_twin(embedded: Path) -> None:
    settings = pipeline.load_settings(env={})
    sample = Path("data/sample_subjects.csv")
    calls = {
        "start_run": lambda: pipeline.start_run(sample, settings, env={}),
        "resume_run": lambda: pipeline.resume_run(embedded, env={}),
        "resume_all": lambda: pipeline.resume_all(embedded, env={}),
        "submit_run": lambda: pipeline.submit_run(embedded, env={}),
        "list_jobs": lambda: pipeline.list_jobs(
            pipeline.JobQuery(regulation="gdpr"), settings, workspace=embedded, env={}
        ),
        "get_job": lambda: pipeline.get_job("j", settings, workspace=embedded, env={}),
        "download_job": lambda: pipeline.download_job(
            "j", embedded, settings, workspace=embedded, env={}
        ),
    }
    for name, call in calls.items():
        with pytest.raises(ConfigError, match=rf"await {name}_async\(") as info:
            call()
        assert "cannot be called from a running event loop" not in str(info.value)
    assert not (embedded / "dsar-runs").exists()  # refused before anything was written


async def test_async_twins_finish_a_run_inside_a_running_loop(embedded: Path) -> None:
    settings = pipeline.load_settings(env={})
    ticks = 0

    async def heartbeat() -> None:  # the caller's loop keeps serving while the run is driven
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    beating = asyncio.create_task(heartbeat())
    try:
        run = await pipeline.start_run_async(
            Path("data/sample_subjects.csv"), settings, env={}, dry_run=True
        )
        assert run.state == "paused"
        assert run.pause_reason == "dry_run"
        submitted = await pipeline.submit_run_async(run.run_dir, env={})
        again = await pipeline.resume_all_async(embedded / "dsar-runs", env={})
    finally:
        beating.cancel()
    assert submitted.state == "finished"
    assert submitted.exit_code in (0, 1)
    assert again.outcomes == []  # nothing left to drive
    assert ticks > 0
    with Journal.open(run.run_dir) as journal:
        assert journal.run_info().state == "finished"
    jobs = await pipeline.list_jobs_async(
        pipeline.JobQuery(regulation=settings.job.regulation), settings,
        workspace=embedded / "dsar-runs", env={},
    )  # fmt: skip
    assert isinstance(jobs, list)


def _readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Using dsar from Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_has_a_sync_and_an_async_example() -> None:
    blocks = _readme_examples()
    assert len(blocks) == 2
    assert "pipeline.start_run(" in blocks[0]
    assert "await pipeline.start_run_async(" in blocks[1]


@pytest.mark.parametrize("index", [0, 1], ids=["sync", "async"])
def test_the_readme_examples_run(embedded: Path, index: int, capsys: Any) -> None:
    exec(compile(_readme_examples()[index], f"README example {index}", "exec"), {})
    assert "finished" in capsys.readouterr().out
