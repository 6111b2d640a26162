"""``--plot FILE``: causes over time as a stacked bar chart.

``.svg`` and ``.html`` are written by hand (no dependency, no JavaScript: the HTML page is
the SVG inline plus a legend, so it opens anywhere, including mail attachments and CI
artifacts, and hover tooltips are SVG ``<title>`` elements). ``.png`` uses matplotlib
when it is installed; without it the error says how to get it or which format to use.
"""

from __future__ import annotations

import html
import importlib
import math
from datetime import datetime
from typing import Any

from sa_explain.analyze.reports import Report, plain

PALETTE = {
    "replica_lag": "#4e79a7",
    "row_deleted": "#e15759",
    "concurrent_update": "#f28e2b",
    "duplicate_submission": "#b07aa1",
    "rowcount_unreliable": "#76b7b2",
    "primary_key_changed": "#edc948",
    "unknown": "#9c9c9c",
}
_EXTRA = ("#59a14f", "#ff9da7", "#9c755f", "#bab0ac")


class PlotError(ValueError):
    """The chart cannot be written (unknown extension, PNG without matplotlib)."""


def _series(report: Report) -> tuple[list[datetime], list[str], dict[str, list[int]]]:
    buckets: list[datetime] = sorted({row[0] for row in report.rows})
    causes: list[str] = sorted({str(row[1]) for row in report.rows}, key=lambda c: (c not in PALETTE, list(PALETTE).index(c) if c in PALETTE else 0, c))
    index = {b: i for i, b in enumerate(buckets)}
    series = {c: [0] * len(buckets) for c in causes}
    for bucket, cause, n in report.rows:
        series[str(cause)][index[bucket]] += int(n)
    return buckets, causes, series


def _color(cause: str, i: int) -> str:
    return PALETTE.get(cause, _EXTRA[i % len(_EXTRA)])


def _nice_max(value: int) -> tuple[float, float]:
    if value <= 0:
        return 1.0, 1.0
    raw = value / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return step * math.ceil(value / step), step


def _label(b: datetime) -> str:
    text = str(plain(b))
    return text[5:16].replace("T", " ")


def svg(report: Report, title: str = "sa-explain: errors per cause over time") -> str:
    """A self-contained SVG stacked bar chart of the timeline report."""
    buckets, causes, series = _series(report)
    width, height = 960, 420
    left, right, top, bottom = 64, 200, 40, 70
    pw, ph = width - left - right, height - top - bottom
    totals = [sum(series[c][i] for c in causes) for i in range(len(buckets))]
    ymax, step = _nice_max(max(totals, default=0))
    n = max(len(buckets), 1)
    bw = pw / n
    e = html.escape
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">',
        f"<title>{e(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="24" font-size="15" font-weight="600">{e(title)}</text>',
    ]
    y = 0.0
    while y <= ymax + 1e-9:
        py = top + ph - ph * y / ymax
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py:.1f}" y2="{py:.1f}" stroke="#e6e6e6"/>')
        out.append(f'<text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end" fill="#555">{y:,.0f}</text>')
        y += step
    for i, b in enumerate(buckets):
        base = 0
        x = left + i * bw
        for j, c in enumerate(causes):
            v = series[c][i]
            if not v:
                continue
            y0 = top + ph - ph * (base + v) / ymax
            h = ph * v / ymax
            out.append(
                f'<rect x="{x + bw * 0.08:.2f}" y="{y0:.2f}" width="{max(bw * 0.84, 0.5):.2f}" height="{h:.2f}" '
                f'fill="{_color(c, j)}"><title>{e(_label(b))} UTC · {e(c)}: {v:,}</title></rect>'
            )
            base += v
    every = max(1, math.ceil(n / 8))
    for i in range(0, len(buckets), every):
        x = left + i * bw + bw / 2
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#555"/>')
        out.append(
            f'<text x="{x:.1f}" y="{top + ph + 18}" text-anchor="middle" fill="#555">{e(_label(buckets[i]))}</text>'
        )
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#333"/>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 24}" text-anchor="middle" fill="#333">{e(report.title)} (UTC)</text>')
    for j, c in enumerate(causes):
        ly = top + 10 + j * 22
        total = sum(series[c])
        out.append(f'<rect x="{left + pw + 20}" y="{ly - 10}" width="14" height="14" fill="{_color(c, j)}"/>')
        out.append(f'<text x="{left + pw + 40}" y="{ly + 2}">{e(c)} ({total:,})</text>')
    out.append("</svg>")
    return "\n".join(out)


def html_page(report: Report, meta: dict[str, Any]) -> str:
    """One HTML file with the SVG inline: no scripts, no external resources."""
    chart = svg(report)
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in meta.items()
    )
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>sa-explain analyze: causes over time</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222}"
        "table{border-collapse:collapse;margin-top:16px}th,td{text-align:left;padding:2px 12px 2px 0;"
        "font-size:13px}th{color:#555;font-weight:500}</style></head><body>\n"
        f"{chart}\n<table>{rows}</table>\n</body></html>\n"
    )


def png(report: Report, path: str) -> None:
    """The same chart through matplotlib (only when it is installed)."""
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        raise PlotError(
            f"{path}: PNG needs matplotlib (pip install matplotlib); or write .svg or .html, which need nothing"
        ) from None
    buckets, causes, series = _series(report)
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=100)
    bottom = [0] * len(buckets)
    xs = list(range(len(buckets)))
    for j, c in enumerate(causes):
        ax.bar(xs, series[c], bottom=bottom, color=_color(c, j), label=f"{c} ({sum(series[c]):,})", width=0.84)
        bottom = [a + b for a, b in zip(bottom, series[c], strict=True)]
    every = max(1, math.ceil(len(buckets) / 8))
    ax.set_xticks(xs[::every], [_label(b) for b in buckets[::every]])
    ax.set_title("sa-explain: errors per cause over time")
    ax.set_xlabel(f"{report.title} (UTC)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(report: Report, path: str, meta: dict[str, Any]) -> None:
    """Write the chart to ``path``; the extension chooses the format."""
    lower = path.lower()
    if lower.endswith(".png"):
        png(report, path)
        return
    if lower.endswith(".svg"):
        text = svg(report)
    elif lower.endswith((".html", ".htm")):
        text = html_page(report, meta)
    else:
        raise PlotError(f"{path}: unknown chart format; use .html, .svg or .png")
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise PlotError(f"{path}: cannot write the chart: {exc.strerror or exc}") from None
