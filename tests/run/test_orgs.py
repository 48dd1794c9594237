"""A run with [[orgs]] tables: each org is driven with the credentials it names, through its
own client and daily budget; one org at its cap or refused does not hold up the others."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.cli.main import main
from tests.helpers.run import (
    ORG_CLIENTS,
    assert_every_row_once,
    only_run,
    org_env,
    org_tables,
    run_cli,
    write_config,
)


def _org_table(name: str, org_id: str) -> str:
    return (
        f'[[orgs]]\nname = "{name}"\norg_id = "{org_id}"\n'
        f'client_id_env = "{name.upper()}_ID"\nclient_secret_env = "{name.upper()}_SECRET"\n'
    )


def _subjects(path: Path, n: int) -> None:
    rows = "".join(f"S{i},p{i}@example.org,{'eu' if i % 2 else ''}\n" for i in range(n))
    path.write_text("subject_key,email,org\n" + rows, encoding="utf-8")


def _assert_org_figures_match_status(run_dir: Path) -> dict[str, Any]:
    """summary.json's per-org figures equal a groupby of status.parquet (statuses, error
    codes) and of the journal (jobs created per day); returns the ``orgs`` section."""
    orgs: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())["orgs"]
    status = pq.read_table(run_dir / "status.parquet").to_pandas()
    by_status = status.groupby("org").status.value_counts()
    by_code = status.dropna(subset=["error_code"]).groupby("org").error_code.value_counts()
    for org in set(status.org.dropna()):
        assert orgs[org]["status"] == by_status[org].to_dict()
        codes = by_code[org].to_dict() if org in by_code.index.get_level_values(0) else {}
        assert orgs[org]["error_codes"] == codes
    with sqlite3.connect(run_dir / "journal.sqlite") as conn:
        created = dict(
            conn.execute(
                "SELECT b.org, count(*) FROM job j JOIN user u ON u.uid = j.uid"
                " JOIN batch b ON b.seq = u.batch_seq WHERE j.job_id IS NOT NULL GROUP BY b.org"
            ).fetchall()
        )
    assert {o: sum(d["jobs"] for d in s["cap_timeline"]) for o, s in orgs.items()} == {
        o: created.get(o, 0) for o in orgs
    }
    return orgs


def test_one_org_table_is_driven_with_the_credentials_its_variables_hold(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory()
    client = emu.server.config.clients[0]
    for var in ("ADOBE_CLIENT_ID", "ADOBE_CLIENT_SECRET", "ADOBE_ORG_ID"):
        monkeypatch.delenv(var, raising=False)
    env = {
        "DSAR_API_BASE_URL": emu.env["DSAR_API_BASE_URL"],
        "DSAR_IMS_URL": emu.env["DSAR_IMS_URL"],
        "EU_ID": client.client_id,
        "EU_SECRET": client.client_secret,
    }
    _subjects(tmp_path / "in.csv", 40)
    cfg = write_config(tmp_path / "c.toml")
    cfg.write_text(cfg.read_text() + _org_table("eu", client.org_id), encoding="utf-8")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli(argv, env, monkeypatch) in (0, 1)  # the emulator fails a few jobs
    run_dir = only_run(ws)
    assert_every_row_once(run_dir, 40)
    statuses = pq.read_table(run_dir / "status.parquet").column("status").to_pylist()
    assert statuses.count("complete") >= 30
    assert set(statuses) <= {"complete", "error"}
    status = pq.read_table(run_dir / "status.parquet").to_pandas()
    assert set(status.org) == {"eu"}
    assert set(pq.read_table(run_dir / "products.parquet").column("org").to_pylist()) == {"eu"}
    per_org = json.loads((run_dir / "summary.json").read_text())["counts"]["orgs"]
    table = status.groupby("org").status.value_counts()
    assert {org: {s: n for s, n in counts.items() if n} for org, counts in per_org.items()} == {
        org: table[org].to_dict() for org in ("eu",)
    }
    with sqlite3.connect(run_dir / "journal.sqlite") as conn:
        assert conn.execute("SELECT DISTINCT org FROM batch").fetchall() == [("eu",)]
    capsys.readouterr()
    assert main(["status", str(run_dir)]) in (0, 1)
    (line,) = [x for x in capsys.readouterr().out.splitlines() if "org eu" in x]
    assert f"complete {statuses.count('complete')}" in line
    with sqlite3.connect(ws / "ledger.sqlite") as conn:
        assert conn.execute("SELECT DISTINCT org FROM day_usage").fetchall() == [(client.org_id,)]


def _two_clean_orgs(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, dict[str, str], Path]:
    """An emulator serving orgs eu and us (no product errors), their environment (no
    ADOBE_* variables) and a config with their two [[orgs]] tables."""
    names = ("eu", "us")
    emu = emulator_factory(
        clients=[ORG_CLIENTS[n] for n in names], simulation={"product_error_rate": 0.0}
    )
    for var in ("ADOBE_CLIENT_ID", "ADOBE_CLIENT_SECRET", "ADOBE_ORG_ID"):
        monkeypatch.delenv(var, raising=False)
    cfg = write_config(tmp_path / "c.toml")
    cfg.write_text(cfg.read_text() + org_tables(names), encoding="utf-8")
    return emu, org_env(emu, names), cfg


def test_jobs_with_two_orgs_lists_every_org_finds_a_job_at_its_org_and_refuses_an_unknown_org(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    names = ("eu", "us")
    emu, env, cfg = _two_clean_orgs(tmp_path, emulator_factory, monkeypatch)
    rows = "".join(f"S{i},p{i}@example.org,{names[i % 2]}\n" for i in range(10))
    (tmp_path / "in.csv").write_text("subject_key,email,org\n" + rows, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    common = ["--config", str(cfg), "--workspace", "ws"]
    assert run_cli(["run", "in.csv", *common], env, monkeypatch) == 0
    status = pq.read_table(only_run(tmp_path / "ws") / "status.parquet").to_pandas()
    ids = {org: set(status[status.org == org].job_id) for org in names}
    capsys.readouterr()

    listing = ["jobs", "list", "--regulation", "gdpr", "--json", *common]
    assert run_cli(listing, env, monkeypatch) == 0
    listed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {org: {r["job_id"] for r in listed if r["org"] == org} for org in names} == ids
    assert run_cli([*listing, "--org", "us"], env, monkeypatch) == 0
    assert {json.loads(x)["job_id"] for x in capsys.readouterr().out.splitlines()} == ids["us"]

    before = emu.stats()["requests"]
    assert run_cli([*listing, "--org", "apac"], env, monkeypatch) == 2
    (err,) = capsys.readouterr().err.splitlines()
    assert "--org 'apac'" in err
    assert "known: eu, us" in err
    assert emu.stats()["requests"] == before  # refused before any call

    us_job, eu_job = sorted(ids["us"])[0], sorted(ids["eu"])[0]
    assert run_cli(["jobs", "get", us_job, "--json", *common], env, monkeypatch) == 0
    found = json.loads(capsys.readouterr().out)
    assert (found["job_id"], found["org"], found["status"]) == (us_job, "us", "complete")
    assert run_cli(["jobs", "get", us_job, "--org", "eu", *common], env, monkeypatch) == 6
    capsys.readouterr()
    assert run_cli(["jobs", "get", "no-such-job", *common], env, monkeypatch) == 6
    (err,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("dsar:")]
    assert "none of the orgs (eu, us) has it" in err
    dest = tmp_path / "dl"
    assert run_cli(["jobs", "download", eu_job, "--out", str(dest), *common], env, monkeypatch) == 0
    assert (dest / f"{eu_job}.zip").stat().st_size > 0


def test_three_orgs_one_at_its_cap_one_refused_one_clean(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    names = ("eu", "us", "apac")
    emu = emulator_factory(clients=[ORG_CLIENTS[n] for n in names])
    for var in ("ADOBE_CLIENT_ID", "ADOBE_CLIENT_SECRET", "ADOBE_ORG_ID"):
        monkeypatch.delenv(var, raising=False)
    env = org_env(emu, names, wrong_secret=("apac",))
    n = 60
    rows = "".join(f"S{i},p{i}@example.org,{names[i % 3]}\n" for i in range(n))
    (tmp_path / "in.csv").write_text("subject_key,email,org\n" + rows, encoding="utf-8")
    cfg = write_config(tmp_path / "c.toml")
    tables = org_tables(names, us={"daily_job_cap": 10})
    cfg.write_text(cfg.read_text() + tables, encoding="utf-8")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    capsys.readouterr()
    assert run_cli(argv, env, monkeypatch) == 4  # us has work left after its cap
    out = capsys.readouterr()
    assert "org us at its daily cap until" in out.out + out.err
    run_dir = only_run(ws)
    status = pq.read_table(run_dir / "status.parquet").to_pandas()
    by_org = status.groupby("org").status.agg(set).to_dict()
    assert by_org["eu"] <= {"complete", "error"}  # the clean org finished
    assert by_org["apac"] == {"error"}  # the refused org's rows, reported
    assert "pending" in by_org["us"]
    apac = status[status.org == "apac"]
    assert set(apac.error_code) == {"AUTH_FAILED"}
    capsys.readouterr()
    assert main(["status", str(run_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    (us_line,) = [x for x in lines if "org us" in x]
    assert "today 10 / 10; paused until" in us_line
    assert not [x for x in lines if "org eu" in x and "paused" in x]
    assert main(["status", str(run_dir), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    until = shown["org_paused_until"]
    assert shown["daily_budget"] is None  # several orgs: each its own
    assert shown["org_budget_today"]["us"]["exhausted"]
    assert not shown["org_budget_today"]["eu"]["exhausted"]
    assert until["us"] is not None
    assert until["eu"] is None
    assert until["apac"] is None
    orgs = _assert_org_figures_match_status(run_dir)
    assert orgs["us"]["paused_until"][:16] == until["us"][:16]
    assert orgs["us"]["cap_timeline"][0]["jobs"] == 10  # its cap of 10 a day
    assert orgs["us"]["cap_timeline"][0]["at_cap"]
    assert orgs["us"]["paused_until"] is not None
    assert orgs["us"]["pauses"][-1]["resume_after"] == orgs["us"]["paused_until"]
    assert orgs["eu"]["paused_until"] is None
    assert orgs["eu"]["pauses"] == []
    assert orgs["apac"]["error_codes"] == {"AUTH_FAILED": n // 3}
    assert orgs["apac"]["cap_timeline"] == []  # the service created none of its jobs
    for _ in range(5):  # the next emulator days finish the capped org
        emu.control("advance", {"days": 1})
        code = run_cli(["resume", str(run_dir)], env, monkeypatch)
        if code != 4:
            break
    assert code == 1  # apac's rows failed
    assert_every_row_once(run_dir, n)
    status = pq.read_table(run_dir / "status.parquet").to_pandas()
    assert set(status[status.org == "us"].status) <= {"complete", "error"}
    per_org = json.loads((run_dir / "summary.json").read_text())["counts"]["orgs"]
    table = status.groupby("org").status.value_counts()
    assert {org: {s: k for s, k in counts.items() if k} for org, counts in per_org.items()} == {
        org: table[org].to_dict() for org in names
    }
    orgs = _assert_org_figures_match_status(run_dir)
    assert [d["jobs"] for d in orgs["us"]["cap_timeline"]] == [10] * (n // 3 // 10)
    assert all(o["paused_until"] is None for o in orgs.values())  # finished: nobody waits
    timeline = orgs["us"]["cap_timeline"]
    assert [p["day"] for p in orgs["us"]["pauses"]] == [d["day"] for d in timeline[:-1]]
    assert all(d["at_cap"] for d in timeline)
    assert all(d["workspace_jobs"] == d["jobs"] for d in timeline)  # the only run
    with sqlite3.connect(run_dir / "journal.sqlite") as conn:  # no user key twice
        keys = conn.execute(
            "SELECT u.user_key, j.action FROM job j JOIN user u ON u.uid = j.uid"
            " WHERE j.job_id IS NOT NULL"
        ).fetchall()
    assert len(keys) == len(set(keys))
    assert emu.control("stats")["duplicate_user_keys"] == []  # as the service saw them
    with sqlite3.connect(ws / "ledger.sqlite") as conn:
        orgs = {r[0] for r in conn.execute("SELECT DISTINCT org FROM day_usage")}
    assert {ORG_CLIENTS[n]["org_id"] for n in ("eu", "us")} <= orgs


def test_one_org_table_at_its_cap_exits_4_naming_the_org_and_its_resume_time(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    emu = emulator_factory(clients=[ORG_CLIENTS["eu"]])
    for var in ("ADOBE_CLIENT_ID", "ADOBE_CLIENT_SECRET", "ADOBE_ORG_ID"):
        monkeypatch.delenv(var, raising=False)
    rows = "".join(f"S{i},p{i}@example.org,eu\n" for i in range(15))
    (tmp_path / "in.csv").write_text("subject_key,email,org\n" + rows, encoding="utf-8")
    cfg = write_config(tmp_path / "c.toml")
    cfg.write_text(cfg.read_text() + org_tables(("eu",), eu={"daily_job_cap": 10}), "utf-8")
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", "ws"]
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert run_cli(argv, org_env(emu, ("eu",)), monkeypatch) == 4
    out = capsys.readouterr()
    assert "paused: org eu at its daily cap until" in out.out + out.err
    orgs = _assert_org_figures_match_status(only_run(tmp_path / "ws"))
    assert orgs["eu"]["paused_until"] is not None


def test_a_resume_config_that_changes_the_orgs_is_refused(tmp_path: Path) -> None:
    from pipeline.errors import ConfigError
    from pipeline.run.resume_settings import resume_settings
    from pipeline.run.runner import settings_snapshot
    from pipeline.settings import load_settings

    (tmp_path / "planned.toml").write_text(_org_table("eu", "EU@AdobeOrg"), encoding="utf-8")
    snapshot = settings_snapshot(load_settings(tmp_path / "planned.toml", env={}))
    (tmp_path / "other.toml").write_text(_org_table("eu", "XX@AdobeOrg"), encoding="utf-8")
    with pytest.raises(ConfigError, match="orgs: "):
        resume_settings(snapshot, {}, tmp_path / "other.toml")
    (tmp_path / "same.toml").write_text(
        _org_table("eu", "EU@AdobeOrg") + "[poll]\ninterval_s = 5\n", encoding="utf-8"
    )
    assert resume_settings(snapshot, {}, tmp_path / "same.toml").orgs[0].org_id == "EU@AdobeOrg"


def test_every_org_refused_exits_5_with_each_orgs_rows_failed(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    names = ("eu", "us")
    emu = emulator_factory(clients=[ORG_CLIENTS[n] for n in names])
    for var in ("ADOBE_CLIENT_ID", "ADOBE_CLIENT_SECRET", "ADOBE_ORG_ID"):
        monkeypatch.delenv(var, raising=False)
    env = org_env(emu, names, wrong_secret=names)
    rows = "".join(f"S{i},p{i}@example.org,{names[i % 2]}\n" for i in range(10))
    (tmp_path / "in.csv").write_text("subject_key,email,org\n" + rows, encoding="utf-8")
    cfg = write_config(tmp_path / "c.toml")
    cfg.write_text(cfg.read_text() + org_tables(names), encoding="utf-8")
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    capsys.readouterr()
    assert run_cli(argv, env, monkeypatch) == 5
    err = capsys.readouterr().err
    assert "refused the credentials of every org (eu, us)" in err
    status = pq.read_table(only_run(ws) / "status.parquet").to_pandas()
    assert set(status.error_code) == {"AUTH_FAILED"}
    assert_every_row_once(only_run(ws), 10)


@pytest.mark.slow  # the embedded emulator runs on the real clock: ~5 s
def test_the_two_org_sample_runs_on_the_embedded_emulator_with_one_client_per_org(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = Path(__file__).resolve().parents[2]
    for var in ("ADOBE_CLIENT_ID", "ADOBE_CLIENT_SECRET", "ADOBE_ORG_ID", "DSAR_API_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    argv = ["run", str(root / "data" / "sample_two_orgs.csv"), "--workspace", "ws", "--yes"]
    argv += ["--config", str(root / "configs" / "two_orgs.toml")]
    assert main(argv) == 1  # the sample's UNKNOWN_ORG row
    orgs = _assert_org_figures_match_status(only_run(tmp_path / "ws"))
    assert set(orgs) == {"eu", "us"}
    html = (only_run(tmp_path / "ws") / "report.html").read_text(encoding="utf-8")
    assert 'id="org-eu"' in html
    assert 'id="org-us"' in html
    status = pq.read_table(only_run(tmp_path / "ws") / "status.parquet").to_pandas()
    assert set(status.org) == {"eu", "us"}
    assert set(status.status) <= {"complete", "error"}
    with sqlite3.connect(tmp_path / "ws" / "ledger.sqlite") as conn:
        orgs = {r[0] for r in conn.execute("SELECT org FROM day_usage WHERE used > 0")}
    assert orgs == {"EU0000000000000000000001@AdobeOrg", "US0000000000000000000002@AdobeOrg"}


def test_dedupe_is_per_org_a_subject_blocks_in_its_own_org_not_in_another(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, env, cfg = _two_clean_orgs(tmp_path, emulator_factory, monkeypatch)
    ws = tmp_path / "ws"
    n = 20

    def run(orgs: tuple[str, str]) -> Path:
        src = tmp_path / f"in-{orgs[0]}.csv"
        rows = "".join(f"S{i},p{i}@example.org,{orgs[i % 2]}\n" for i in range(n))
        src.write_text("subject_key,email,org\n" + rows, encoding="utf-8")
        before = set(ws.glob("*/journal.sqlite"))
        argv = ["run", str(src), "--config", str(cfg), "--workspace", str(ws)]
        assert run_cli(argv, env, monkeypatch) == 0
        (journal,) = set(ws.glob("*/journal.sqlite")) - before
        return journal.parent

    first = run(("eu", "us"))
    assert set(pq.read_table(first / "status.parquet").column("status").to_pylist()) == {"complete"}
    created = emu.stats()["jobs_created"]
    second = run(("eu", "us"))  # the same subjects in the same orgs: all skipped
    status = pq.read_table(second / "status.parquet").to_pandas()
    assert len(status) == n
    assert set(status.status) == {"skipped"}
    assert emu.stats()["jobs_created"] == created
    third = run(("us", "eu"))  # each subject moved to the other org: other data, none skipped
    status = pq.read_table(third / "status.parquet").to_pandas()
    assert len(status) == n
    assert set(status.status) == {"complete"}
    assert emu.stats()["jobs_created"] == 2 * created
    with sqlite3.connect(ws / "registry.sqlite") as conn:  # each job under its own org's id
        orgs = dict(
            conn.execute(
                "SELECT run_id, group_concat(DISTINCT org) FROM submission GROUP BY run_id"
            ).fetchall()
        )
    assert {len(v.split(",")) for v in orgs.values()} == {2}
