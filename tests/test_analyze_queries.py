"""`sa-explain analyze` and the query pack (docs/queries/) give the same answers on the same logs.

The queries are loaded from the docs files and run as written (only the input name is
replaced), on DuckDB, ClickHouse (chDB, embedded) and the real PostgreSQL server, so the
documentation cannot drift from what is tested.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sa_explain.analyze import generate
from sa_explain.cli import main
from tests._servers import require_module, require_url

QUERIES = Path(__file__).resolve().parent.parent / "docs" / "queries"
NAMES = ("by_cause", "identities", "lag", "duplicates", "timeline")
EVENTS = 6000
SEED = 11


def _ms(value: Any) -> int:
    """Epoch milliseconds from a datetime or an ISO / ClickHouse timestamp string (UTC)."""
    if isinstance(value, str):
        text = value.replace("Z", "+00:00").replace(" ", "T")
        value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return round(value.timestamp() * 1000)


def _identity(value: Any) -> str:
    return json.dumps(json.loads(value) if isinstance(value, str) else value, separators=(",", ":"))


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("logs")
    out = {}
    for fmt in ("structlog", "jsonlogger", "string", "sentry"):
        path = d / f"{fmt}.jsonl"
        with path.open("w") as fh:
            generate.write(fh, EVENTS, SEED, fmt)
        out[fmt] = path
    return out


def _analyze(path: Path, tmp: Path) -> dict[str, Any]:
    out = tmp / "report.json"
    rc = main(["analyze", str(path), "--format", "json", "--bucket", "1h", "--top", "1000000",
               "--no-progress", "-q", "-o", str(out)])
    assert rc == 0
    return dict(json.loads(out.read_text())["reports"])


@pytest.fixture(scope="module")
def expected(logs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The analysis's answers, in the normalised form every engine is compared with."""
    r = _analyze(logs["structlog"], tmp_path_factory.mktemp("a"))
    ident = {(x["table"], _identity(x["identity"])): x["errors"] for x in r["identities"]}
    return {
        "by_cause": {(x["cause"], x["table"], x["bind_role"]): x["errors"] for x in r["by_cause"]},
        "identities": ident,
        "lag": {
            (x["bind_name"], x["bind_role"]): (x["errors"], x["measured"], x["p50_s"], x["p95_s"], x["max_s"])
            for x in r["lag"] if x["bind_name"] != "(all)"
        },
        "duplicates": {(x["key"], x["events"], x["ids"], _ms(x["first_seen"]), _ms(x["last_seen"])) for x in r["duplicates"]},
        "timeline": {(_ms(x["bucket"]), x["cause"]): x["errors"] for x in r["timeline"]},
    }


def _compare(expected: dict[str, Any], results: dict[str, list[tuple[Any, ...]]]) -> None:
    assert {(c, t, b): n for c, t, b, n in results["by_cause"]} == expected["by_cause"]
    top = results["identities"]
    assert len(top) == 10
    # Ties may come out in another order per engine; every count must still be the analysis's.
    for table, identity, n, _first, _last in top:
        assert expected["identities"][(table, _identity(identity))] == n
    assert sorted((n for *_, n, _f, _l in top), reverse=True) == sorted(expected["identities"].values(), reverse=True)[:10]
    lag = {(b, r): (e, m, p50, p95, mx) for b, r, e, m, p50, p95, mx in results["lag"]}
    assert lag.keys() == expected["lag"].keys()
    for key, (e, m, p50, p95, mx) in lag.items():
        ee, em, ep50, ep95, emx = expected["lag"][key]
        assert (e, m) == (ee, em)
        # The analysis rounds to milliseconds for display; the engines return full precision.
        assert float(p50) == pytest.approx(ep50, abs=6e-4)
        assert float(p95) == pytest.approx(ep95, abs=6e-4)
        assert float(mx) == pytest.approx(emx, abs=6e-4)
    dups = {(k, int(ev), int(ids), _ms(f), _ms(last)) for k, _name, ev, ids, f, last in results["duplicates"]}
    assert dups == expected["duplicates"]
    assert len(dups) > 20  # the generator's bursts are there
    assert {(_ms(b), c): int(n) for b, c, n in results["timeline"]} == expected["timeline"]


def _sql(engine: str, name: str) -> str:
    return (QUERIES / engine / f"{name}.sql").read_text()


@pytest.mark.parametrize("shape", ["structlog", "string", "sentry"])
def test_duckdb_pack_matches_analyze(logs: dict[str, Path], expected: dict[str, Any], shape: str) -> None:
    duckdb = require_module("duckdb")
    con = duckdb.connect()  # type: ignore[attr-defined]
    con.execute("SET TimeZone = 'UTC'")
    path = str(logs[shape]).replace("'", "''")
    results = {n: con.execute(_sql("duckdb", n).replace("'app.log'", f"'{path}'")).fetchall() for n in NAMES}
    _compare(expected, results)


@pytest.mark.parametrize("shape", ["structlog", "sentry"])
def test_clickhouse_pack_matches_analyze(logs: dict[str, Path], expected: dict[str, Any], shape: str) -> None:
    chdb = require_module("chdb")
    results: dict[str, list[tuple[Any, ...]]] = {}
    for n in NAMES:
        sql = _sql("clickhouse", n).replace("'app.log'", f"'{logs[shape]}'")
        text = str(chdb.query(sql, "JSONCompactEachRow"))  # type: ignore[attr-defined]
        results[n] = [tuple(json.loads(line)) for line in text.splitlines() if line.strip()]
    _compare(expected, results)


@pytest.mark.server
def test_postgresql_pack_matches_analyze(logs: dict[str, Path], expected: dict[str, Any]) -> None:
    url = require_url("PG_URL").replace("postgresql+psycopg://", "postgresql://")
    psycopg = require_module("psycopg")
    with psycopg.connect(url) as conn:  # type: ignore[attr-defined]
        conn.execute("CREATE TEMP TABLE app_log (line jsonb)")
        with conn.cursor().copy("COPY app_log (line) FROM STDIN") as copy, logs["jsonlogger"].open() as fh:
            for line in fh:
                copy.write_row((line.rstrip("\n"),))
        results = {n: conn.execute(_sql("postgresql", n)).fetchall() for n in NAMES}
    _compare(expected, results)


def test_every_shape_gives_the_same_analysis(logs: dict[str, Path], expected: dict[str, Any], tmp_path: Path) -> None:
    for shape in ("jsonlogger", "string", "sentry"):
        r = _analyze(logs[shape], tmp_path)
        assert {(x["cause"], x["table"], x["bind_role"]): x["errors"] for x in r["by_cause"]} == expected["by_cause"]
        assert len(r["duplicates"]) == len(expected["duplicates"])


def test_pack_has_every_engine_and_question() -> None:
    for engine, ext in (("duckdb", "sql"), ("clickhouse", "sql"), ("postgresql", "sql"), ("bigquery", "sql")):
        for n in NAMES:
            assert (QUERIES / engine / f"{n}.{ext}").is_file(), f"{engine}/{n}.{ext}"
    for n in NAMES:
        assert (QUERIES / "loki" / f"{n}.logql").is_file()
        doc = json.loads((QUERIES / "elasticsearch" / f"{n}.json").read_text())
        assert "aggs" in doc or "aggregations" in doc
        sentry = json.loads((QUERIES / "sentry" / f"{n}.json").read_text())
        assert sentry.get("discover") or sentry.get("issue_search")


def test_by_cause_counts_match_a_plain_python_count(logs: dict[str, Path], expected: dict[str, Any]) -> None:
    counts: Counter[tuple[Any, Any, Any]] = Counter()
    for rec in generate.records(EVENTS, SEED):
        counts[(rec["cause"], rec["table"], (rec["bind"] or {}).get("role"))] += 1
    assert dict(counts) == expected["by_cause"]
