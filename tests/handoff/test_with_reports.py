"""The hand-off over reports written by the real writer from a real journal."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from pipeline.cli.main import main
from pipeline.handoff.bundle import write_handoff
from pipeline.handoff.manifest import read_manifest, verify_run
from pipeline.handoff.reportdata import gather
from pipeline.journal.store import Journal
from pipeline.reports.writers import write_reports
from tests.helpers.plans import T0, email
from tests.helpers.reports import populate

NOW = T0 + timedelta(days=2)


@pytest.fixture
def written(tmp_path: Path) -> Iterator[Path]:
    """A populated journal whose reports, result ZIP and hand-off are written."""
    run_dir = tmp_path / "run"
    with Journal.open(run_dir) as journal:
        populate(journal)
        (run_dir / "results").mkdir(mode=0o700)
        (run_dir / "results" / "uk-0000000-access.zip").write_bytes(
            b"PK\x05\x06" + bytes(18) + email(0).encode()  # results hold identities
        )
        write_reports(journal, run_dir, now=NOW)
        write_handoff(run_dir, now=NOW)
        yield run_dir


def test_report_headline_equals_the_writers_summary(written: Path) -> None:
    summary = orjson.loads((written / "summary.json").read_bytes())
    html = (written / "report.html").read_text()
    for name, n in {**summary["counts"]["status"], "total": summary["counts"]["total"]}.items():
        assert f'id="count-{name}"><dt>{name}</dt><dd data-count="{n}">' in html
    by_status = gather(written, now=NOW).by_status
    assert by_status == {k: n for k, n in summary["counts"]["status"].items() if n}


def test_deadlines_are_computed_when_status_parquet_lacks_them(written: Path) -> None:
    data = gather(written, now=NOW)
    assert data.deadlines  # gdpr subjects, received when the run was planned (T0)
    assert {r.regulation for r in data.deadlines} == {"gdpr"}
    assert all(r.due_at.month == 4 and r.due_at.day == 1 for r in data.deadlines)


def test_manifest_carries_the_writers_facts_and_verifies(written: Path) -> None:
    summary = orjson.loads((written / "summary.json").read_bytes())
    manifest = read_manifest(written)
    assert manifest["config_digest"] == summary["config_digest"]
    assert manifest["input"] == summary["input"]
    assert manifest["run_id"] == summary["run_id"]
    assert "results/uk-0000000-access.zip" in manifest["files"]
    assert manifest["api_calls"]["first_at"] is not None
    assert verify_run(written) == []
    assert main(["verify", str(written)]) == 0


def test_no_identity_value_in_report_manifest_or_exports(written: Path, tmp_path: Path) -> None:
    assert main(["export", str(written), "--format", "csv", "--out", str(tmp_path / "s.csv")]) == 0
    assert main(["export", str(written), "--format", "jsonl", "--out", str(tmp_path / "s.j")]) == 0
    texts = {
        "report.html": (written / "report.html").read_text(),
        "manifest.json": (written / "manifest.json").read_text(),
        "csv": (tmp_path / "s.csv").read_text(),
        "jsonl": (tmp_path / "s.j").read_text(),
    }
    identities = [email(i) for i in range(20)]
    for name, text in texts.items():
        assert not [i for i in identities if i in text], name
        assert not re.search(r"[\w.+-]+@example\.org", text), name
