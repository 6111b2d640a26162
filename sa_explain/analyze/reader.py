"""Find the ``sa_explain/1`` records in log files and Sentry exports and load them into DuckDB.

Where the record sits depends on the surface that wrote it, so every line is looked at
in all the places it can be:

* ``{"sa_explain": {...}, ...}`` — structlog's ``JSONRenderer`` and python-json-logger
  (``record.sa_explain`` becomes a nested object);
* ``{"sa_explain": "{\\"schema\\": ...}"}`` — a formatter that stringified the dict;
* ``{"contexts": {"sa_explain": {...}}, "timestamp": ...}`` — a Sentry event;
* ``{"schema": "sa_explain/1", ...}`` — a bare record (``sa-explain demo --json``).

Files are JSON lines (optionally gzip-compressed), one JSON array of events, or one or
more pretty-printed JSON documents (a Sentry event downloaded from its page).

Policy on input that is not ours (documented in docs/analyze.md):

* a line that is valid JSON but carries no record (other log lines in the same file) is
  skipped and counted: application logs mix many kinds of lines;
* a record whose ``schema`` is another version is skipped and counted, with a warning;
* a line that is not JSON (binary, truncated, cut mid-write) stops the run with the file
  and line number, unless ``skip_invalid`` is set, in which case it is counted;
* a file with no record at all is an error: it is almost certainly the wrong file.

The heavy lifting (JSON parsing) is DuckDB's; Python only peeks at the first megabyte of
each file to choose the format and give precise errors, and re-scans a file only when
DuckDB has already said it is broken, to find the exact line.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Format = Literal["ndjson", "array", "document"]

FIELDS: tuple[tuple[str, str], ...] = (
    ("schema", "schema"),
    ("timestamp", "timestamp"),
    ("error", "error"),
    ("cause", "cause"),
    ("table_name", "table"),
    ("mapper", "mapper"),
    ("operation", "operation"),
    ("bind_name", "bind.name"),
    ("bind_role", "bind.role"),
    ("identity", "identity"),
    ("lag_seconds", "replica.lag_seconds"),
    ("lag_bytes", "replica.lag_bytes"),
    ("has_replica", "replica"),
    ("confidence", "confidence"),
    ("context_kind", "context.kind"),
    ("context_name", "context.name"),
    ("context_id", "context.id"),
    ("context_key", "context.key"),
    ("primary_row", "primary_row"),
)
"""(column, path inside the record) for every value the reports use."""

_PREFIXES = ("$.sa_explain.", "$.contexts.sa_explain.", "$.")
_HEAD_BYTES = 1 << 20


class InputError(ValueError):
    """Input that cannot be analysed; the message names the file (and line) and is one line."""


@dataclass
class Source:
    """One input file and how to read it."""

    path: str
    format: Format
    size: int
    compressed: bool = False


@dataclass
class LoadStats:
    """What was read: shown on stderr and in ``--format json`` output."""

    files: int = 0
    lines: int = 0
    records: int = 0
    foreign: int = 0
    other_schema: int = 0
    invalid: int = 0
    no_timestamp: int = 0
    schemas: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "lines": self.lines,
            "records": self.records,
            "skipped_foreign": self.foreign,
            "skipped_other_schema": self.other_schema,
            "skipped_invalid": self.invalid,
            "without_timestamp": self.no_timestamp,
        }


def _open_head(path: str) -> tuple[bytes, bool]:
    with open(path, "rb") as fh:
        magic = fh.read(2)
        fh.seek(0)
        if magic == b"\x1f\x8b":
            with gzip.open(fh) as gz:
                try:
                    return gz.read(_HEAD_BYTES), True
                except (OSError, EOFError) as exc:
                    raise InputError(f"{path}: broken gzip data ({exc})") from None
        return fh.read(_HEAD_BYTES), False


def _describe(value: object) -> str:
    if isinstance(value, dict):
        keys = ", ".join(list(value)[:4])
        return f"a JSON object without an 'sa_explain' record (keys: {keys})" if keys else "an empty JSON object"
    return f"a JSON {type(value).__name__.replace('str', 'string').replace('dict', 'object')}, not an object"


def find_record(obj: object) -> tuple[dict[str, Any] | None, str | None]:
    """The ``sa_explain`` record inside one parsed line or event, and its schema.

    Returns ``(record, None)`` for an ``sa_explain/1`` record, ``(None, schema)`` for a
    record of another schema version, and ``(None, None)`` for foreign JSON. The
    pure-Python counterpart of the SQL in :func:`load`; used for error messages and by
    the plain-Python benchmark baseline.
    """
    if not isinstance(obj, dict):
        return None, None
    candidate: object = obj.get("sa_explain")
    if candidate is None:
        contexts = obj.get("contexts")
        if isinstance(contexts, dict):
            candidate = contexts.get("sa_explain")
    if isinstance(candidate, str):
        try:
            candidate = json.loads(candidate)
        except ValueError:
            return None, None
    if candidate is None and isinstance(obj.get("schema"), str):
        candidate = obj
    if not isinstance(candidate, dict):
        return None, None
    schema = candidate.get("schema")
    if not isinstance(schema, str) or not schema.startswith("sa_explain/"):
        return None, None
    if schema != "sa_explain/1":
        return None, schema
    return candidate, None


def inspect(path: str) -> Source:
    """Check that ``path`` is a readable, non-empty JSON file and tell its format.

    Raises :class:`InputError` with a one-line reason (and the line number where one
    applies) for a missing file, a directory, binary data, an empty file, or a first line
    that is not JSON.
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory; pass the log files in it (e.g. {path.rstrip('/')}/*.log)")
    try:
        head, compressed = _open_head(path)
    except PermissionError:
        raise InputError(f"{path}: cannot read the file: permission denied") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    size = os.path.getsize(path)
    if not head.strip():
        raise InputError(f"{path}: empty file: no records to analyse")
    nul = head.find(b"\x00")
    if nul >= 0:
        line = head.count(b"\n", 0, nul) + 1
        raise InputError(f"{path}:{line}: binary data (NUL byte at offset {nul}); expected JSON lines or a Sentry export")
    text = head.decode("utf-8", errors="replace")
    if "\ufffd" in text[: len(text) - 4]:  # a multi-byte character may be cut at the end
        off = text.index("\ufffd")
        line = text.count("\n", 0, off) + 1
        raise InputError(f"{path}:{line}: not UTF-8 text (binary data?); expected JSON lines or a Sentry export")
    stripped = text.lstrip("\ufeff \t\r\n")
    first_line_no = text[: len(text) - len(stripped)].count("\n") + 1
    first = stripped[:1]
    if first == "[":
        return Source(path, "array", size, compressed)
    if first != "{":
        raise InputError(
            f"{path}:{first_line_no}: not JSON (starts with {stripped[:20]!r}); "
            "expected JSON lines or a Sentry event export"
        )
    first_line = stripped.split("\n", 1)[0]
    try:
        json.loads(first_line)
        return Source(path, "ndjson", size, compressed)
    except ValueError:
        pass
    # Not one JSON object per line: a pretty-printed document (a downloaded Sentry event),
    # or a broken first line. Only a whole-document parse can tell; such files are small.
    if len(head) < _HEAD_BYTES or size <= 64 * _HEAD_BYTES:
        locate_error(Source(path, "document", size, compressed))
        return Source(path, "document", size, compressed)
    raise InputError(f"{path}:{first_line_no}: invalid JSON on the first line")


def _read_text(src: Source) -> str:
    opener: Callable[..., Any] = gzip.open if src.compressed else open
    with opener(src.path, "rt", encoding="utf-8", errors="replace") as fh:
        return str(fh.read())


def _iter_lines(src: Source) -> Iterable[str]:
    opener: Callable[..., Any] = gzip.open if src.compressed else open
    with opener(src.path, "rt", encoding="utf-8", errors="replace") as fh:
        yield from fh


def locate_error(src: Source) -> None:
    """Re-read ``src`` in Python and raise :class:`InputError` at its first invalid JSON.

    Called only after DuckDB has refused the file (DuckDB's own line numbers are not
    reliable for broken lines), or for small pretty-printed documents. Returns normally
    when the file parses.
    """
    if src.format == "ndjson":
        for no, line in enumerate(_iter_lines(src), 1):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except ValueError as exc:
                col = getattr(exc, "colno", None)
                where = f", column {col}" if col else ""
                what = "truncated JSON" if _looks_truncated(line, exc) else "invalid JSON"
                raise InputError(f"{src.path}:{no}: {what} ({getattr(exc, 'msg', exc)}{where})") from None
        return
    text = _read_text(src)
    decoder = json.JSONDecoder()
    pos = 0
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t\r\n\ufeff":
            pos += 1
        if pos >= n:
            return
        try:
            _, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            what = "truncated JSON" if exc.pos >= n - 1 or exc.msg.startswith("Unterminated") else "invalid JSON"
            raise InputError(f"{src.path}:{exc.lineno}: {what} ({exc.msg}, column {exc.colno})") from None


def _looks_truncated(line: str, exc: ValueError) -> bool:
    pos = getattr(exc, "pos", None)
    msg = str(getattr(exc, "msg", ""))
    return pos is not None and (pos >= len(line.rstrip("\r\n")) or msg.startswith("Unterminated"))


def first_foreign(src: Source) -> str:
    """Describe the first line of ``src`` (for the 'no records' error): where and what it is."""
    if src.format == "ndjson":
        for no, line in enumerate(_iter_lines(src), 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except ValueError:
                    return f"{src.path}:{no}: invalid JSON"
                _, schema = find_record(obj)
                if schema:
                    return f"{src.path}:{no}: schema {schema!r} (this version reads sa_explain/1)"
                return f"{src.path}:{no}: {_describe(obj)}"
        return f"{src.path}: no lines"
    try:
        doc = json.loads(_read_text(src))
    except ValueError:
        return f"{src.path}:1: not a single JSON document"
    items = doc if isinstance(doc, list) else [doc]
    for item in items[:1]:
        return f"{src.path}:1: {_describe(item)}"
    return f"{src.path}:1: an empty JSON array"


def _paths() -> list[str]:
    return [prefix + path for prefix in _PREFIXES for _, path in FIELDS]


def _record_sql(obj: str) -> str:
    """SQL turning a JSON value ``obj`` (a line or an event) into the record columns."""
    n = len(FIELDS)
    paths = ", ".join(f"'{p}'" for p in _paths())
    inner = ", ".join(f"'$.{path}'" for _, path in FIELDS)
    ok = "(v[{i}] LIKE 'sa_explain/%')"
    pick = (
        f"CASE WHEN {ok.format(i=1)} THEN v[1:{n}] "
        f"WHEN {ok.format(i=n + 1)} THEN v[{n + 1}:{2 * n}] "
        f"WHEN {ok.format(i=2 * n + 1)} THEN v[{2 * n + 1}:{3 * n}] "
        f"WHEN json_type({obj}, '$.sa_explain') = 'VARCHAR' AND json_valid({obj} ->> '$.sa_explain') "
        f"THEN json_extract_string({obj} ->> '$.sa_explain', [{inner}]) END"
    )
    return (
        f"SELECT {pick} AS r, json_extract_string({obj}, '$.timestamp') AS envelope_ts, "
        f"{obj} IS NULL AS invalid "
        f"FROM (SELECT {obj}, json_extract_string({obj}, [{paths}]) AS v FROM __SOURCE__)"
    )


def _typed_columns() -> str:
    idx = {name: i + 1 for i, (name, _) in enumerate(FIELDS)}

    def col(name: str) -> str:
        return f"r[{idx[name]}]"

    ts = col("timestamp")
    cols = [
        f"coalesce(try_cast({ts} AS TIMESTAMPTZ), try_cast(envelope_ts AS TIMESTAMPTZ), "
        f"to_timestamp(try_cast(envelope_ts AS DOUBLE))) AS ts",
    ]
    for name, _ in FIELDS:
        if name in ("timestamp", "schema"):
            continue
        if name in ("lag_seconds", "confidence"):
            cols.append(f"try_cast({col(name)} AS DOUBLE) AS {name}")
        elif name == "lag_bytes":
            cols.append(f"try_cast({col(name)} AS BIGINT) AS {name}")
        elif name == "has_replica":
            cols.append(f"({col(name)} IS NOT NULL) AS {name}")
        else:
            cols.append(f"{col(name)} AS {name}")
    cols.append(f"{col('schema')} AS schema")
    return ", ".join(cols)


def _source_sql(src: Source, skip_invalid: bool) -> str:
    path = src.path.replace("'", "''")
    ignore = ", ignore_errors = true" if skip_invalid else ""
    if src.format == "ndjson":
        return f"read_ndjson_objects('{path}'{ignore})"
    if src.format == "array":
        # Each array element is one event.
        return f"read_json_objects('{path}', format = 'array'{ignore})"
    return f"read_json_objects('{path}', format = 'unstructured'{ignore})"


def create_table(con: Any) -> None:
    """The ``events`` table every report reads."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE events (ts TIMESTAMPTZ, error VARCHAR, cause VARCHAR, "
        "table_name VARCHAR, mapper VARCHAR, operation VARCHAR, bind_name VARCHAR, bind_role VARCHAR, "
        "identity VARCHAR, lag_seconds DOUBLE, lag_bytes BIGINT, has_replica BOOLEAN, confidence DOUBLE, "
        "context_kind VARCHAR, context_name VARCHAR, context_id VARCHAR, context_key VARCHAR, "
        "primary_row VARCHAR, schema VARCHAR)"
    )


_REC_TYPE = (
    'STRUCT("schema" VARCHAR, "timestamp" VARCHAR, error VARCHAR, cause VARCHAR, "table" VARCHAR, '
    "mapper VARCHAR, operation VARCHAR, bind STRUCT(name VARCHAR, role VARCHAR), identity JSON, "
    "replica STRUCT(lag_seconds DOUBLE, lag_bytes BIGINT), confidence DOUBLE, "
    "context STRUCT(kind VARCHAR, name VARCHAR, id VARCHAR, \"key\" VARCHAR), primary_row VARCHAR)"
)

_TYPED_COLUMNS = (
    "coalesce(try_cast(s.timestamp AS TIMESTAMPTZ), try_cast(envelope_ts AS TIMESTAMPTZ), "
    "to_timestamp(try_cast(envelope_ts AS DOUBLE))) AS ts, s.error, s.cause, s.table AS table_name, "
    "s.mapper, s.operation, s.bind.name AS bind_name, s.bind.role AS bind_role, "
    "CAST(s.identity AS VARCHAR) AS identity, s.replica.lag_seconds, s.replica.lag_bytes, "
    "s.replica IS NOT NULL AS has_replica, s.confidence, s.context.kind AS context_kind, "
    "s.context.name AS context_name, s.context.id AS context_id, s.context.key AS context_key, "
    "s.primary_row, s.schema"
)


def _typed_sql(src: Source) -> str:
    """The fast path: DuckDB's typed JSON reader materialises only the keys the reports use.

    It refuses a file whose ``sa_explain`` is sometimes a string or whose lines are not
    all objects ('JSON transform error'); :func:`load` then falls back to the generic
    path, which handles every shape.
    """
    path = src.path.replace("'", "''")
    fmt = {"ndjson": "newline_delimited", "array": "array", "document": "unstructured"}[src.format]
    return (
        "SELECT CASE WHEN sa_explain.schema IS NOT NULL THEN sa_explain ELSE contexts.sa_explain END AS s, "
        "\"timestamp\" AS envelope_ts, false AS invalid, "
        "coalesce(top_schema LIKE 'sa_explain/%', false) AS bare "
        f"FROM read_json('{path}', format = '{fmt}', records = true, "
        f"columns = {{'sa_explain': '{_REC_TYPE}', "
        f"'contexts': 'STRUCT(sa_explain {_REC_TYPE})', 'timestamp': 'VARCHAR', 'schema': 'VARCHAR'}}) "
        "AS t(sa_explain, contexts, \"timestamp\", top_schema)"
    )


def load(
    con: Any,
    sources: list[Source],
    *,
    skip_invalid: bool = False,
    progress: Callable[[float, str], None] | None = None,
) -> LoadStats:
    """Load every record of ``sources`` into the ``events`` table of DuckDB ``con``.

    ``progress(fraction, label)`` is called from this thread while DuckDB works (it is
    polled every 0.1 s with DuckDB's own ``query_progress()``), so a progress bar costs
    nothing per line.
    """
    import duckdb

    create_table(con)
    stats = LoadStats(files=len(sources))
    total = sum(s.size for s in sources) or 1
    done = 0
    for src in sources:
        label = os.path.basename(src.path)
        report = None if progress is None else (
            lambda f, d=done, s=src, lb=label: progress((d + f * s.size) / total, lb)  # type: ignore[misc]
        )
        typed = not skip_invalid
        while True:
            if typed:
                sql = f"SELECT {_TYPED_COLUMNS}, invalid, bare FROM ({_typed_sql(src)})"
            else:
                inner = _record_sql("json").replace("__SOURCE__", _source_sql(src, skip_invalid))
                sql = f"SELECT {_typed_columns()}, invalid, false AS bare FROM ({inner})"
            try:
                _run_with_progress(con, f"CREATE OR REPLACE TEMP TABLE staged AS {sql}", report)
            except duckdb.Error as exc:
                text = str(exc)
                if "Malformed JSON" in text:
                    locate_error(src)
                if typed:
                    typed = False  # a shape the typed reader refuses: take the generic path
                    continue
                locate_error(src)
                raise InputError(f"{src.path}: cannot read as JSON ({text.splitlines()[0]})") from None
            if typed and con.execute("SELECT bool_or(bare) FROM staged").fetchone()[0]:
                typed = False  # bare records (sa-explain demo --json): only the generic path reads them
                continue
            break
        done += src.size
        row = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE invalid), "
            "count(*) FILTER (WHERE schema LIKE 'sa_explain/%' AND schema <> 'sa_explain/1'), "
            "count(*) FILTER (WHERE schema = 'sa_explain/1') FROM staged"
        ).fetchone()
        lines, invalid, other, ours = (int(x) for x in row)
        stats.lines += lines
        stats.other_schema += other
        if other:
            for name, n in con.execute(
                "SELECT schema, count(*) FROM staged WHERE schema LIKE 'sa_explain/%' "
                "AND schema <> 'sa_explain/1' GROUP BY 1"
            ).fetchall():
                stats.schemas[str(name)] = stats.schemas.get(str(name), 0) + int(n)
        if ours == 0:
            raise InputError(f"no sa_explain/1 record in the file; first line: {first_foreign(src)}")
        con.execute("INSERT INTO events SELECT * EXCLUDE (invalid, bare) FROM staged WHERE schema = 'sa_explain/1'")
        stats.records += ours
        stats.foreign += lines - ours - other - invalid
        stats.invalid += invalid
        con.execute("DROP TABLE staged")
    stats.no_timestamp = int(con.execute("SELECT count(*) FROM events WHERE ts IS NULL").fetchone()[0])
    if progress is not None:
        progress(1.0, "done")
    return stats


def _run_with_progress(con: Any, sql: str, progress: Callable[[float], None] | None) -> None:
    if progress is None:
        con.execute(sql)
        return
    box: dict[str, BaseException] = {}

    def work() -> None:
        try:
            con.execute(sql)
        except BaseException as exc:  # handed back to the caller's thread below
            box["exc"] = exc

    worker = threading.Thread(target=work, name="sa-explain-load", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
        try:
            pct = float(con.query_progress())
        except Exception:
            pct = -1.0
        if pct >= 0:
            progress(min(pct, 100.0) / 100.0)
    if "exc" in box:
        raise box["exc"]
    progress(1.0)


def elapsed(start: float) -> float:
    """Seconds since ``start`` (``time.perf_counter``), for the summary line."""
    return time.perf_counter() - start
