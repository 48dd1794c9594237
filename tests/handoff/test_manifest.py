"""manifest.json and dsar verify: an untouched run passes, any changed byte is found."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from pipeline.cli.main import main
from pipeline.errors import InputError
from pipeline.handoff.manifest import read_manifest, verify_run

from .rundir import SyntheticRun


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def test_manifest_holds_version_digest_input_counts_and_api_window(run: SyntheticRun) -> None:
    manifest = read_manifest(run.run_dir)
    assert manifest["tool_version"] == "0.1.0"
    assert manifest["config_digest"] == run.summary["config_digest"]
    assert manifest["input"] == run.summary["input"]
    status_counts = run.summary["counts"]["status"]
    assert {k: v for k, v in manifest["counts"].items() if k != "total"} == status_counts
    assert manifest["counts"]["total"] == sum(status_counts.values())
    assert manifest["api_calls"]["first_at"] == "2026-03-07T12:00:00Z"
    assert manifest["api_calls"]["last_at"] == "2026-03-10T12:00:00Z"


def test_manifest_lists_every_report_file_and_result_zip_with_its_sha256(
    run: SyntheticRun,
) -> None:
    files = read_manifest(run.run_dir)["files"]
    zips = sorted(f"results/{p.name}" for p in (run.run_dir / "results").glob("*.zip"))
    assert len(zips) == 3
    expected = ["products.parquet", "rejects.parquet", "report.html", *zips]
    assert sorted(files) == sorted([*expected, "status.parquet", "summary.json"])
    for name, entry in files.items():
        data = (run.run_dir / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    # neither the manifest itself nor the journal-like working files are covered
    assert "manifest.json" not in files
    assert "input.csv" not in files


def test_verify_passes_on_an_untouched_run(
    run: SyntheticRun, capsys: pytest.CaptureFixture[str]
) -> None:
    assert verify_run(run.run_dir) == []
    assert main(["verify", str(run.run_dir)]) == 0
    assert "ok, 8 files match" in capsys.readouterr().out


@pytest.mark.parametrize(
    "name",
    ["status.parquet", "products.parquet", "rejects.parquet", "summary.json", "report.html",
     "results/job-first.zip"],
)  # fmt: skip
def test_verify_fails_when_one_byte_of_a_covered_file_changes(
    run: SyntheticRun, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if name == "results/job-first.zip":
        name = min(n for n in read_manifest(run.run_dir)["files"] if n.startswith("results/"))
    _flip_last_byte(run.run_dir / name)
    differences = verify_run(run.run_dir)
    assert [(d.path, d.kind) for d in differences] == [(name, "changed")]
    assert main(["verify", str(run.run_dir)]) == 1
    out = capsys.readouterr().out
    assert f"verify: {name}: changed" in out
    assert "1 difference(s)" in out


def test_verify_reports_missing_and_unlisted_files(run: SyntheticRun) -> None:
    zips = sorted((run.run_dir / "results").glob("*.zip"))
    zips[0].unlink()
    (run.run_dir / "results" / "job-extra.zip").write_bytes(b"PK")
    kinds = {(d.path, d.kind) for d in verify_run(run.run_dir)}
    assert kinds == {(f"results/{zips[0].name}", "missing"), ("results/job-extra.zip", "unlisted")}


def test_verify_refuses_manifest_paths_outside_the_run(run: SyntheticRun) -> None:
    path = run.run_dir / "manifest.json"
    manifest = orjson.loads(path.read_bytes())
    manifest["files"]["../outside.txt"] = {"sha256": "00", "bytes": 0}
    path.write_bytes(orjson.dumps(manifest))
    assert ("../outside.txt", "invalid") in {(d.path, d.kind) for d in verify_run(run.run_dir)}


def test_verify_without_a_manifest_is_an_input_error(
    run: SyntheticRun, capsys: pytest.CaptureFixture[str]
) -> None:
    (run.run_dir / "manifest.json").unlink()
    with pytest.raises(InputError, match=r"manifest\.json: missing"):
        verify_run(run.run_dir)
    assert main(["verify", str(run.run_dir)]) == 3
    assert "Traceback" not in capsys.readouterr().err
