"""report.html: self-contained, escaped, agrees with summary.json and the Parquet reports."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipeline.cli.main import main
from pipeline.handoff.bundle import write_handoff
from pipeline.handoff.reportdata import gather
from pipeline.keys import DEFAULT_KEY_SECRET, key_labeller

from .rundir import NOW, SyntheticRun, build_run_dir


class _Collector(HTMLParser):
    """Collects the tags, attributes and text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Collector:
    parser = _Collector()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _section_text(html: str, section: str) -> str:
    match = re.search(rf'<section id="{section}">(.*?)</section>', html, re.S)
    assert match, section
    return match.group(1)


def test_headline_counts_equal_summary_json(run: SyntheticRun) -> None:
    page = _parse(run.run_dir / "report.html")
    shown = {
        attrs["id"]: tag
        for tag, attrs in page.tags
        if attrs.get("id", "") and str(attrs.get("id")).startswith("count-")
    }
    counts = dict(run.summary["counts"]["status"], total=run.summary["counts"]["total"])
    assert set(shown) == {f"count-{k}" for k in counts}
    html = (run.run_dir / "report.html").read_text()
    for name, n in counts.items():
        assert re.search(rf'id="count-{name}"><dt>{name}</dt><dd data-count="{n}">{n:,}<', html)


def test_tables_agree_with_the_parquet_reports(run: SyntheticRun) -> None:
    data = gather(run.run_dir, now=NOW)
    status = pq.read_table(run.run_dir / "status.parquet")
    for value in status.column("status").value_counts().to_pylist():
        assert data.by_status[value["values"]] == value["counts"]
    products = pq.read_table(run.run_dir / "products.parquet")
    assert sum(sum(v.values()) for v in data.products.values()) == products.num_rows
    rejects = pq.read_table(run.run_dir / "rejects.parquet")
    assert sum(n for _, n, _ in data.rejects) == rejects.num_rows
    errors = int(pc.sum(pc.equal(status.column("status"), "error")).as_py())
    assert sum(g.count for g in data.errors if g.source == "job") == errors
    # cumulative series end at the totals
    assert data.series.submitted[-1] == status.column("submitted_at").drop_null().length()
    assert data.series.finished[-1] == status.column("completed_at").drop_null().length()
    assert sum(n for _, n in data.cap.days) == data.series.submitted[-1]
    assert data.cap.cap == 20_000  # summary.json records no cap: the service default
    assert data.cap.pending == data.by_status["pending"]


def test_deadline_table_lists_open_subjects_soonest_first(run: SyntheticRun) -> None:
    data = gather(run.run_dir, now=NOW)
    assert data.deadlines
    due = [r.due_at for r in data.deadlines]
    assert due == sorted(due)
    assert all(r.status in ("pending", "submitted", "processing", "error") for r in data.deadlines)
    status = pq.read_table(run.run_dir / "status.parquet").to_pylist()
    open_rows = [
        r for r in status if r["status"] in ("pending", "submitted", "processing", "error")
    ]
    assert data.overdue == sum(1 for r in open_rows if r["overdue"])
    assert due[0] == min(r["due_at"] for r in open_rows)


def test_the_page_loads_nothing_and_runs_no_script(run: SyntheticRun) -> None:
    html = (run.run_dir / "report.html").read_text()
    page = _parse(run.run_dir / "report.html")
    assert not [t for t, _ in page.tags if t in ("script", "link", "img", "iframe", "object")]
    for _, attrs in page.tags:
        for key, value in attrs.items():
            assert not key.startswith("on"), key
            if key in ("src", "href"):
                pytest.fail(f"external reference {key}={value}")
    assert "@import" not in html
    assert "url(http" not in html
    assert "default-src 'none'" in html
    assert len(re.findall(r"<svg ", html)) >= 4


def test_hostile_keys_and_messages_are_escaped(run: SyntheticRun) -> None:
    html = (run.run_dir / "report.html").read_text()
    assert "<script>" not in html
    assert "<b>" not in html  # the service's error message carried markup
    errors = _section_text(html, "errors")
    assert "Invalid namespace in request &lt;b&gt;" in errors
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_subject_keys_appear_only_in_the_deadline_and_error_tables(run: SyntheticRun) -> None:
    html = (run.run_dir / "report.html").read_text()
    assert re.search(r"cust-\d{7}", _section_text(html, "deadlines"))
    assert re.search(r"cust-\d{7}", _section_text(html, "errors"))
    for section in ("headline", "jobs", "products", "over-time", "daily-cap", "rejects"):
        assert not re.search(r"cust-\d{7}", _section_text(html, section)), section


def test_redact_keys_replaces_every_key_with_its_keyed_hash(
    run: SyntheticRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSAR_KEY_SECRET", "s3cret")
    assert main(["report", str(run.run_dir), "--redact-keys"]) == 0
    html = (run.run_dir / "report.html").read_text()
    assert not re.search(r"cust-\d{7}", html)
    deadlines = gather(run.run_dir, now=NOW).deadlines
    hashed = key_labeller(b"s3cret")(deadlines[0].subject_key)
    assert hashed in _section_text(html, "deadlines")
    assert key_labeller(DEFAULT_KEY_SECRET.encode())(deadlines[0].subject_key) not in html
    assert main(["verify", str(run.run_dir)]) == 0  # the manifest was rewritten with it


def test_no_identity_value_in_report_or_manifest(run: SyntheticRun) -> None:
    assert run.identities  # the fixture planted some (result ZIPs, input.csv)
    for name in ("report.html", "manifest.json"):
        text = (run.run_dir / name).read_text()
        leaked = [i for i in run.identities if i in text]
        assert not leaked, f"{name} holds identity values"
        assert "@example.org" not in text


@pytest.mark.slow
@pytest.mark.timeout(600)  # a safety net only: speed is measured by `dsar bench`, not here
def test_a_100k_subject_report_stays_under_2_mb_and_verifies(tmp_path: Path) -> None:
    built = build_run_dir(tmp_path / "big", subjects=100_000, zips=20)
    write_handoff(built.run_dir, now=NOW)
    size = (built.run_dir / "report.html").stat().st_size
    assert size < 2_000_000, f"report.html is {size:,} bytes"
    assert main(["verify", str(built.run_dir)]) == 0


def test_rejected_rows_come_from_rejects_parquet_when_status_lacks_them(
    run: SyntheticRun,
) -> None:
    path = run.run_dir / "status.parquet"
    status = pq.read_table(path)
    pq.write_table(status.filter(pc.not_equal(status.column("status"), "rejected")), path)
    rejects = pq.read_table(run.run_dir / "rejects.parquet").num_rows
    assert gather(run.run_dir, now=NOW).by_status["rejected"] == rejects > 0


def test_a_run_with_several_orgs_has_a_section_per_org_with_its_figures(
    run: SyntheticRun,
) -> None:
    import orjson

    html = (run.run_dir / "report.html").read_text()
    assert 'id="orgs"' not in html  # a single-org run's page is as it was
    orgs = {
        "eu": {
            "org_id": "EU@AdobeOrg", "daily_job_cap": 10,
            "status": {"complete": 18, "pending": 2}, "error_codes": {"AUTH_FAILED": 3},
            "cap_timeline": [
                {"day": "2026-03-09", "jobs": 10, "workspace_jobs": 10, "limit": 10,
                 "at_cap": True},
            ],
            "pauses": [{"day": "2026-03-09", "resume_after": "2026-03-10T00:00:00Z"}],
            "paused_until": "2026-03-11T00:00:00Z",
        },
        "<us>": {"org_id": None, "status": {}, "error_codes": {}, "cap_timeline": [],
                 "pauses": [], "paused_until": None},
    }  # fmt: skip
    summary_path = run.run_dir / "summary.json"
    summary_path.write_bytes(orjson.dumps({**run.summary, "orgs": orgs}))
    write_handoff(run.run_dir, now=NOW)
    html = (run.run_dir / "report.html").read_text()
    section = _section_text(html, "orgs")
    assert 'id="org-eu"' in section
    assert "<us>" not in section  # escaped like every value
    assert 'id="org-&lt;us&gt;"' in section
    eu = section.split('id="org-eu"')[1].split('<div id="org-')[0]
    assert "Paused at its daily cap</strong> until 2026-03-11T00:00:00Z" in eu
    for cells in (
        '<td>AUTH_FAILED</td><td class="n">3</td>',
        '<td>2026-03-09</td><td class="n">10</td><td class="n">10</td>'
        '<td class="n">10</td><td>yes</td>',
        "<td>2026-03-09</td><td>2026-03-10T00:00:00Z</td>",
    ):
        assert cells in eu
