"""The five fleet-wide questions, as SQL over the ``events`` table that :mod:`.reader` fills.

Each report is plain data (:class:`Report`: name, title, columns, rows) so rendering,
plotting and the tests that compare it with the query pack (``docs/queries/``) share it.
The definitions match the query pack exactly (same grouping, same percentile method,
same duplicate-cluster rule), which is what lets the tests demand equal counts:

* percentiles are continuous (linear interpolation: DuckDB ``quantile_cont``, PostgreSQL
  ``percentile_cont``, ClickHouse ``quantileExactInclusive``);
* a duplicate cluster is a run of records with the same ``context.key`` where each record
  follows the previous one by at most ``window`` seconds (integer milliseconds), kept
  when it holds at least two distinct ``context.id`` (a task retried under its own id is
  one operation, not a duplicate);
* timeline buckets are aligned on the Unix epoch in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

REPORTS = ("summary", "by_cause", "identities", "lag", "duplicates", "timeline")

_BUCKETS = (
    ("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3600), ("6h", 21_600), ("1d", 86_400), ("7d", 604_800),
)


@dataclass
class Filters:
    """What to keep; every field narrows (AND), lists widen (OR within the field)."""

    since: datetime | None = None
    until: datetime | None = None
    causes: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    binds: list[str] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    min_confidence: float | None = None

    def sql(self) -> tuple[str, list[Any]]:
        """A WHERE clause (``TRUE`` when nothing is filtered) and its parameters."""
        parts: list[str] = []
        params: list[Any] = []
        if self.since is not None:
            parts.append("ts >= ?")
            params.append(self.since)
        if self.until is not None:
            parts.append("ts < ?")
            params.append(self.until)
        for column, values in (
            ("cause", self.causes), ("table_name", self.tables), ("error", self.errors),
            ("bind_role", self.roles), ("bind_name", self.binds), ("context_name", self.contexts),
        ):
            if values:
                parts.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params.extend(values)
        if self.min_confidence is not None:
            parts.append("confidence >= ?")
            params.append(self.min_confidence)
        return (" AND ".join(parts) or "TRUE"), params

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if value in (None, []):
                continue
            out[key] = _iso(value) if isinstance(value, datetime) else value
        return out


@dataclass
class Report:
    """One answer: a table of rows (tuples in ``columns`` order)."""

    name: str
    title: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    note: str = ""

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, (plain(v) for v in row), strict=True)) for row in self.rows]


def _iso(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def plain(value: Any) -> Any:
    """JSON-safe scalars: timestamps as ISO-8601 UTC strings, floats rounded for display."""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, float):
        return round(value, 3)
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``'90s'``, ``'15m'``, ``'2h'``, ``'7d'``, ``'1w'``; ValueError otherwise."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 7d)")
    n = float(m.group(1))
    return n * {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}[m.group(2)]


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """An ISO-8601 date/time (UTC when no offset is given) or a duration back from now."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        pass
    else:
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (use ISO-8601 like 2026-11-25T13:00Z, or a duration back from now like 24h)"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _where(filters: Filters) -> tuple[str, list[Any]]:
    return filters.sql()


def _fetch(con: Any, sql: str, params: list[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return cols, [tuple(r) for r in cur.fetchall()]


def summary(con: Any, filters: Filters) -> Report:
    """How many records, over what time, of which error kind."""
    where, params = _where(filters)
    cols, rows = _fetch(
        con,
        f"SELECT count(*) AS records, count(*) FILTER (WHERE error = 'object_deleted') AS object_deleted, "
        f"count(*) FILTER (WHERE error = 'stale_data') AS stale_data, min(ts) AS first_seen, max(ts) AS last_seen, "
        f"count(DISTINCT table_name) AS tables, count(DISTINCT cause) AS causes FROM events WHERE {where}",
        params,
    )
    return Report("summary", "Records", cols, rows)


def by_cause(con: Any, filters: Filters) -> Report:
    """Errors by cause × table × bind role: where to look first."""
    where, params = _where(filters)
    cols, rows = _fetch(
        con,
        f"SELECT cause, table_name AS \"table\", bind_role, count(*) AS errors, "
        f"round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct "
        f"FROM events WHERE {where} GROUP BY cause, table_name, bind_role "
        f"ORDER BY errors DESC, cause, \"table\" NULLS LAST, bind_role NULLS LAST",
        params,
    )
    return Report("by_cause", "Errors by cause × table × bind role", cols, rows)


def identities(con: Any, filters: Filters, top: int = 10) -> Report:
    """The rows that fail again and again (a hot row is a design problem, not bad luck)."""
    where, params = _where(filters)
    cols, rows = _fetch(
        con,
        f"SELECT table_name AS \"table\", identity, count(*) AS errors, "
        f"string_agg(DISTINCT cause, ',' ORDER BY cause) AS causes, min(ts) AS first_seen, max(ts) AS last_seen "
        f"FROM events WHERE {where} AND identity IS NOT NULL "
        f"GROUP BY table_name, identity ORDER BY errors DESC, \"table\" NULLS LAST, identity LIMIT {int(top)}",
        params,
    )
    return Report("identities", f"Top {int(top)} identities", cols, rows)


def lag(con: Any, filters: Filters) -> Report:
    """How far behind the replica was when the error happened (records with replica state)."""
    where, params = _where(filters)
    select = (
        "count(*) AS errors, count(lag_seconds) AS measured, "
        "quantile_cont(lag_seconds, 0.5) AS p50_s, quantile_cont(lag_seconds, 0.95) AS p95_s, "
        "max(lag_seconds) AS max_s"
    )
    cols, rows = _fetch(
        con,
        f"SELECT * FROM (SELECT bind_name, bind_role, {select} FROM events WHERE {where} AND has_replica "
        f"GROUP BY bind_name, bind_role ORDER BY errors DESC, bind_name) "
        f"UNION ALL SELECT '(all)', NULL, {select} FROM events WHERE {where} AND has_replica",
        params + params,
    )
    if rows and rows[-1][2] == 0:
        rows = []
    return Report("lag", "Replica lag at error time (seconds)", cols, rows)


def duplicates(con: Any, filters: Filters, window: float = 60.0) -> Report:
    """Same payload key, several operation ids, each within ``window`` seconds of the last."""
    where, params = _where(filters)
    window_ms = round(window * 1000)
    cols, rows = _fetch(
        con,
        f"""
        WITH f AS (
            SELECT context_key, context_id, context_name, table_name, cause, ts
            FROM events WHERE {where} AND context_key IS NOT NULL AND ts IS NOT NULL
        ), keys AS (
            -- A cluster needs two ids, so only keys seen with two ids can have one.
            SELECT context_key FROM f GROUP BY context_key HAVING count(DISTINCT context_id) >= 2
        ), k AS (
            SELECT f.*, epoch_ms(ts) AS ms FROM f SEMI JOIN keys USING (context_key)
        ), g AS (
            SELECT *, CASE WHEN ms - lag(ms) OVER (PARTITION BY context_key ORDER BY ms) > {window_ms}
                      THEN 1 ELSE 0 END AS brk
            FROM k
        ), c AS (
            SELECT *, sum(brk) OVER (PARTITION BY context_key ORDER BY ms) AS cluster FROM g
        )
        SELECT context_key AS "key", min(context_name) AS name, count(*) AS events,
               count(DISTINCT context_id) AS ids, min(ts) AS first_seen, max(ts) AS last_seen,
               (max(ms) - min(ms)) / 1000.0 AS span_s,
               string_agg(DISTINCT cause, ',' ORDER BY cause) AS causes,
               string_agg(DISTINCT table_name, ',' ORDER BY table_name) AS tables
        FROM c GROUP BY context_key, cluster HAVING count(DISTINCT context_id) >= 2
        ORDER BY events DESC, ids DESC, first_seen, "key"
        """,
        params,
    )
    return Report(
        "duplicates", f"Duplicate-submission clusters (same context.key, ≥2 ids, gaps ≤ {window:g}s)", cols, rows
    )


def choose_bucket(con: Any, filters: Filters, target: int = 60) -> tuple[str, int]:
    """The smallest standard bucket that keeps the timeline within ``target`` buckets."""
    where, params = _where(filters)
    span = con.execute(
        f"SELECT (epoch_ms(max(ts)) - epoch_ms(min(ts))) / 1000.0 FROM events WHERE {where}", params
    ).fetchone()[0]
    span = float(span or 0.0)
    for name, seconds in _BUCKETS:
        if span / seconds <= target:
            return name, seconds
    return _BUCKETS[-1]


def bucket_seconds(text: str) -> int:
    """``--bucket`` value to seconds (``auto`` is resolved by :func:`choose_bucket`)."""
    seconds = int(parse_duration(text))
    if seconds <= 0:
        raise ValueError(f"bucket must be at least 1s, got {text!r}")
    return seconds


def timeline(con: Any, filters: Filters, bucket: int) -> Report:
    """Counts per cause per time bucket (UTC, aligned on the epoch), long format."""
    where, params = _where(filters)
    ms = int(bucket) * 1000
    cols, rows = _fetch(
        con,
        f"SELECT to_timestamp((epoch_ms(ts) // {ms}) * {int(bucket)}) AS bucket, cause, count(*) AS errors "
        f"FROM events WHERE {where} AND ts IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2",
        params,
    )
    return Report("timeline", f"Errors per cause per {_bucket_name(bucket)}", cols, rows)


def _bucket_name(seconds: int) -> str:
    for name, s in _BUCKETS:
        if s == seconds:
            return name
    return f"{seconds}s"


def run(
    con: Any,
    filters: Filters,
    names: tuple[str, ...] = REPORTS,
    *,
    top: int = 10,
    window: float = 60.0,
    bucket: int | None = None,
) -> list[Report]:
    """Every report in ``names``, in the order given."""
    out: list[Report] = []
    for name in names:
        if name == "summary":
            out.append(summary(con, filters))
        elif name == "by_cause":
            out.append(by_cause(con, filters))
        elif name == "identities":
            out.append(identities(con, filters, top))
        elif name == "lag":
            out.append(lag(con, filters))
        elif name == "duplicates":
            out.append(duplicates(con, filters, window))
        elif name == "timeline":
            out.append(timeline(con, filters, bucket or choose_bucket(con, filters)[1]))
        else:
            raise ValueError(f"unknown report {name!r}; choose from {', '.join(REPORTS)}")
    return out
