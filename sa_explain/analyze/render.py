"""Report output: an aligned text table for people, JSON and CSV for tools.

The table view is for reading in a terminal, so long reports are cut to ``limit`` rows
(with a line saying how many more there are) and the timeline is pivoted to one column
per cause; JSON and CSV always carry every row in long format.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from sa_explain.analyze.reports import Report, plain

FORMAT_VERSION = "sa_explain_analyze/1"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return str(plain(value))[:19].replace("T", " ")
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _grid(columns: list[str], rows: list[list[str]], numeric: list[bool]) -> list[str]:
    widths = [len(c) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    lines = [fmt(columns), fmt(["-" * w for w in widths])]
    lines.extend(fmt(r) for r in rows)
    return lines


def _pivot(report: Report) -> tuple[list[str], list[list[Any]]]:
    causes = sorted({row[1] for row in report.rows}, key=lambda c: (c is None, c))
    by_bucket: dict[Any, dict[Any, int]] = {}
    for bucket, cause, n in report.rows:
        by_bucket.setdefault(bucket, {})[cause] = n
    rows = [[b, *(counts.get(c, 0) for c in causes), sum(counts.values())] for b, counts in by_bucket.items()]
    return ["bucket", *(str(c) for c in causes), "total"], rows


def table(reports: list[Report], limit: int = 15) -> str:
    """Every report as an aligned text table, ``limit`` rows each (0: all rows)."""
    out: list[str] = []
    for rep in reports:
        columns, rows = (_pivot(rep) if rep.name == "timeline" else (rep.columns, [list(r) for r in rep.rows]))
        if rep.name == "summary" and rows:
            out.append(rep.title)
            out.extend(f"  {c:<15}{_cell(v)}" for c, v in zip(columns, rows[0], strict=True))
            out.append("")
            continue
        out.append(rep.title)
        if not rows:
            out.append("  (none)")
            out.append("")
            continue
        cap = max(limit, 60) if rep.name == "timeline" and limit > 0 else limit
        shown = rows if cap <= 0 or len(rows) <= cap else rows[:cap]
        numeric = [all(isinstance(r[i], int | float) or r[i] is None for r in shown) and any(
            r[i] is not None for r in shown) for i in range(len(columns))]
        out.extend("  " + line for line in _grid(columns, [[_cell(v) for v in r] for r in shown], numeric))
        if len(shown) < len(rows):
            out.append(f"  … {len(rows) - len(shown):,} more rows (--limit 0, or --format json/csv for all)")
        if rep.note:
            out.append(f"  {rep.note}")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def to_json(reports: list[Report], meta: dict[str, Any]) -> str:
    """One JSON document: ``format``, the input/filter metadata, and every report's rows."""
    doc: dict[str, Any] = {"format": FORMAT_VERSION, **meta}
    doc["reports"] = {r.name: r.records() for r in reports}
    return json.dumps(doc, indent=2, ensure_ascii=False)


def to_csv(report: Report) -> str:
    """One report as CSV with a header row; timestamps as ISO-8601 UTC."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(report.columns)
    for row in report.rows:
        writer.writerow(["" if v is None else plain(v) for v in row])
    return buf.getvalue()
