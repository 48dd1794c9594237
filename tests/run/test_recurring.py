"""Recurring runs into one workspace: dedupe with a cooldown against the workspace registry,
and the dataset that reads every run as one table (issue 14, items 1-3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.journal.registry import Registry, journal_jobs
from tests.helpers.run import assert_every_row_once, run_cli, write_config, write_subjects

NO_ERRORS = {"product_error_rate": 0.0}


def _runs(ws: Path) -> list[Path]:
    return sorted(p.parent for p in ws.glob("*/journal.sqlite"))


def _summary(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return data


def _posts(run_dir: Path) -> int:
    return sum(_summary(run_dir)["api_calls"].get("POST jobs", {}).values())


def _status(run_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(run_dir / "status.parquet").to_pylist()
    return rows


LAST: dict[str, Path] = {}


def _run(tmp_path: Path, emu: Any, monkeypatch: pytest.MonkeyPatch, src: Path, *extra: str) -> int:
    """``dsar run SRC`` into ``tmp_path/ws``; ``_last(tmp_path)`` is then its run directory."""
    cfg = tmp_path / "c.toml"
    if not cfg.exists():
        write_config(cfg)
    before = set(_runs(tmp_path / "ws"))
    argv = ["run", str(src), "--config", str(cfg), "--workspace", str(tmp_path / "ws"), *extra]
    code = run_cli(argv, emu.env, monkeypatch)
    (LAST[str(tmp_path)],) = set(_runs(tmp_path / "ws")) - before
    return code


def _last(tmp_path: Path) -> Path:
    return LAST[str(tmp_path)]


def _later(emu: Any, days: int) -> None:
    """Move the run clock, which the emulator and dsar both read, ``days`` ahead."""
    emu.clock.offset_s += days * 86_400


def _assert_registry_matches_journals(ws: Path) -> None:
    with Registry.open(ws) as registry:
        registered = registry.jobs()
    recorded = set().union(*(journal_jobs(r) for r in _runs(ws)))
    assert registered == recorded


def test_a_second_run_of_the_same_input_submits_nothing_and_no_dedupe_submits_again(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(simulation=NO_ERRORS)
    src = tmp_path / "in.csv"
    write_subjects(src, 60, bad_every=12)
    assert _run(tmp_path, emu, monkeypatch, src) == 1  # rows rejected
    first = _last(tmp_path)
    earlier = {(r["subject_key"], r["action"]): r["job_id"] for r in _status(first)}
    created = emu.stats()["jobs_created"]

    assert _run(tmp_path, emu, monkeypatch, src) in (0, 1)
    second = _last(tmp_path)
    assert _posts(second) == 0
    assert emu.stats()["jobs_created"] == created
    rows = _status(second)
    assert len(rows) == len(earlier)
    assert {(r["status"], r["reason_code"]) for r in rows} == {("skipped", "DUPLICATE")}
    assert {(r["subject_key"], r["action"]): r["previous_job_id"] for r in rows} == earlier
    assert {r["previous_run_id"] for r in rows} == {first.name}
    assert _summary(second)["counts"]["status"]["skipped"] == len(earlier)
    html = (second / "report.html").read_text()
    assert f'id="count-skipped"><dt>skipped</dt><dd data-count="{len(earlier)}">' in html
    assert_every_row_once(second, 60)  # the rejects are still rejects

    assert _run(tmp_path, emu, monkeypatch, src, "--no-dedupe") == 1
    third = _last(tmp_path)
    assert _posts(third) > 0
    assert {r["status"] for r in _status(third)} == {"complete"}
    assert emu.stats()["jobs_created"] == 2 * created
    _assert_registry_matches_journals(tmp_path / "ws")


def test_a_half_overlapping_file_submits_only_the_new_half(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(simulation=NO_ERRORS)
    write_subjects(tmp_path / "all.csv", 80, actions=("access+delete",))
    lines = (tmp_path / "all.csv").read_text().splitlines(keepends=True)
    (tmp_path / "a.csv").write_text("".join(lines[:41]))  # header + subjects 0-39
    (tmp_path / "b.csv").write_text(lines[0] + "".join(lines[21:]))  # subjects 20-79
    assert _run(tmp_path, emu, monkeypatch, tmp_path / "a.csv") == 0
    assert emu.stats()["jobs_created"] == 80
    assert _run(tmp_path, emu, monkeypatch, tmp_path / "b.csv") == 0
    assert emu.stats()["jobs_created"] == 80 + 80  # 40 new subjects x (access, delete)
    second = _last(tmp_path)
    counts = _summary(second)["counts"]["status"]
    assert (counts["complete"], counts["skipped"]) == (80, 40)  # 20 old subjects x 2 actions
    skipped = {r["subject_key"] for r in _status(second) if r["status"] == "skipped"}
    assert skipped == {f"S{i:07d}" for i in range(20, 40)}
    assert emu.stats()["duplicate_user_keys"] == []


def test_an_access_delete_subject_whose_access_is_blocked_submits_only_the_delete(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(simulation=NO_ERRORS)
    write_subjects(tmp_path / "a.csv", 10, actions=("access",))
    text = (tmp_path / "a.csv").read_text().replace(",access\n", ",access+delete\n")
    (tmp_path / "b.csv").write_text(text)
    assert _run(tmp_path, emu, monkeypatch, tmp_path / "a.csv") == 0
    assert _run(tmp_path, emu, monkeypatch, tmp_path / "b.csv") == 0
    rows = _status(_last(tmp_path))
    by_action = {(r["action"], r["status"]) for r in rows}
    assert by_action == {("access", "skipped"), ("delete", "complete")}
    assert len(rows) == 20


@pytest.mark.parametrize(
    ("days", "submits"),
    [(29, False), (31, True)],
    ids=["29 days after completion: skipped", "31 days: submitted again"],
)
def test_a_completed_job_blocks_for_the_cooldown_on_the_emulator_clock(
    days: int,
    submits: bool,
    tmp_path: Path,
    emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu = emulator_factory(simulation=NO_ERRORS)
    src = tmp_path / "in.csv"
    write_subjects(src, 20, actions=("delete",))
    assert _run(tmp_path, emu, monkeypatch, src) == 0
    _later(emu, days)
    assert _run(tmp_path, emu, monkeypatch, src) == 0
    second = _last(tmp_path)
    statuses = {r["status"] for r in _status(second)}
    assert statuses == ({"complete"} if submits else {"skipped"})
    assert (_posts(second) > 0) == submits


def test_the_cooldown_is_a_setting(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(simulation=NO_ERRORS)
    src = tmp_path / "in.csv"
    write_subjects(src, 10, actions=("delete",))
    write_config(tmp_path / "c.toml", job={"cooldown_days": 5})
    assert _run(tmp_path, emu, monkeypatch, src) == 0
    _later(emu, 6)
    assert _run(tmp_path, emu, monkeypatch, src) == 0
    assert {r["status"] for r in _status(_last(tmp_path))} == {"complete"}


def test_an_earlier_job_in_error_does_not_block(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(
        simulation={"product_error_rate": 1.0, "ids_not_found_rate": 0.0, "partial_rate": 0.0}
    )
    src = tmp_path / "in.csv"
    write_subjects(src, 20, actions=("delete",))
    assert _run(tmp_path, emu, monkeypatch, src) == 1
    assert {r["status"] for r in _status(_last(tmp_path))} == {"error"}
    assert _run(tmp_path, emu, monkeypatch, src) == 1
    second = _last(tmp_path)
    assert _posts(second) > 0
    assert {r["status"] for r in _status(second)} == {"error"}  # submitted (and failed) again
    assert emu.stats()["jobs_created"] == 40


def test_an_earlier_job_still_processing_blocks_whatever_its_age(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(
        simulation={"processing_s": [90 * 86_400.0, 90 * 86_400.0], **NO_ERRORS}
    )  # each job takes 90 simulated days
    src = tmp_path / "in.csv"
    write_subjects(src, 20, actions=("delete",))
    assert _run(tmp_path, emu, monkeypatch, src, "--no-wait") == 4
    first = _last(tmp_path)
    _later(emu, 40)  # past the cooldown, still processing
    assert _run(tmp_path, emu, monkeypatch, src, "--no-wait") == 0
    second = _last(tmp_path)
    rows = _status(second)
    assert {r["status"] for r in rows} == {"skipped"}
    assert {r["previous_run_id"] for r in rows} == {first.name}
    assert _posts(second) == 0


def test_validate_and_dry_run_say_how_many_jobs_would_be_skipped(
    tmp_path: Path,
    emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emu = emulator_factory(simulation=NO_ERRORS)
    write_subjects(tmp_path / "a.csv", 30, actions=("delete",))
    assert _run(tmp_path, emu, monkeypatch, tmp_path / "a.csv") == 0
    write_subjects(tmp_path / "b.csv", 50, actions=("delete",))  # S0-S29 were submitted
    capsys.readouterr()
    cfg = write_config(tmp_path / "v.toml", output={"workspace": str(tmp_path / "ws")})
    argv = ["validate", str(tmp_path / "b.csv"), "--config", str(cfg), "--out", str(tmp_path)]
    assert run_cli(argv, emu.env, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "skipped jobs            30" in out
    assert run_cli([*argv, "--no-dedupe"], emu.env, monkeypatch) == 0
    assert "skipped jobs             0" in capsys.readouterr().out
    assert _run(tmp_path, emu, monkeypatch, tmp_path / "b.csv", "--dry-run") == 4
    preview = _last(tmp_path)
    counts = _summary(preview)["counts"]["status"]
    assert (counts["pending"], counts["skipped"]) == (20, 30)


def test_every_run_is_one_table_for_pandas_pyarrow_and_duckdb(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb
    import pandas as pd
    import pyarrow.dataset as ds

    emu = emulator_factory(simulation=NO_ERRORS)
    write_subjects(tmp_path / "a.csv", 10, actions=("delete",))
    write_subjects(tmp_path / "b.csv", 15, actions=("delete",))
    assert _run(tmp_path, emu, monkeypatch, tmp_path / "a.csv") == 0
    first = _last(tmp_path)
    assert _run(tmp_path, emu, monkeypatch, tmp_path / "b.csv") == 0
    second = _last(tmp_path)
    status_dir = tmp_path / "ws" / "dataset" / "status"
    products_dir = tmp_path / "ws" / "dataset" / "products"
    for part in status_dir.glob("*/part-0.parquet"):
        assert "run_id" not in pq.read_schema(part).names
    expected = {first.name: 10, second.name: 15}

    frame = pd.read_parquet(status_dir)
    assert frame.groupby("run_id", observed=True).size().to_dict() == expected
    table = ds.dataset(status_dir, partitioning="hive").to_table()
    assert dict(zip(*pd.Series(table.column("run_id").to_pylist()).value_counts().sort_index(
    ).reset_index().to_dict("list").values(), strict=True)) == expected  # fmt: skip
    con = duckdb.connect()
    rows = con.execute(
        "SELECT run_id, count(*) FROM read_parquet(?, hive_partitioning = true) GROUP BY run_id",
        [str(status_dir / "*" / "*.parquet")],
    ).fetchall()
    assert dict(rows) == expected
    latest = con.execute(
        "SELECT count(*) FROM (SELECT subject_key, arg_max(status, coalesce(submitted_at,"
        " TIMESTAMP '1970-01-01')) FROM read_parquet(?, hive_partitioning = true)"
        " GROUP BY subject_key, action)",
        [str(status_dir / "*" / "*.parquet")],
    ).fetchone()
    assert latest == (15,)  # S0-S14: the skipped S0-S9 of the second run answer to the first
    products = pd.read_parquet(products_dir)
    assert set(products["run_id"].astype(str)) == {first.name, second.name}


def test_a_damaged_registry_stops_the_run_and_is_rebuilt_from_the_journals(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(simulation=NO_ERRORS)
    src = tmp_path / "in.csv"
    write_subjects(src, 10, actions=("delete",))
    assert _run(tmp_path, emu, monkeypatch, src) == 0
    registry = tmp_path / "ws" / "registry.sqlite"
    for leftover in (tmp_path / "ws").glob("registry.sqlite-*"):
        leftover.unlink()
    registry.write_bytes(b"not a database at all" * 100)
    cfg = str(tmp_path / "c.toml")
    argv = ["run", str(src), "--config", cfg, "--workspace", str(tmp_path / "ws")]
    assert run_cli(argv, emu.env, monkeypatch) == 6
    assert len(_runs(tmp_path / "ws")) == 1  # nothing planned: no run directory left
    registry.rename(tmp_path / "registry.broken")
    assert _run(tmp_path, emu, monkeypatch, src) == 0
    assert {r["status"] for r in _status(_last(tmp_path))} == {"skipped"}
    _assert_registry_matches_journals(tmp_path / "ws")
