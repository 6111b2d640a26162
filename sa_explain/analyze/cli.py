"""``sa-explain analyze`` and ``sa-explain generate``: argument parsing and the run.

Every expected failure (missing DuckDB, unreadable or foreign input, a bad option value)
becomes a :class:`sa_explain.cli.CLIError`: one line on stderr, exit status 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import IO, Any

from sa_explain.analyze import generate as gen
from sa_explain.analyze import reports as rep
from sa_explain.cli import CLIError

INSTALL_HINT = "sa-explain analyze needs DuckDB: pip install 'sa-explain[cli]' (or pip install duckdb)"
PROGRESS_MIN_BYTES = 32 << 20
"""Inputs smaller than this finish before a bar is worth drawing (unless --progress)."""


def add_parser(subparsers: Any) -> None:
    """Register ``analyze`` and ``generate`` on the ``sa-explain`` subparsers."""
    p = subparsers.add_parser(
        "analyze",
        help="fleet-wide reports over logged explanations (JSON-lines logs, Sentry exports)",
        description=(
            "Read sa_explain/1 records from JSON-lines logs (structlog, python-json-logger; "
            ".gz works) and Sentry event exports, and report errors by cause x table x bind role, "
            "top identities, replica lag at error time, duplicate-submission clusters and a "
            "timeline per cause. Valid JSON lines without a record are skipped and counted; "
            "invalid JSON stops with the file and line (see --skip-invalid)."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="log files or Sentry exports (.json, .jsonl, .log, .gz)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format (default: table)")
    p.add_argument(
        "--report", action="append", choices=rep.REPORTS, metavar="NAME",
        help=f"only these reports (repeatable): {', '.join(rep.REPORTS)}; default: all",
    )
    p.add_argument("--since", metavar="TIME", help="from this time: ISO-8601 (UTC unless an offset is given) or a duration back from now (24h, 7d)")
    p.add_argument("--until", metavar="TIME", help="before this time (same forms as --since)")
    p.add_argument("--cause", action="append", metavar="CAUSE", help="only this cause (repeatable or comma-separated)")
    p.add_argument("--table", action="append", metavar="TABLE", help="only this table, with schema as logged (repeatable)")
    p.add_argument("--error", action="append", choices=("object_deleted", "stale_data"), help="only this error kind")
    p.add_argument("--role", action="append", metavar="ROLE", help="only this bind role: primary, replica, proxy, unknown")
    p.add_argument("--bind", action="append", metavar="NAME", help="only this bind name (repeatable)")
    p.add_argument("--context", action="append", metavar="NAME", help="only this task/request name (repeatable)")
    p.add_argument("--min-confidence", type=float, metavar="X", help="only records with confidence >= X (0..1)")
    p.add_argument("--top", type=int, default=10, metavar="N", help="identities to list (default 10)")
    p.add_argument("--window", default="60s", metavar="DURATION", help="largest gap inside a duplicate cluster (default 60s)")
    p.add_argument("--bucket", default="auto", metavar="DURATION", help="timeline bucket: 1m, 15m, 1h, 1d … (default: auto, at most 60 buckets)")
    p.add_argument("--limit", type=int, default=15, metavar="N", help="rows per report in table output (0: all; default 15)")
    p.add_argument("--plot", metavar="FILE", help="write causes over time to FILE: .html or .svg (no dependency), .png (matplotlib)")
    p.add_argument("--output", "-o", metavar="PATH", help="write the report to PATH instead of stdout (a directory for several CSV reports)")
    p.add_argument("--skip-invalid", action="store_true", help="count and skip lines that are not JSON instead of stopping")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None, help="always draw the progress bar on stderr")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never draw it (default: on a TTY, for large inputs)")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary line on stderr")
    p.set_defaults(func=run_analyze)

    g = subparsers.add_parser(
        "generate",
        help="write seeded synthetic logs of explained errors (for trying analyze and the query pack)",
        description="Write N generated sa_explain/1 records, deterministic for a seed, in a log or Sentry export shape.",
    )
    g.add_argument("out", metavar="OUT", help="output file, or - for stdout")
    g.add_argument("--events", type=int, default=10_000, metavar="N", help="number of records (default 10000)")
    g.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    g.add_argument("--format", choices=gen.FORMATS, default="structlog", help="line shape (default: structlog)")
    g.add_argument("--days", type=float, default=7.0, metavar="D", help="time span covered (default 7)")
    g.set_defaults(func=run_generate)


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def _filters(args: argparse.Namespace) -> rep.Filters:
    try:
        since = rep.parse_time(args.since) if args.since else None
        until = rep.parse_time(args.until) if args.until else None
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if since and until and since >= until:
        raise CLIError(f"--since ({args.since}) must be before --until ({args.until})")
    if args.min_confidence is not None and not 0.0 <= args.min_confidence <= 1.0:
        raise CLIError("--min-confidence must be between 0 and 1")
    return rep.Filters(
        since=since, until=until, causes=_split(args.cause), tables=_split(args.table),
        errors=_split(args.error), roles=_split(args.role), binds=_split(args.bind),
        contexts=_split(args.context), min_confidence=args.min_confidence,
    )


class _Bar:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.last = -1

    def __call__(self, fraction: float, label: str) -> None:
        pct = int(max(0.0, min(1.0, fraction)) * 100)
        if pct == self.last:
            return
        self.last = pct
        filled = pct * 30 // 100
        self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {pct:3d}% {label[:40]:<40}")
        self.stream.flush()

    def close(self) -> None:
        if self.last >= 0:
            self.stream.write("\r" + " " * 80 + "\r")
            self.stream.flush()


def run_analyze(args: argparse.Namespace) -> int:
    """The ``analyze`` subcommand: load, report, render, optionally plot."""
    try:
        import duckdb
    except ImportError:
        raise CLIError(INSTALL_HINT) from None
    from sa_explain.analyze import plot, reader, render

    filters = _filters(args)
    try:
        window = rep.parse_duration(args.window)
        bucket = None if args.bucket == "auto" else rep.bucket_seconds(args.bucket)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.top < 1:
        raise CLIError("--top must be at least 1")
    names = tuple(dict.fromkeys(args.report)) if args.report else rep.REPORTS
    if args.format == "csv" and len(names) > 1 and not (args.output and os.path.isdir(args.output)):
        raise CLIError(
            "--format csv writes one report: choose it with --report NAME, or give --output DIR for one file per report"
        )
    try:
        sources = [reader.inspect(p) for p in args.paths]
    except reader.InputError as exc:
        raise CLIError(str(exc)) from None
    total = sum(s.size for s in sources)
    show_bar = args.progress if args.progress is not None else (sys.stderr.isatty() and total >= PROGRESS_MIN_BYTES)
    bar = _Bar(sys.stderr) if show_bar else None
    start = time.perf_counter()
    con = duckdb.connect(":memory:")
    try:
        try:
            stats = reader.load(con, sources, skip_invalid=args.skip_invalid, progress=bar)
        finally:
            if bar is not None:
                bar.close()
        reports = rep.run(con, filters, names, top=args.top, window=window, bucket=bucket)
        timeline = next((r for r in reports if r.name == "timeline"), None)
        if args.plot and timeline is None:
            timeline = rep.timeline(con, filters, bucket or rep.choose_bucket(con, filters)[1])
    except reader.InputError as exc:
        raise CLIError(str(exc)) from None
    except duckdb.Error as exc:
        raise CLIError(f"query failed: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    seconds = time.perf_counter() - start
    meta: dict[str, Any] = {"input": stats.to_dict(), "filters": filters.to_dict(), "seconds": round(seconds, 3)}
    if not args.quiet:
        _summary(stats, seconds)
    if args.plot:
        assert timeline is not None
        try:
            plot.write(timeline, args.plot, {"files": ", ".join(args.paths), "records": stats.records, **filters.to_dict()})
        except plot.PlotError as exc:
            raise CLIError(str(exc)) from None
    if args.format == "csv" and args.output and os.path.isdir(args.output):
        for r in reports:
            _write(os.path.join(args.output, f"{r.name}.csv"), render.to_csv(r))
        return 0
    if args.format == "json":
        text = render.to_json(reports, meta) + "\n"
    elif args.format == "csv":
        text = render.to_csv(reports[0])
    else:
        text = render.table(reports, args.limit)
    if args.output:
        _write(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    except OSError as exc:
        raise CLIError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _summary(stats: Any, seconds: float) -> None:
    parts = [f"{stats.records:,} records from {stats.files} file{'s' if stats.files != 1 else ''} in {seconds:.2f}s"]
    if stats.foreign:
        parts.append(f"{stats.foreign:,} lines without a record skipped")
    if stats.other_schema:
        schemas = ", ".join(f"{k} ×{v:,}" for k, v in sorted(stats.schemas.items()))
        parts.append(f"{stats.other_schema:,} records of another schema skipped ({schemas})")
    if stats.invalid:
        parts.append(f"{stats.invalid:,} invalid lines skipped")
    if stats.no_timestamp:
        parts.append(f"{stats.no_timestamp:,} without a timestamp (left out of time filters and the timeline)")
    print("sa-explain: " + "; ".join(parts), file=sys.stderr)


def run_generate(args: argparse.Namespace) -> int:
    """The ``generate`` subcommand."""
    if args.events < 0:
        raise CLIError("--events must be >= 0")
    if args.days <= 0:
        raise CLIError("--days must be > 0")
    if args.out == "-":
        gen.write(sys.stdout, args.events, args.seed, args.format, args.days)
        return 0
    try:
        with open(args.out, "w", encoding="utf-8") as fh:
            n = gen.write(fh, args.events, args.seed, args.format, args.days)
    except OSError as exc:
        raise CLIError(f"{args.out}: cannot write: {exc.strerror or exc}") from None
    print(f"sa-explain: wrote {n:,} {args.format} records to {args.out}", file=sys.stderr)
    return 0
