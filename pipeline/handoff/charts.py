"""Inline SVG charts for report.html: no script, no font, no image file, no network.

Each function returns one ``<svg>`` element as a string, sized in CSS pixels, with a
``<title>`` and an ``aria-label`` so a screen reader (and a text search) finds what it shows.
Every label is escaped. Charts only draw; the numbers are always in a table beside them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

# One colour per status/outcome, readable on white and distinct for common colour blindness.
PALETTE = {
    "complete": "#1a7f37", "success": "#1a7f37", "processing": "#0969da",
    "submitted": "#54aeff", "pending": "#bf8700", "partial": "#bf8700",
    "ids_not_found": "#8c959f", "not_provisioned": "#d0d7de", "invalid_namespace": "#a475f9",
    "error": "#cf222e", "rejected": "#6e7781",
}  # fmt: skip
_FALLBACK = ("#0550ae", "#953800", "#8250df", "#116329", "#57606a")
FONT = "font-family:system-ui,sans-serif;font-size:12px"


def colour(name: str, index: int = 0) -> str:
    """The colour of a status or outcome; a fallback colour for other names."""
    return PALETTE.get(name, _FALLBACK[index % len(_FALLBACK)])


def _open(width: int, height: int, label: str) -> str:
    text = escape(label)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{text}" style="{FONT}">'
        f"<title>{text}</title>"
    )


def stacked_bars(
    rows: Mapping[str, Mapping[str, int]], order: Sequence[str], *, label: str, width: int = 640
) -> str:
    """One horizontal bar per row, split into segments in ``order`` (then any other key)."""
    keys = list(order) + sorted({k for r in rows.values() for k in r} - set(order))
    bar_h, gap, left = 18, 8, 170
    height = max(1, len(rows)) * (bar_h + gap) + 30
    biggest = max((sum(r.values()) for r in rows.values()), default=0) or 1
    scale = (width - left - 60) / biggest
    parts = [_open(width, height, label)]
    for i, (name, segments) in enumerate(rows.items()):
        y = i * (bar_h + gap)
        parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{escape(name)}</text>')
        x = float(left)
        for j, key in enumerate(keys):
            n = segments.get(key, 0)
            if not n:
                continue
            w = n * scale
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{max(w, 1):.1f}" height="{bar_h}" '
                f'fill="{colour(key, j)}"><title>{escape(key)}: {n:,}</title></rect>'
            )
            x += w
        total = sum(segments.values())
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 13}">{total:,}</text>')
    parts.append(_legend(keys, [k for k in keys if any(r.get(k) for r in rows.values())], height))
    parts.append("</svg>")
    return "".join(parts)


def _legend(keys: Sequence[str], shown: Sequence[str], height: int) -> str:
    out, x = [], 0
    for key in shown:
        j = keys.index(key)
        out.append(
            f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{colour(key, j)}"/>'
            f'<text x="{x + 14}" y="{height - 5}">{escape(key)}</text>'
        )
        x += 22 + 7 * len(key)
    return "".join(out)


def line_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[int]],
    *,
    label: str,
    width: int = 640,
    height: int = 220,
) -> str:
    """Lines over ``labels`` (x) for each named series (y from 0 to the largest value)."""
    left, bottom, top = 60, 40, 10
    parts = [_open(width, height, label)]
    peak = max((max(v) for v in series.values() if v), default=0) or 1
    span = max(1, len(labels) - 1)
    plot_w, plot_h = width - left - 20, height - bottom - top

    def xy(i: int, v: int) -> str:
        return f"{left + i * plot_w / span:.1f},{top + plot_h - v * plot_h / peak:.1f}"

    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 20}" y2="{top + plot_h}" '
        'stroke="#8c959f"/>'
        f'<text x="{left - 6}" y="{top + 10}" text-anchor="end">{peak:,}</text>'
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>'
    )
    if labels:
        parts.append(
            f'<text x="{left}" y="{top + plot_h + 16}">{escape(labels[0])}</text>'
            f'<text x="{width - 20}" y="{top + plot_h + 16}" text-anchor="end">'
            f"{escape(labels[-1])}</text>"
        )
    names = ("submitted", "finished")
    for j, (name, values) in enumerate(series.items()):
        fill = "#0969da" if name == names[0] else "#1a7f37" if name == names[1] else colour(name, j)
        points = " ".join(xy(i, v) for i, v in enumerate(values))
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{fill}" stroke-width="2"/>'
            f'<rect x="{left + 110 * j}" y="{height - 14}" width="10" height="10" fill="{fill}"/>'
            f'<text x="{left + 110 * j + 14}" y="{height - 5}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def cap_chart(
    days: Sequence[tuple[str, int]], cap: int, pending: int, *, label: str, width: int = 640
) -> str:
    """Columns of jobs per day, hatched columns for the days the pending jobs still need, and a
    dashed line at the cap (or a note when the cap is far above every column)."""
    height, left, bottom = 200, 84, 36
    ahead = [min(cap, pending - k * cap) for k in range(-(-pending // cap))] if cap > 0 else []
    peak = max([*(n for _, n in days), *ahead, 1])
    cap_in_scale = cap <= peak * 3  # else the columns would be slivers under the line
    peak = max(peak, cap) if cap_in_scale else peak
    plot_h, plot_w = height - bottom - 10, width - left - 20
    step = plot_w / max(len(days) + len(ahead), 1)
    bar_w = max(1.0, min(40.0, step * 0.8))
    parts = [_open(width, height, label)]
    parts.append(
        '<defs><pattern id="ahead" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="3" height="6" fill="#d4a72c"/></pattern></defs>'
        f'<text x="{left - 6}" y="{10 + plot_h}" text-anchor="end">0</text>'
    )

    def column(i: int, n: int, fill: str, tip: str) -> str:
        h = n * plot_h / peak
        return (
            f'<rect x="{left + i * step:.1f}" y="{10 + plot_h - h:.1f}" width="{bar_w:.1f}" '
            f'height="{h:.1f}" fill="{fill}"><title>{escape(tip)}</title></rect>'
        )

    for i, (day, n) in enumerate(days):
        parts.append(column(i, n, "#0969da", f"{day}: {n:,} jobs"))
    for k, n in enumerate(ahead):
        parts.append(column(len(days) + k, n, "url(#ahead)", f"day +{k + 1}: {n:,} jobs to go"))
    if cap_in_scale:
        cap_y = 10 + plot_h - cap * plot_h / peak
        parts.append(
            f'<line x1="{left}" y1="{cap_y:.1f}" x2="{width - 20}" y2="{cap_y:.1f}" '
            'stroke="#cf222e" stroke-dasharray="4 3"/>'
            f'<text x="{left - 6}" y="{cap_y + 4:.1f}" text-anchor="end">cap {cap:,}</text>'
        )
    else:
        parts.append(f'<text x="{left - 6}" y="20" text-anchor="end">{peak:,}</text>')
    note = "" if cap_in_scale else f"; cap {cap:,}: off scale"
    plural = "day" if len(ahead) == 1 else "days"
    parts.append(
        f'<text x="{left}" y="{height - 8}">blue: submitted per UTC day; hatched: still to '
        f"submit, {len(ahead)} {plural} at the cap{escape(note)}</text></svg>"
    )
    return "".join(parts)
