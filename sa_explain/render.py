"""A terminal rendering of an explanation: the verdict first, then the facts, evidence and hints.

Used by the demo and available to applications that print explanations (management
commands, REPLs). Plain text by default; ``color=True`` adds ANSI emphasis only.
"""

from __future__ import annotations

import textwrap
from typing import Any

from sa_explain.explanation import Explanation

_BOLD, _DIM, _RED, _GREEN, _YELLOW, _CYAN, _RESET = (
    "\033[1m", "\033[2m", "\033[31m", "\033[32m", "\033[33m", "\033[36m", "\033[0m",
)


def render(explanation: Explanation | dict[str, Any], *, color: bool = False, width: int = 100) -> str:
    """The explanation as a readable block of text."""
    d = explanation.to_dict() if isinstance(explanation, Explanation) else explanation

    def c(code: str, s: str) -> str:
        return f"{code}{s}{_RESET}" if color else s

    def wrap(s: str, indent: str) -> str:
        return textwrap.fill(s, width=width, initial_indent=indent, subsequent_indent=indent + "  ")

    exc = str(d.get("exception") or "").rsplit(".", 1)[-1]
    cause = str(d.get("cause"))
    conf = d.get("confidence")
    lines = [
        c(_BOLD, f"{exc} explained: ") + c(_RED if cause != "unknown" else _YELLOW, cause)
        + c(_DIM, f"  (confidence {conf:.2f})" if isinstance(conf, int | float) else ""),
    ]
    ident = d.get("identity")
    row = f"{d.get('table') or '?'} {ident if ident is not None else '(identity unknown)'}"
    facts: list[tuple[str, str]] = [
        ("row", f"{row}   mapper {d.get('mapper') or '?'}"),
        ("operation", f"{d.get('operation')} (raise site: {d.get('site')}, from {d.get('source')})"),
    ]
    rows = d.get("rows")
    if isinstance(rows, dict):
        facts.append(("rows", f"expected {rows.get('expected')}, matched {rows.get('matched')}"))
    version = d.get("version")
    if isinstance(version, dict):
        facts.append(("version", f"expected {version.get('expected')}, wrote {version.get('new')}, "
                                 f"primary has {version.get('actual')}"))
    bind = d.get("bind")
    if isinstance(bind, dict):
        where = bind.get("address") or bind.get("database") or ""
        facts.append(("bind", f"{bind.get('name')} (role {bind.get('role')}, {bind.get('system')}"
                              f"{', ' + str(where) if where else ''})"))
    facts.append(("primary", f"row {d.get('primary_row')}"))
    replica = d.get("replica")
    if isinstance(replica, dict) and replica:
        lag = replica.get("lag_seconds")
        facts.append(("replica", f"lag {lag if lag is not None else '?'} s"
                                 + (f", {replica.get('lag_bytes')} bytes" if replica.get("lag_bytes") is not None else "")))
    ctx = d.get("context")
    if isinstance(ctx, dict) and ctx:
        facts.append(("context", f"{ctx.get('kind')} {ctx.get('name')} id {ctx.get('id')}"))
    twin = d.get("twin")
    if isinstance(twin, dict) and twin:
        facts.append(("twin", f"{twin.get('name')} id {twin.get('id')} ({twin.get('outcome')}, "
                              f"{twin.get('delta_ms')} ms before)"))
    for key, value in facts:
        lines.append(f"  {c(_CYAN, f'{key:<10}')} {value}")
    evidence = d.get("evidence") or []
    if evidence:
        lines.append(c(_BOLD, "Evidence"))
        lines.extend(wrap(f"• {e}", "  ") for e in evidence)
    hints = d.get("hints") or []
    if hints:
        lines.append(c(_BOLD, "What to do"))
        for i, h in enumerate(hints, 1):
            lines.append(wrap(f"{i}. {c(_GREEN, str(h.get('title')))}: {h.get('detail')}", "  "))
            lines.append(c(_DIM, f"     {h.get('docs')}"))
    return "\n".join(lines)
