"""report.html: one self-contained page for the people a DSAR run is handed to.

:func:`render` turns :class:`~pipeline.handoff.reportdata.ReportData` into HTML with inline CSS and
inline SVG charts; no script, font, image or any other file is referenced, and a
Content-Security-Policy forbids the page from loading anything, so it renders the same with
the network off. Every table is plain HTML (readable without JavaScript, printable, and
copyable into a spreadsheet). Every value is escaped with :func:`html.escape`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from ..reports.files import STATUSES
from ..reports.sla import RESPONSE_WINDOWS
from . import charts
from .reportdata import ReportData

OUTCOMES = ("success", "partial", "ids_not_found", "not_provisioned", "invalid_namespace", "error")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1000px;
padding:24px;color:#1f2328;line-height:1.45}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid
#d0d7de;padding-bottom:4px}.meta{color:#57606a;margin:0}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0;padding:0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:110px}
.card dt{color:#57606a;font-size:13px}.card dd{margin:0;font-size:26px;font-weight:600}
.card.error dd{color:#cf222e}.card.complete dd{color:#1a7f37}
table{border-collapse:collapse;margin:8px 0;font-size:14px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.overdue{color:#cf222e;font-weight:600}.muted{color:#57606a}code{font-size:13px}
svg{display:block;margin:8px 0;max-width:100%;height:auto}
@media print{h2{break-after:avoid}table{break-inside:avoid}}
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def render(data: ReportData) -> str:
    """The whole report page for ``data``."""
    title = f"DSAR run {data.run_id}"
    sections = [
        _headline(data),
        *([_canary(data.canary)] if data.canary else []),
        _jobs(data),
        _products(data),
        _over_time(data),
        _cap(data),
        _errors(data),
        _rejects(data),
        *([_orgs(data.orgs)] if set(data.orgs) - {"default"} else []),
        _deadlines(data),
        *([_purges(data)] if data.purges else []),
        _reading_notes(),
    ]
    rows = "" if data.input_rows is None else f" · {data.input_rows:,} input rows"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1>"
        f'<p class="meta">report written {escape(_when(data.generated_at))} · dsar '
        f"{escape(data.tool_version)}{rows}</p></header>" + "".join(sections) + "</body></html>\n"
    )


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, numeric: Sequence[int] = ()
) -> str:
    """A plain table; columns whose index is in ``numeric`` are right-aligned numbers."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            if i in numeric and isinstance(value, int):
                cells.append(f'<td class="n">{value:,}</td>')
            else:
                cells.append(f"<td>{escape(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        return '<p class="muted">None.</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _headline(data: ReportData) -> str:
    cards = []
    for name in ("total", *STATUSES):
        n = data.headline.get(name, 0)
        cards.append(
            f'<div class="card {name}" id="count-{name}"><dt>{escape(name)}</dt>'
            f'<dd data-count="{n}">{n:,}</dd></div>'
        )
    return (
        '<section id="headline"><h2>Headline</h2>'
        '<p class="muted">One row per subject and action (rejected input rows included), '
        "as summary.json counts them.</p>"
        f'<dl class="cards">{"".join(cards)}</dl></section>'
    )


def _grid(rows: Mapping[str, Mapping[str, int]], order: Sequence[str], first: str) -> str:
    keys = [k for k in order if any(r.get(k) for r in rows.values())]
    keys += sorted({k for r in rows.values() for k in r} - set(order))
    body = [[name, *(r.get(k, 0) for k in keys), sum(r.values())] for name, r in rows.items()]
    return _table([first, *keys, "total"], body, numeric=range(1, len(keys) + 2))


def _jobs(data: ReportData) -> str:
    status_rows = [(s, data.by_status.get(s, 0)) for s in STATUSES if data.by_status.get(s)]
    chart = charts.stacked_bars(
        data.by_regulation, STATUSES, label="Jobs by regulation, split by status"
    )
    return (
        '<section id="jobs"><h2>Jobs by status and by regulation</h2>'
        + _table(["status", "jobs"], status_rows, numeric=[1])
        + chart
        + _grid(data.by_regulation, STATUSES, "regulation")
        + "</section>"
    )


def _products(data: ReportData) -> str:
    chart = charts.stacked_bars(data.products, OUTCOMES, label="Product outcomes per product")
    return (
        '<section id="products"><h2>Product outcomes</h2>'
        '<p class="muted">One row per job and product. <code>ids_not_found</code>: the product '
        "holds no data for the identities; <code>not_provisioned</code>: the org does not have "
        "the product.</p>"
        + (chart + _grid(data.products, OUTCOMES, "product") if data.products else "<p>None.</p>")
        + "</section>"
    )


def _over_time(data: ReportData) -> str:
    s = data.series
    chart = charts.line_chart(
        s.labels,
        {"submitted": s.submitted, "finished": s.finished},
        label=f"Jobs submitted and finished, cumulative per {s.unit}",
    )
    rows = list(zip(s.labels, s.submitted, s.finished, strict=True))
    return (
        f'<section id="over-time"><h2>Submitted and finished over time (per {s.unit}, UTC)</h2>'
        + (chart if rows else "")
        + f"<details><summary>Table ({len(rows)} {s.unit}s)</summary>"
        + _table([s.unit, "submitted (cumulative)", "finished (cumulative)"], rows, numeric=[1, 2])
        + "</details></section>"
    )


def _cap(data: ReportData) -> str:
    cap = data.cap
    chart = charts.cap_chart(
        cap.days, cap.cap, cap.pending, label="Jobs submitted per day against the daily cap"
    )
    return (
        '<section id="daily-cap"><h2>Daily cap</h2>'
        f'<p id="days-needed">Cap: <strong>{cap.cap:,}</strong> jobs per UTC day. '
        f"Jobs not yet submitted: <strong>{cap.pending:,}</strong>; days still needed: "
        f"<strong>{cap.days_needed}</strong>.</p>"
        + chart
        + _table(["UTC day", "jobs submitted"], cap.days, numeric=[1])
        + "</section>"
    )


def _errors(data: ReportData) -> str:
    rows = [(g.source, g.code, g.message, g.count, ", ".join(g.example_keys)) for g in data.errors]
    return (
        '<section id="errors"><h2>Errors by response code</h2>'
        '<p class="muted">Failed jobs (the service refused the request, or the job ended in '
        "error) and failed products, grouped by code and the service's message.</p>"
        + _table(["from", "code", "message", "count", "example subject keys"], rows, numeric=[3])
        + "</section>"
    )


def _orgs(orgs: Mapping[str, Mapping[str, Any]]) -> str:
    """A section per org of a run with ``[[orgs]]``: its rows by status and by error code, the
    jobs created per UTC day against its cap, and its pauses at the cap."""
    parts = []
    for name, org in orgs.items():
        cap = org.get("daily_job_cap")
        paused = org.get("paused_until")
        state = (
            f"<p><strong>Paused at its daily cap</strong> until {escape(str(paused))}.</p>"
            if paused
            else ""
        )
        timeline = [
            (
                str(d.get("day")), int(d.get("jobs") or 0),
                "-" if d.get("workspace_jobs") is None else int(d["workspace_jobs"]),
                "-" if d.get("limit") is None else int(d["limit"]),
                "yes" if d.get("at_cap") else "no",
            )
            for d in org.get("cap_timeline") or []
        ]  # fmt: skip
        pauses = [(str(p.get("day")), str(p.get("resume_after"))) for p in org.get("pauses") or []]
        statuses = sorted((org.get("status") or {}).items())
        codes = sorted((org.get("error_codes") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
        parts.append(
            f'<div id="org-{escape(name)}"><h3>{escape(name)}</h3>'
            f'<p class="muted">IMS org {escape(str(org.get("org_id") or "-"))} · daily cap '
            f"{escape(f'{cap:,}' if isinstance(cap, int) else '-')}</p>"
            + state
            + _table(["status", "rows"], statuses, numeric=[1])
            + _table(["error code", "rows"], codes, numeric=[1])
            + _table(
                [
                    "UTC day",
                    "jobs created (this run)",
                    "jobs booked (workspace)",
                    "limit",
                    "at cap",
                ],
                timeline,
                numeric=[1, 2, 3],
            )
            + _table(["paused at the cap on", "resumes after (UTC)"], pauses)
            + "</div>"
        )
    return (
        '<section id="orgs"><h2>By org</h2>'
        '<p class="muted">Each IMS org of the run: its rows of status.parquet by status and '
        "error code, the jobs the service created per UTC day against the org's daily cap, "
        "and the days it stopped at that cap.</p>" + "".join(parts) + "</section>"
    )


def _rejects(data: ReportData) -> str:
    return (
        '<section id="rejects"><h2>Rejected input rows by reason</h2>'
        + _table(["reason", "rows", "message (most frequent)"], data.rejects, numeric=[1])
        + "</section>"
    )


def _deadlines(data: ReportData) -> str:
    rows = [
        (
            r.subject_key, r.action, r.regulation, r.status, _when(r.due_at),
            f"{r.days_left} (overdue)" if r.overdue else str(r.days_left),
        )
        for r in data.deadlines
    ]  # fmt: skip
    return (
        '<section id="deadlines"><h2>Closest to the legal deadline</h2>'
        f'<p>Overdue: <strong class="{"overdue" if data.overdue else ""}">{data.overdue:,}'
        f"</strong> · due within 7 days: <strong>{data.due_soon:,}</strong> "
        '<span class="muted">(subjects still open: pending, submitted, processing or in '
        "error)</span></p>"
        + _table(["subject key", "action", "regulation", "status", "due", "days left"], rows)
        + "</section>"
    )


def _canary(canary: Mapping[str, Any]) -> str:
    jobs, errors = int(canary.get("jobs") or 0), int(canary.get("errors") or 0)
    share = f"{errors / jobs:.1%}" if jobs else "-"
    held = (
        "<p><strong>The rest of the run is held</strong>: nothing more is submitted until "
        "<code>dsar submit</code> releases it (or <code>dsar cancel</code> abandons it).</p>"
        if canary.get("held")
        else ""
    )
    rows = [
        ("verdict", str(canary.get("state"))),
        ("canary users", f"{int(canary.get('users') or 0):,}"),
        ("jobs in error", f"{errors:,} of {jobs:,} ({share})"),
        ("still open", f"{int(canary.get('still_open') or 0):,}"),
        ("largest share that passes", f"{float(canary.get('max_error') or 0):.1%}"),
    ]
    return (
        '<section id="canary"><h2>Canary</h2>'
        "<p>The first users were sent alone; the rest went only if few enough of their jobs "
        "ended in error.</p>" + held + _table(["", "value"], rows) + "</section>"
    )


def _purges(data: ReportData) -> str:
    return (
        '<section id="purges"><h2>Personal data removed (dsar purge)</h2>'
        "<p>Result files and identity values this run no longer keeps. manifest.json lists "
        "the sha256 and size of every removed file; keys, statuses and outcomes are kept.</p>"
        + _table(["removed", "when (UTC)", "files", "bytes"], data.purges, numeric=[2, 3])
        + "</section>"
    )


def _reading_notes() -> str:
    windows = sorted(RESPONSE_WINDOWS.items())
    table = _table(["regulation", "window", "source"], [(k, str(w), w.source) for k, w in windows])
    return (
        '<section id="notes"><h2>How to read this report</h2><ul>'
        "<li>Counts are per subject and action; one subject asking for access and deletion "
        "counts twice. The Parquet files beside this page hold every row.</li>"
        "<li>Deadlines run from the input's <code>received_at</code> (or, without it, from when "
        "the run first saw the subject) over the regulation's initial response window below; "
        "the clock stops when the job completes. Extensions the laws allow are not applied.</li>"
        "<li>Subject keys are your own keys (or keyed hashes with <code>--redact-keys</code>); "
        "no identity value appears on this page.</li></ul>"
        f"<details><summary>Response windows</summary>{table}</details></section>"
    )
