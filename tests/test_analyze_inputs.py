"""What `sa-explain analyze` reads: the library's real log surfaces, Sentry exports, and bad input.

Bad input must give one line on stderr naming the file (and the line where there is
one) and exit status 2, never a traceback.
"""

from __future__ import annotations

import gzip
import json
import logging
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Integer, String, create_engine, delete
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.orm.exc import ObjectDeletedError

import sa_explain
from sa_explain.analyze import generate
from sa_explain.cli import main


class Base(DeclarativeBase):
    pass


class Device(Base):
    __tablename__ = "device"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


def _records(n: int = 40, seed: int = 5) -> list[dict[str, Any]]:
    recs = list(generate.records(n, seed))
    explain = getattr(sa_explain, "explain", None)
    if explain is not None:
        recs.append(_real_explanation(explain))
    return recs


def _real_explanation(explain: Any) -> dict[str, Any]:
    """A record from the real explain() on a real ObjectDeletedError (once the lead ships it)."""
    with tempfile.TemporaryDirectory() as d:
        engine = create_engine(f"sqlite:///{d}/app.db")
        Base.metadata.create_all(engine)
        try:
            with Session(engine) as s:
                s.add(Device(id=42, name="a"))
                s.commit()  # expires the instance
                dev = s.get(Device, 42)
                assert dev is not None
                s.expire(dev)
                with engine.begin() as other:  # another connection deletes the row
                    other.execute(delete(Device).where(Device.id == 42))
                try:
                    _ = dev.name
                except ObjectDeletedError as exc:
                    expl = explain(exc)
                    assert expl is not None
                    return dict(expl.to_dict())
        finally:
            engine.dispose()
    raise AssertionError("no ObjectDeletedError")


def _analyze_json(capsys: pytest.CaptureFixture[str], *paths: Path, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    rc = main(["analyze", *map(str, paths), "--format", "json", "--no-progress", *extra])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return dict(json.loads(out))


def _error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    rc = main(["analyze", *args, "--no-progress"])
    _out, err = capsys.readouterr()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --- the library's surfaces -------------------------------------------------------------

def test_structlog_json_renderer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import structlog

    recs = _records()
    path = tmp_path / "structlog.log"
    with path.open("w") as fh:
        log = structlog.wrap_logger(
            structlog.PrintLogger(file=fh),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(),
            ],
        )
        log.info("request finished", path="/health")  # a foreign line: skipped and counted
        for rec in recs:
            log.error("orm error explained", sa_explain=rec)
    doc = _analyze_json(capsys, path)
    assert doc["input"]["records"] == len(recs)
    assert doc["input"]["skipped_foreign"] == 1
    assert sum(r["errors"] for r in doc["reports"]["by_cause"]) == len(recs)


def _json_logger(path: Path, name: str) -> logging.Logger:
    from pythonjsonlogger.json import JsonFormatter

    logger = logging.getLogger(name)
    logger.propagate = False
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=True))
    logger.addHandler(handler)
    return logger


@pytest.mark.parametrize("as_string", [False, True], ids=["object", "json-string"])
def test_python_json_logger(tmp_path: Path, capsys: pytest.CaptureFixture[str], as_string: bool) -> None:
    recs = _records()
    path = tmp_path / "app.log"
    logger = _json_logger(path, f"sa_explain_test_jsonlogger_{as_string}")

    class AttachExplanation(logging.Filter):
        """What a logging filter does: put the dict on the record as record.sa_explain."""

        current: dict[str, Any] | None = None

        def filter(self, record: logging.LogRecord) -> bool:
            if self.current is not None:
                record.sa_explain = json.dumps(self.current) if as_string else self.current
            return True

    filt = AttachExplanation()
    logger.addFilter(filt)
    try:
        logger.warning("unrelated line")
        for rec in recs:
            filt.current = rec
            logger.error("orm error")
    finally:
        for h in logger.handlers:
            h.close()
        logger.handlers.clear()
    doc = _analyze_json(capsys, path)
    assert doc["input"]["records"] == len(recs)
    assert doc["input"]["skipped_foreign"] == 1


def _sentry_events(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as real sentry-sdk serialises them (before_send sees the final event; nothing is sent)."""
    import sentry_sdk

    captured: list[dict[str, Any]] = []

    def before_send(event: Any, hint: Any) -> None:
        captured.append(json.loads(json.dumps(event, default=str)))
        return None

    client = sentry_sdk.Client(dsn="http://public@127.0.0.1:9/1", before_send=before_send, default_integrations=False)
    try:
        for rec in recs:
            with sentry_sdk.isolation_scope() as scope:
                scope.set_client(client)
                scope.set_context("sa_explain", rec)
                sentry_sdk.capture_event({"message": "orm error", "level": "error"})
    finally:
        client.close(timeout=0)
    return captured


def test_sentry_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recs = _records(12)
    events = _sentry_events(recs)
    assert len(events) == len(recs)
    array = tmp_path / "events.json"
    array.write_text(json.dumps(events, indent=2))
    single = tmp_path / "one-event.json"
    single.write_text(json.dumps(events[0], indent=2))  # as downloaded from an event's page
    lines = tmp_path / "events.jsonl"
    lines.write_text("".join(json.dumps(e) + "\n" for e in events))
    doc = _analyze_json(capsys, array, single, lines)
    assert doc["input"]["records"] == 2 * len(recs) + 1
    assert doc["input"]["files"] == 3


def test_sentry_event_without_record_timestamp_uses_the_event_timestamp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = next(generate.records(1, 1))
    rec["timestamp"] = None
    path = tmp_path / "e.json"
    path.write_text(json.dumps([{"event_id": "a" * 32, "timestamp": 1795000000.25, "contexts": {"sa_explain": rec}}]))
    doc = _analyze_json(capsys, path)
    want = datetime.fromtimestamp(1795000000.25, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert doc["reports"]["summary"][0]["first_seen"] == want


def test_gzip_and_filters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "app.log.gz"
    with gzip.open(path, "wt") as fh:
        generate.write(fh, 500, 3, "structlog")
    doc = _analyze_json(capsys, path, extra=("--cause", "replica_lag", "--role", "replica,proxy", "--since", "2026-11-03"))
    rows = doc["reports"]["by_cause"]
    assert rows and {r["cause"] for r in rows} == {"replica_lag"}
    assert {r["bind_role"] for r in rows} <= {"replica", "proxy"}
    assert doc["reports"]["summary"][0]["first_seen"] >= "2026-11-03"


def test_table_and_csv_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.log"
    with path.open("w") as fh:
        generate.write(fh, 300, 2, "structlog")
    assert main(["analyze", str(path), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "Errors by cause × table × bind role" in out and "Replica lag at error time" in out
    assert "300 records from 1 file" in err
    assert main(["analyze", str(path), "--format", "csv", "--report", "by_cause", "-q"]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines()[0] == "cause,table,bind_role,errors,pct"
    msg = _error(capsys, str(path), "--format", "csv")
    assert "--report" in msg


def test_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.log"
    with path.open("w") as fh:
        generate.write(fh, 300, 2, "structlog")
    for name in ("chart.html", "chart.svg"):
        assert main(["analyze", str(path), "-q", "--report", "summary", "--plot", str(tmp_path / name)]) == 0
        text = (tmp_path / name).read_text()
        assert "<svg" in text and "replica_lag" in text and "<script" not in text
    capsys.readouterr()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        msg = _error(capsys, str(path), "-q", "--plot", str(tmp_path / "c.png"))
        assert "matplotlib" in msg and ".svg" in msg
    else:
        assert main(["analyze", str(path), "-q", "--plot", str(tmp_path / "c.png")]) == 0
        assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "unknown chart format" in _error(capsys, str(path), "-q", "--plot", str(tmp_path / "c.pdf"))


def test_progress_bar_when_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.log"
    with path.open("w") as fh:
        generate.write(fh, 200, 2, "structlog")
    assert main(["analyze", str(path), "--progress", "--report", "summary"]) == 0
    _, err = capsys.readouterr()
    assert "100%" in err


# --- bad input ---------------------------------------------------------------------------

def _good_lines(n: int = 5) -> str:
    out = []
    for rec in generate.records(n, 9):
        out.append(json.dumps({"event": "x", "sa_explain": rec}))
    return "\n".join(out) + "\n"


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    msg = _error(capsys, str(tmp_path / "nope.log"))
    assert "nope.log: no such file" in msg


def test_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "is a directory" in _error(capsys, str(tmp_path))


def test_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.log"
    path.write_text("\n\n")
    assert "empty.log: empty file" in _error(capsys, str(path))


def test_binary_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"{\"a\": 1}\n" + bytes(range(256)) * 4)
    msg = _error(capsys, str(path))
    assert "blob.bin:2: binary data" in msg


def test_not_json_at_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plain.log"
    path.write_text("2026-11-25 13:00:01 ERROR something broke\n")
    assert "plain.log:1: not JSON" in _error(capsys, str(path))


def test_truncated_last_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cut.log"
    text = _good_lines(5)
    path.write_text(text + text.splitlines()[0][:300])
    msg = _error(capsys, str(path))
    assert msg.startswith("sa-explain: error: ") and "cut.log:6: truncated JSON" in msg
    # --skip-invalid counts the line instead
    rc = main(["analyze", str(path), "--skip-invalid", "--format", "json", "--no-progress"])
    out, _ = capsys.readouterr()
    assert rc == 0
    doc = json.loads(out)
    assert doc["input"]["records"] == 5 and doc["input"]["skipped_invalid"] == 1


def test_invalid_line_in_the_middle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mid.log"
    lines = _good_lines(5).splitlines()
    lines.insert(2, '{"event": "x", "sa_explain": {"schema": "sa_explain/1",,}}')
    path.write_text("\n".join(lines) + "\n")
    assert "mid.log:3: invalid JSON" in _error(capsys, str(path))


def test_foreign_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "other.log"
    path.write_text('{"level": "info", "msg": "hello"}\n{"level": "info", "msg": "bye"}\n')
    msg = _error(capsys, str(path))
    assert "no sa_explain/1 record" in msg and "other.log:1:" in msg and "level, msg" in msg


def test_other_schema_version_is_skipped_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mixed.log"
    rec = next(generate.records(1, 1))
    future = dict(rec, schema="sa_explain/2")
    path.write_text(_good_lines(3) + json.dumps({"sa_explain": future}) + "\n")
    rc = main(["analyze", str(path), "--format", "json", "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert json.loads(out)["input"]["skipped_other_schema"] == 1
    assert "sa_explain/2" in err


def test_bad_option_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.log"
    path.write_text(_good_lines(3))
    assert "not a time" in _error(capsys, str(path), "--since", "yesterday-ish")
    assert "not a duration" in _error(capsys, str(path), "--window", "soon")
    assert "must be before" in _error(capsys, str(path), "--since", "2026-11-05", "--until", "2026-11-01")


def test_without_duckdb_says_how_to_install(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.log"
    path.write_text(_good_lines(3))
    monkeypatch.setitem(sys.modules, "duckdb", None)  # what Python does when the package is absent
    msg = _error(capsys, str(path))
    assert "pip install 'sa-explain[cli]'" in msg


def test_bare_records_from_demo_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "demo.jsonl"
    with path.open("w") as fh:
        generate.write(fh, 30, 4, "raw")
    doc = _analyze_json(capsys, path)
    assert doc["input"]["records"] == 30
