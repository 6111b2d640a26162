"""explain() at every raise site, on real SQLite sessions (runs on SQLAlchemy 1.4, 2.0 and 2.1).

Each test provokes the real error the way applications do — two sessions, one deletes or
updates behind the other's back — and checks what explain() recovers from the frames.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session
from sqlalchemy.orm import exc as orm_exc

import sa_explain
from sa_explain import tracking
from tests.models import Base, Device, Doc, Flight, Post, Tag, Token

SA2 = not sa.__version__.startswith("1.")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.engine.Engine]:
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    Base.metadata.create_all(eng)
    tracking.clear_writes()
    tracking.clear_statements()
    sa_explain.configure(primary=eng, probe_rate=10_000)
    yield eng
    eng.dispose()


REPORT = os.environ.get("SA_EXPLAIN_SITE_REPORT")


def check_json(ex: sa_explain.Explanation) -> dict[str, Any]:
    d = ex.to_dict()
    json.dumps(d, allow_nan=False)
    if REPORT:  # scripts/raise_sites_report.py collects what each scenario recovered
        with open(REPORT, "a") as fh:
            scenario = os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[-1].split(" ")[0]
            fh.write(json.dumps({"scenario": scenario, "sqlalchemy": sa.__version__, "explanation": d}) + "\n")
    assert d["schema"] == "sa_explain/1"
    assert set(d) >= {"error", "exception", "operation", "mapper", "table", "identity", "rows", "version", "bind", "replica",
                      "primary_row", "cause", "confidence", "evidence", "hints"}
    for h in d["hints"]:
        assert set(h) == {"id", "title", "detail", "docs"}
    return d


def capture(fn: Any) -> BaseException:
    try:
        fn()
    except BaseException as e:
        return e
    raise AssertionError("expected an exception")


def delete_elsewhere(engine: sa.engine.Engine, cls: Any, pk: Any) -> None:
    with Session(engine) as s2:
        s2.delete(s2.get(cls, pk))
        s2.commit()


# ---------------------------------------------------------------- ObjectDeletedError


def test_attribute_refresh_after_commit(engine: sa.engine.Engine) -> None:
    s1 = Session(engine)
    dev = Device(id=42, name="sensor")
    s1.add(dev)
    s1.commit()
    delete_elsewhere(engine, Device, 42)
    exc = capture(lambda: dev.name)
    assert isinstance(exc, orm_exc.ObjectDeletedError)
    d = check_json(sa_explain.explain(exc))  # type: ignore[arg-type]
    assert d["error"] == "object_deleted" and d["site"] == "refresh" and d["operation"] == "refresh"
    assert d["mapper"] == "tests.models.Device" and d["table"] == "device"
    assert d["identity"] == [42]
    assert "0x" not in d["message"] and "<Device>" in d["message"]
    assert d["bind"]["role"] == "primary" and d["bind"]["system"] == "sqlite"
    assert d["primary_row"] == "absent"
    assert d["cause"] == "row_deleted"
    assert d["probe"]["ran"] is True
    assert any("DELETE" in e for e in d["evidence"]), d["evidence"]
    assert d["session"]["expire_on_commit"] is True
    s1.close()


def test_get_of_expired_deleted_identity_returns_none_and_explain_ignores_plain_errors(engine: sa.engine.Engine) -> None:
    # SQLAlchemy swallows the ObjectDeletedError inside get(): nothing to explain, and
    # explain() of an unrelated error is None.
    s1 = Session(engine)
    s1.add(Device(id=1, name="a"))
    s1.commit()
    delete_elsewhere(engine, Device, 1)
    assert s1.get(Device, 1) is None
    assert sa_explain.explain(ValueError("nope")) is None
    assert sa_explain.explain(None) is None
    s1.close()


def test_versioned_get_with_for_update_sees_newer_version(engine: sa.engine.Engine) -> None:
    s1 = Session(engine)
    doc = Doc(id=1, title="t1")
    s1.add(doc)
    s1.commit()
    assert doc.title == "t1"  # loaded, version 1 in memory
    with Session(engine) as s2:
        other = s2.get(Doc, 1)
        other.title = "t2"
        s2.commit()
    exc = capture(lambda: s1.get(Doc, 1, with_for_update=True, populate_existing=False))
    assert isinstance(exc, orm_exc.StaleDataError)
    d = check_json(sa_explain.explain(exc))  # type: ignore[arg-type]
    assert d["site"] == "load_version_check"
    assert d["identity"] == [1]
    assert d["version"]["expected"] == 1 and d["version"]["actual"] == 2
    assert d["cause"] == "concurrent_update"
    s1.close()


def test_session_refresh(engine: sa.engine.Engine) -> None:
    s1 = Session(engine)
    dev = Device(id=7, name="x")
    s1.add(dev)
    s1.commit()
    delete_elsewhere(engine, Device, 7)
    exc = capture(lambda: s1.refresh(dev))
    assert isinstance(exc, sa_exc.InvalidRequestError)
    d = check_json(sa_explain.explain(exc))  # type: ignore[arg-type]
    assert d["error"] == "object_deleted" and d["site"] == "session_refresh"
    assert d["identity"] == [7] and d["table"] == "device"
    assert d["cause"] == "row_deleted"
    s1.close()


def test_refresh_inside_flush(engine: sa.engine.Engine) -> None:
    s1 = Session(engine)
    dev = Device(id=3, name="x")
    s1.add(dev)
    s1.commit()
    delete_elsewhere(engine, Device, 3)
    dev.name = "changed without reading"
    exc = capture(s1.commit)
    assert isinstance(exc, orm_exc.ObjectDeletedError)
    d = check_json(sa_explain.explain(exc))  # type: ignore[arg-type]
    assert d["identity"] == [3]
    assert d["session"]["in_flush"] is True
    assert any("inside a flush" in e for e in d["evidence"])
    s1.close()


# ---------------------------------------------------------------- StaleDataError


def test_update_of_deleted_row(engine: sa.engine.Engine) -> None:
    s1 = Session(engine)
    s1.add(Device(id=5, name="a"))
    s1.commit()
    dev = s1.get(Device, 5)
    assert dev is not None and dev.name == "a"
    delete_elsewhere(engine, Device, 5)
    dev.name = "b"
    exc = capture(s1.flush)
    assert isinstance(exc, orm_exc.StaleDataError)
    d = check_json(sa_explain.explain(exc))  # type: ignore[arg-type]
    assert d["error"] == "stale_data" and d["operation"] == "update" and d["site"] == "update"
    assert d["rows"]["expected"] == 1 and d["rows"]["matched"] == 0
    assert d["identity"] == [5] and d["table"] == "device"
    assert d["primary_row"] == "absent" and d["cause"] == "row_deleted"
    assert d["params"] is None  # not opted in
    d2 = sa_explain.explain(exc, include_params=True, probes=False).to_dict()  # type: ignore[union-attr]
    assert d2["params"] == [{"name": "b", "device_id": 5}]
    assert d2["probe"] is None
    s1.close()


def test_versioned_update_conflict(engine: sa.engine.Engine) -> None:
    s1 = Session(engine)
    s1.add(Doc(id=1, title="t1"))
    s1.commit()
    doc = s1.get(Doc, 1)
    assert doc is not None and doc.title == "t1"
    with Session(engine) as s2:
        other = s2.get(Doc, 1)
        other.title = "B wins"
        s2.commit()
    doc.title = "A loses"
    exc = capture(s1.commit)
    d = check_json(sa_explain.explain(exc))  # type: ignore[arg-type]
    assert d["version"] == {"column": "version_id", "expected": 1, "new": 2, "actual": 2}
    assert d["primary_row"] == "present"
    assert d["cause"] == "concurrent_update"
    assert d["confidence"] >= 0.8
    assert {h["id"] for h in d["hints"]} >= {"version_id_retry", "select_for_update"}
    s1.close()


def test_versioned_delete_of_deleted_row(engine: sa.engine.Engine) -> None:
    s1 = Session(engine)
    s1.add(Doc(id=2, title="x"))
    s1.commit()
    doc = s1.get(Doc, 2)
    assert doc is not None and doc.title == "x"
    delete_elsewhere(engine, Doc, 2)
    s1.delete(doc)
    exc = capture(s1.flush)
    d = check_json(sa_explain.explain(exc))  # type: ignore[arg-type]
    assert d["site"] == "delete" and d["operation"] == "delete"
    assert d["identity"] == [2]
    assert d["rows"] == {**d["rows"], "expected": 1, "matched": 0}
    assert d["version"]["expected"] == 1
    assert d["cause"] == "row_deleted"
    s1.close()


def test_orm_bulk_update_by_primary_key(engine: sa.engine.Engine) -> None:
    with Session(engine) as s:
        s.add_all([Device(id=1, name="a"), Device(id=2, name="b")])
        s.commit()
    s1 = Session(engine)
    rows = [{"id": 1, "name": "x"}, {"id": 99, "name": "y"}]
    if SA2:
        exc = capture(lambda: s1.execute(sa.update(Device), rows))
    else:
        exc = capture(lambda: s1.bulk_update_mappings(Device, rows))
    d = check_json(sa_explain.explain(exc))  # type: ignore[arg-type]
    assert d["rows"]["expected"] == 2 and d["rows"]["matched"] == 1
    assert d["identity"] is None  # two records: which failed is only known from the probe
    assert d["identities"] == [[1], [99]]
    assert d["primary_row"] == "absent"
    assert any("[99]" in e for e in d["evidence"]), d["evidence"]
    s1.close()


def test_many_to_many_secondary_delete(engine: sa.engine.Engine) -> None:
    s1 = Session(engine)
    post = Post(id=1, tags=[Tag(id=1, name="a")])
    s1.add(post)
    s1.commit()
    tag = post.tags[0]
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM post_tags"))
    post.tags.remove(tag)
    exc = capture(s1.flush)
    d = check_json(sa_explain.explain(exc))  # type: ignore[arg-type]
    assert d["site"] == "m2m_delete" and d["operation"] == "delete"
    assert d["table"] == "post_tags"
    assert d["rows"]["expected"] == 1 and d["rows"]["matched"] == 0
    assert d["identity"] == [1, 1]
    s1.close()


def test_composite_and_uuid_keys(engine: sa.engine.Engine) -> None:
    s1 = Session(engine)
    f = Flight(carrier="LH400", number=12, status="boarding")
    t = Token(id=Token.new_id(), label="x")
    s1.add_all([f, t])
    s1.commit()
    delete_elsewhere(engine, Flight, ("LH400", 12))
    exc = capture(lambda: f.status)
    d = check_json(sa_explain.explain(exc))  # type: ignore[arg-type]
    assert d["identity"] == ["LH400", 12]
    assert d["cause"] == "row_deleted"
    delete_elsewhere(engine, Token, Token.new_id())
    exc = capture(lambda: t.label)
    d = check_json(sa_explain.explain(exc))  # type: ignore[arg-type]
    assert d["identity"] == ["12345678-1234-5678-1234-567812345678"]
    s1.close()


def test_redact_identity(engine: sa.engine.Engine) -> None:
    sa_explain.configure(primary=engine, redact_identity=True, probe_rate=10_000)
    s1 = Session(engine)
    f = Flight(carrier="LH400", number=12, status="x")
    s1.add(f)
    s1.commit()
    delete_elsewhere(engine, Flight, ("LH400", 12))
    d = check_json(sa_explain.explain(capture(lambda: f.status)))  # type: ignore[arg-type]
    assert d["identity"] == ["<redacted>", "<redacted>"]
    assert "LH400" not in json.dumps(d)
    s1.close()


# ---------------------------------------------------------------- chains, pickles, follow-ups


def _stale(engine: sa.engine.Engine) -> tuple[Session, BaseException]:
    s1 = Session(engine)
    s1.add(Device(id=8, name="a"))
    s1.commit()
    dev = s1.get(Device, 8)
    assert dev is not None and dev.name == "a"
    delete_elsewhere(engine, Device, 8)
    dev.name = "b"
    return s1, capture(s1.flush)


def test_chained_and_wrapped(engine: sa.engine.Engine) -> None:
    s1, stale = _stale(engine)

    class AppError(Exception):
        pass

    def wrap_explicit() -> None:
        raise AppError("saving failed") from stale

    def wrap_implicit() -> None:
        try:
            raise stale
        except orm_exc.StaleDataError:
            raise RuntimeError("handler failed") from None

    for outer in (capture(wrap_explicit), capture(wrap_implicit)):
        ex = sa_explain.explain(outer)
        assert ex is not None and ex.identity == [8], outer
        assert ex.via in ("cause", "context")
    s1.close()


def test_cyclic_chain_is_safe(engine: sa.engine.Engine) -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__cause__, b.__cause__ = b, a
    a.__context__ = a
    assert sa_explain.explain(a) is None


def test_pending_rollback_error_explains_the_original(engine: sa.engine.Engine) -> None:
    s1, _stale_exc = _stale(engine)
    follow_up = capture(lambda: s1.execute(sa.text("SELECT 1")))
    assert type(follow_up).__name__ == "PendingRollbackError"
    ex = sa_explain.explain(follow_up)
    assert ex is not None and ex.via == "pending_rollback"
    assert ex.identity == [8] and ex.table == "device"
    s1.close()


def test_pickled_exceptions_fall_back_to_the_message(engine: sa.engine.Engine) -> None:
    s1, stale = _stale(engine)
    copy = pickle.loads(pickle.dumps(stale))
    d = check_json(sa_explain.explain(copy))  # type: ignore[arg-type]
    assert d["source"] == "message"
    assert d["table"] == "device" and d["rows"]["expected"] == 1 and d["rows"]["matched"] == 0
    assert d["identity"] is None
    s1.close()

    s2 = Session(engine)
    dev = Device(id=9, name="x")
    s2.add(dev)
    s2.commit()
    delete_elsewhere(engine, Device, 9)
    deleted = capture(lambda: dev.name)
    d = check_json(sa_explain.explain(pickle.loads(pickle.dumps(deleted))))  # type: ignore[arg-type]
    assert d["source"] == "message" and d["error"] == "object_deleted" and d["mapper"] == "Device"
    s2.close()


def test_cleared_frames_fall_back_to_the_message(engine: sa.engine.Engine) -> None:
    import traceback

    s1, stale = _stale(engine)
    traceback.clear_frames(stale.__traceback__)
    d = check_json(sa_explain.explain(stale))  # type: ignore[arg-type]
    assert d["source"] == "message" and d["table"] == "device"
    s1.close()


def test_explanation_holds_no_session_or_object(engine: sa.engine.Engine) -> None:
    import gc
    import weakref

    s1, stale = _stale(engine)
    ex = sa_explain.explain(stale)
    ref_s = weakref.ref(s1)
    s1.close()
    del s1, stale
    gc.collect()
    assert ref_s() is None
    assert ex is not None and ex.identity == [8]
    pickle.loads(pickle.dumps(ex))  # plain data


def test_hostile_exception(engine: sa.engine.Engine) -> None:
    class Evil(orm_exc.StaleDataError):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    ex = sa_explain.explain(Evil())
    assert ex is not None and ex.error == "stale_data"
    assert sa_explain.explain("not an exception") is None  # type: ignore[arg-type]


def test_an_attached_explanation_is_reused(engine: sa.engine.Engine) -> None:
    # Celery's task_failure hook attaches the explanation made while the frames were
    # alive; Celery's own ERROR log (through ExplainFilter) must not explain it again.
    s1, stale = _stale(engine)
    first = sa_explain.explain(stale)
    stale.__sa_explain__ = first  # type: ignore[attr-defined]
    assert sa_explain.explain(stale) is first
    assert sa_explain.explain(stale, probes=False) is not first  # explicit options recompute
    s1.close()
