"""Statement tracking and the write log, on real SQLite engines (no mocks)."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.sql import dml

import sa_explain
from sa_explain import tracking
from tests.models import Base, Device


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[sa.engine.Engine, sa.engine.Engine]]:
    primary = sa.create_engine(f"sqlite:///{tmp_path / 'primary.db'}")
    replica = sa.create_engine(f"sqlite:///{tmp_path / 'replica.db'}")
    for e in (primary, replica):
        Base.metadata.create_all(e)
    tracking.clear_writes()
    tracking.clear_statements()
    sa_explain.configure(primary=primary, replicas=[replica], probe_rate=10_000)
    yield primary, replica
    primary.dispose()
    replica.dispose()


def routing_session(primary: sa.engine.Engine, replica: sa.engine.Engine) -> Session:
    class Routing(Session):
        def get_bind(self, mapper: Any = None, clause: Any = None, **kw: Any) -> Any:
            if self._flushing or isinstance(clause, dml.UpdateBase):
                return primary
            return replica

    return Routing()


def test_install_is_idempotent() -> None:
    sa_explain.install()
    sa_explain.install()
    assert tracking.installed()


def test_replica_lag_on_a_routing_session(pair: tuple[sa.engine.Engine, sa.engine.Engine]) -> None:
    primary, replica = pair
    session = routing_session(primary, replica)
    dev = Device(id=42, name="sensor")
    session.add(dev)
    session.commit()  # INSERT on the primary; the replica file never gets it: lag
    try:
        dev.name
    except Exception as exc:
        err = exc
    ex = sa_explain.explain(err)
    assert ex is not None
    d = ex.to_dict()
    assert d["cause"] == "replica_lag", d["evidence"]
    assert d["confidence"] >= 0.9
    assert d["bind"]["name"] == "replica" and d["bind"]["role"] == "replica"
    assert d["primary_row"] == "present"
    verbs = [(s["verb"], s["bind"]) for s in d["statements"]]
    assert ("INSERT", "primary") in verbs and ("SELECT", "replica") in verbs
    assert "after the INSERT on 'primary' (role primary) was committed" in d["evidence"][0]
    assert d["hints"][0]["id"] == "read_your_writes"
    session.close()


def test_write_log_marks_commits_and_names_other_threads(pair: tuple[sa.engine.Engine, sa.engine.Engine]) -> None:
    primary, _ = pair
    with Session(primary) as s:
        s.add(Device(id=1, name="a"))
        s.commit()
    s1 = Session(primary)
    dev = s1.get(Device, 1)
    assert dev is not None and dev.name == "a"

    def other() -> None:
        with Session(primary) as s2:
            s2.delete(s2.get(Device, 1))
            s2.commit()

    t = threading.Thread(target=other)
    t.start()
    t.join()
    dev.name = "b"
    try:
        s1.flush()
    except Exception as exc:
        err = exc
    ex = sa_explain.explain(err, probes=False)
    assert ex is not None and ex.cause == "row_deleted"
    assert ex.primary_row == "absent"  # from the write log, without a probe
    assert any("thread" in e and "DELETE" in e for e in ex.evidence), ex.evidence
    records = tracking.writes_for("tests.models.Device", (1,))
    assert [r.verb for r in records][-1] == "DELETE" and records[-1].committed_at is not None
    s1.close()


def test_rollback_is_not_a_commit(pair: tuple[sa.engine.Engine, sa.engine.Engine]) -> None:
    primary, _ = pair
    with Session(primary) as s:
        s.add(Device(id=5, name="a"))
        s.flush()
        s.rollback()
    records = tracking.writes_for("tests.models.Device", (5,))
    assert records and records[-1].rolled_back and records[-1].committed_at is None


def test_memory_is_bounded_and_holds_no_sessions(pair: tuple[sa.engine.Engine, sa.engine.Engine]) -> None:
    primary, _ = pair
    sa_explain.configure(primary=primary, track_statements=16, track_writes=50)
    refs = []
    for i in range(200):
        s = Session(primary)
        s.add(Device(id=1000 + i, name="x"))
        s.commit()
        refs.append(weakref.ref(s))
        s.close()
        del s
    gc.collect()
    assert all(r() is None for r in refs)
    assert len(tracking.recent_statements()) <= 16
    assert tracking.write_log_size() <= 50


def test_pk_change_is_primary_key_changed(pair: tuple[sa.engine.Engine, sa.engine.Engine]) -> None:
    primary, _ = pair
    with Session(primary) as s:
        s.add(Device(id=10, name="a"))
        s.commit()
    s1 = Session(primary)
    dev = s1.get(Device, 10)
    assert dev is not None and dev.name == "a"
    with Session(primary) as s2:
        other = s2.get(Device, 10)
        other.id = 11
        s2.commit()
    s1.expire(dev)
    try:
        dev.name
    except Exception as exc:
        err = exc
    ex = sa_explain.explain(err)
    assert ex is not None and ex.cause == "primary_key_changed", ex.evidence
    s1.close()


def test_track_writes_zero_removes_the_per_row_listeners() -> None:
    from sqlalchemy import event
    from sqlalchemy.orm import Mapper

    sa_explain.configure(track_writes=0)
    assert not event.contains(Mapper, "after_insert", tracking._after_insert)
    assert tracking.installed()  # statements are still tracked
    sa_explain.configure()
    assert event.contains(Mapper, "after_insert", tracking._after_insert)
