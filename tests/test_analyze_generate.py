"""The log generator: every record is a complete sa_explain/1 dict, and a seed fixes the output."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sa_explain.analyze import generate
from sa_explain.cli import main
from sa_explain.explanation import CAUSES

TOP_KEYS = [
    "schema", "error", "exception", "message", "operation", "site", "mapper", "table", "identity", "identities",
    "rows", "version", "bind", "replica", "primary_row", "cause", "confidence", "evidence", "hints",
    "statements", "context", "twin", "session", "probe", "params", "via", "source", "sqlalchemy", "timestamp",
]
BIND_KEYS = {"name", "role", "role_source", "system", "driver", "address", "port", "database", "url", "server"}
REPLICA_KEYS = {"lag_seconds", "lag_bytes", "gtid", "caught_up", "measured_by", "node", "elapsed_ms", "error"}
CONTEXT_KEYS = {"kind", "name", "id", "key", "retries", "root_id", "parent_id", "started_at"}
TWIN_KEYS = {"id", "name", "key", "started_at", "ended_at", "outcome", "delta_ms"}
STATEMENT_KEYS = {"ago_ms", "verb", "table", "bind", "role", "rowcount", "executemany", "same_thread", "committed"}
PROBE_KEYS = {"ran", "skipped", "bind", "elapsed_ms", "row", "error"}


def _check(rec: dict[str, Any]) -> None:
    assert list(rec) == TOP_KEYS
    assert rec["schema"] == "sa_explain/1"
    assert rec["error"] in ("object_deleted", "stale_data")
    assert rec["operation"] in ("refresh", "update", "delete", "unknown")
    assert rec["primary_row"] in ("present", "absent", "unknown")
    assert rec["cause"] in CAUSES
    assert 0.0 <= rec["confidence"] <= 1.0
    assert rec["source"] in ("traceback", "message")
    assert rec["exception"].startswith("sqlalchemy.orm.exc.")
    assert "0x" not in rec["message"]
    assert rec["params"] is None  # never without opt-in
    assert rec["identity"] is None or isinstance(rec["identity"], list)
    assert all(isinstance(i, list) for i in rec["identities"]) and len(rec["identities"]) <= 20
    if rec["bind"] is not None:
        assert set(rec["bind"]) == BIND_KEYS
        assert rec["bind"]["role"] in ("primary", "replica", "proxy", "unknown")
        assert ":***@" in rec["bind"]["url"]
    if rec["replica"] is not None:
        assert set(rec["replica"]) == REPLICA_KEYS
    if rec["context"] is not None:
        assert set(rec["context"]) == CONTEXT_KEYS
    if rec["twin"] is not None:
        assert set(rec["twin"]) == TWIN_KEYS
    if rec["probe"] is not None:
        assert set(rec["probe"]) == PROBE_KEYS
    if rec["rows"] is not None:
        assert set(rec["rows"]) == {"expected", "matched", "executemany", "sane_rowcount", "sane_multi_rowcount"}
    if rec["version"] is not None:
        assert set(rec["version"]) == {"column", "expected", "new", "actual"}
    for st in rec["statements"]:
        assert set(st) == STATEMENT_KEYS
    for h in rec["hints"]:
        assert set(h) == {"id", "title", "detail", "docs"}
    assert rec["timestamp"].endswith("Z")
    json.dumps(rec)


def test_every_record_is_a_complete_sa_explain_1_dict() -> None:
    causes: Counter[str] = Counter()
    for rec in generate.records(5000, 42):
        _check(rec)
        causes[rec["cause"]] += 1
    assert set(causes) == set(CAUSES)  # a mix of every cause
    stamps = [r["timestamp"] for r in generate.records(2000, 1)]
    assert stamps == sorted(stamps)  # time order, like a log


def test_seed_fixes_the_output() -> None:
    a, b, c = io.StringIO(), io.StringIO(), io.StringIO()
    generate.write(a, 300, 7, "sentry")
    generate.write(b, 300, 7, "sentry")
    generate.write(c, 300, 8, "sentry")
    assert a.getvalue() == b.getvalue() != c.getvalue()


@pytest.mark.parametrize("fmt", generate.FORMATS)
def test_every_format_parses_and_carries_the_record(fmt: str) -> None:
    from sa_explain.analyze.reader import find_record

    buf = io.StringIO()
    assert generate.write(buf, 50, 3, fmt) == 50
    text = buf.getvalue()
    events = json.loads(text) if fmt == "sentry-array" else [json.loads(line) for line in text.splitlines()]
    assert len(events) == 50
    for ev in events:
        rec, _ = find_record(ev)
        assert rec is not None
        _check(rec)


def test_generate_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g.jsonl"
    assert main(["generate", "--events", "120", "--seed", "4", "--format", "jsonlogger", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 120
    assert "wrote 120 jsonlogger records" in capsys.readouterr().err


def test_duplicate_bursts_and_same_id_retries_are_both_generated() -> None:
    by_key: dict[str, set[str]] = {}
    counts: Counter[str] = Counter()
    for rec in generate.records(5000, 5):
        ctx = rec["context"]
        if ctx and ctx["key"]:
            by_key.setdefault(ctx["key"], set()).add(ctx["id"])
            counts[ctx["key"]] += 1
    assert any(len(ids) >= 2 for ids in by_key.values())  # duplicates: several ids per key
    assert any(counts[k] >= 2 and len(ids) == 1 for k, ids in by_key.items())  # retries: one id
