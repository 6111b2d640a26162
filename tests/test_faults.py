"""Fault suite: sa-explain on a sick database, in an error storm, and with respect to memory.

What is proved here, against real servers and real sockets (no mocks):

* a probe against a primary that holds a lock, a TCP port that accepts and never answers,
  and a port with nothing listening: ``explain()`` returns within ``probe_timeout`` + 50 ms
  and says why the row was not checked;
* an error storm (8 threads × 1 000 real StaleDataErrors, each explained with probes on)
  starts no more probes than the rate limit allows, and memory stays flat;
* 1 M tracked statements keep the statement ring and the write log bounded;
* no session, connection or user object is kept alive by sa-explain, and no pooled
  connection stays checked out after ``explain()``.

Tests named ``test_known_bug_*`` document a defect in the core that the lead must fix;
they fail until it is fixed (they are not xfailed on purpose).
"""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
import tracemalloc
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, declarative_base, make_transient_to_detached
from sqlalchemy.orm import exc as orm_exc

import sa_explain
from sa_explain import probes as sa_probes
from sa_explain import tracking
from tests._servers import require_module, require_url

SLACK = 0.050  # the brief: budget + 50 ms
BUDGET = 0.25
SUFFIX = os.getpid()

Base: Any = declarative_base()


class FDevice(Base):
    __tablename__ = f"sa_explain_faults_device_{SUFFIX}"
    id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
    name = sa.Column(sa.String(50))


class FDoc(Base):
    __tablename__ = f"sa_explain_faults_doc_{SUFFIX}"
    id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
    title = sa.Column(sa.String(50))
    version_id = sa.Column(sa.Integer, nullable=False)
    __mapper_args__ = {"version_id_col": version_id}  # noqa: RUF012


# ----------------------------------------------------------------------------- helpers


def capture(fn: Any) -> BaseException:
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


def stale_update(engine: sa.engine.Engine, pk: int = 5) -> BaseException:
    """A real StaleDataError: UPDATE of a row another session deleted (session closed after)."""
    with Session(engine) as s:
        s.add(FDevice(id=pk, name="a"))
        s.commit()
    s1 = Session(engine)
    dev = s1.get(FDevice, pk)
    assert dev is not None and dev.name == "a"
    with Session(engine) as s2:
        s2.delete(s2.get(FDevice, pk))
        s2.commit()
    dev.name = "b"
    exc = capture(s1.flush)
    assert isinstance(exc, orm_exc.StaleDataError), exc
    s1.close()
    return exc


def versioned_conflict(engine: sa.engine.Engine, pk: int = 1) -> BaseException:
    """A real versioned-UPDATE StaleDataError; the row is still present (version 2)."""
    with Session(engine) as s:
        s.add(FDoc(id=pk, title="t1"))
        s.commit()
    s1 = Session(engine)
    doc = s1.get(FDoc, pk)
    assert doc is not None and doc.title == "t1"
    with Session(engine) as s2:
        other = s2.get(FDoc, pk)
        assert other is not None
        other.title = "B wins"
        s2.commit()
    doc.title = "A loses"
    exc = capture(s1.commit)
    assert isinstance(exc, orm_exc.StaleDataError), exc
    s1.close()
    return exc


def wait_probes_idle(timeout: float = 20.0) -> None:
    """Abandoned probe workers finish in the background; later tests need a free pool."""
    end = time.monotonic() + timeout
    while sa_probes._in_flight and time.monotonic() < end:
        time.sleep(0.02)
    assert sa_probes._in_flight == 0, "probe workers still stuck after the fault was removed"


def timed_explain(exc: BaseException, **kw: Any) -> tuple[float, dict[str, Any]]:
    t0 = time.monotonic()
    result = sa_explain.explain(exc, **kw)
    elapsed = time.monotonic() - t0
    assert result is not None
    return elapsed, result.to_dict()


def not_checked_reason(d: dict[str, Any]) -> str:
    """The probe's failure reason, required both in probe and in the evidence sentences."""
    probe = d["probe"]
    assert probe is not None
    reason = probe.get("error") or probe.get("skipped")
    assert reason, probe
    assert any(s.startswith("Row not checked on the primary") for s in d["evidence"]), d["evidence"]
    return str(reason)


class Blackhole:
    """A TCP port on 127.0.0.1 that accepts connections and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)  # held open, never read, never answered

    def close(self) -> None:
        # Listening socket first: a driver that retries (e.g. without SSL) gets a refusal.
        self._stop = True
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.engine.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'faults.db'}")
    Base.metadata.create_all(engine)
    tracking.clear_writes()
    tracking.clear_statements()
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine() -> Iterator[sa.engine.Engine]:
    url = require_url("PG_URL")
    require_module("psycopg")
    engine = sa.create_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    tracking.clear_writes()
    tracking.clear_statements()
    yield engine
    wait_probes_idle()
    Base.metadata.drop_all(engine)
    engine.dispose()


# ----------------------------------------------------------------------------- a locked row


@pytest.mark.server
def test_probe_against_access_exclusive_lock_returns_within_budget(pg_engine: sa.engine.Engine) -> None:
    exc = versioned_conflict(pg_engine)
    sa_explain.configure(primary=pg_engine, probes=True, probe_timeout=BUDGET, probe_rate=1000)
    locker = pg_engine.connect()
    try:
        locker.begin()
        locker.exec_driver_sql(f'LOCK TABLE "{FDoc.__tablename__}" IN ACCESS EXCLUSIVE MODE')
        elapsed, d = timed_explain(exc, probes=True)
        assert elapsed <= BUDGET + SLACK, f"explain() took {elapsed * 1000:.0f} ms"
        reason = not_checked_reason(d)
        # The client deadline or the server's lock_timeout (SET LOCAL by the backend) — either is a reason.
        assert "timed out" in reason or "lock" in reason.lower(), reason
        assert d["probe"]["ran"] is True and d["probe"]["row"] is None
        assert d["cause"] == "concurrent_update"  # the frames still say it
    finally:
        locker.rollback()
        locker.close()
    wait_probes_idle()
    # The server-side timeouts ended the stuck probe: its connection came back to the pool.
    assert pg_engine.pool.checkedout() == 0


@pytest.mark.server
def test_probe_is_not_blocked_by_select_for_update(pg_engine: sa.engine.Engine) -> None:
    exc = versioned_conflict(pg_engine)
    sa_explain.configure(primary=pg_engine, probes=True, probe_timeout=BUDGET, probe_rate=1000)
    locker = pg_engine.connect()
    try:
        locker.begin()
        locker.exec_driver_sql(f'SELECT * FROM "{FDoc.__tablename__}" WHERE id = 1 FOR UPDATE').fetchall()
        elapsed, d = timed_explain(exc, probes=True)
        assert elapsed <= BUDGET + SLACK
        # A row lock does not block a plain read (MVCC): the probe answers.
        assert d["probe"]["ran"] is True and d["probe"]["row"] == "present", d["probe"]
        assert d["primary_row"] == "present"
        assert d["version"]["actual"] == 2
    finally:
        locker.rollback()
        locker.close()
    assert pg_engine.pool.checkedout() == 0


# ----------------------------------------------------------------------------- sick servers

BAD_URLS = {
    "postgresql": ("psycopg", "postgresql+psycopg://app:s3cr3t-pw@127.0.0.1:{port}/appdb"),
    "mariadb": ("pymysql", "mysql+pymysql://app:s3cr3t-pw@127.0.0.1:{port}/appdb"),
}


@pytest.mark.parametrize("system", sorted(BAD_URLS))
def test_primary_that_accepts_and_never_answers(system: str, sqlite_engine: sa.engine.Engine) -> None:
    driver, template = BAD_URLS[system]
    require_module(driver)
    exc = stale_update(sqlite_engine)
    hole = Blackhole()
    primary = sa.create_engine(template.format(port=hole.port))
    try:
        sa_explain.configure(primary=primary, probes=True, probe_timeout=BUDGET, probe_rate=1000)
        results = [timed_explain(exc, probes=True) for _ in range(3)]
        for elapsed, d in results:
            assert elapsed <= BUDGET + SLACK, f"explain() took {elapsed * 1000:.0f} ms"
            assert "s3cr3t" not in repr(d)
        reasons = [not_checked_reason(d) for _, d in results]
        # Two workers get stuck in connect(); the third call finds the pool busy and
        # does not even wait: a hung server cannot pile up threads.
        assert "timed out" in reasons[0] and "timed out" in reasons[1], reasons
        assert "earlier probes are still running" in reasons[2], reasons
        assert results[2][0] < 0.05
    finally:
        hole.close()
        wait_probes_idle()
        primary.dispose()


@pytest.mark.parametrize("system", sorted(BAD_URLS))
def test_stopped_server(system: str, sqlite_engine: sa.engine.Engine) -> None:
    driver, template = BAD_URLS[system]
    require_module(driver)
    exc = stale_update(sqlite_engine)
    primary = sa.create_engine(template.format(port=dead_port()))
    try:
        sa_explain.configure(primary=primary, probes=True, probe_timeout=BUDGET, probe_rate=1000)
        elapsed, d = timed_explain(exc, probes=True)
        assert elapsed <= BUDGET + SLACK
        reason = not_checked_reason(d)
        assert "OperationalError" in reason and ("refused" in reason.lower() or "can't connect" in reason.lower()), reason
        assert "s3cr3t" not in repr(d)
        assert d["cause"] == "row_deleted"  # still diagnosed from the write log
        assert d["bind"]["url"] is None or "s3cr3t" not in d["bind"]["url"]
    finally:
        wait_probes_idle()
        primary.dispose()


# ----------------------------------------------------------------------------- error storm


@pytest.mark.slow
def test_error_storm_respects_rate_limit_and_memory(tmp_path: Path) -> None:
    threads, per_thread, rate = 8, 1000, 5.0
    primary = sa.create_engine(f"sqlite:///{tmp_path / 'primary.db'}")
    Base.metadata.create_all(primary)
    engines = []
    for i in range(threads):
        e = sa.create_engine(f"sqlite:///{tmp_path / f'worker{i}.db'}")
        Base.metadata.create_all(e)
        engines.append(e)
    sa_explain.configure(primary=primary, probes=True, probe_timeout=BUDGET, probe_rate=rate)
    tracking.clear_writes()
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []
    durations: list[list[float]] = [[] for _ in range(threads)]
    explained = [0] * threads
    mem: dict[str, int] = {}

    def work(i: int) -> None:
        try:
            engine = engines[i]
            for k in range(per_thread):
                if k == 100:
                    barrier.wait()  # warm: caches and rings are full
                    barrier.wait()  # main thread took the first memory reading
                with Session(engine) as s:
                    ghost = FDevice(id=k + 1, name="x")  # a row that does not exist
                    make_transient_to_detached(ghost)
                    s.add(ghost)
                    ghost.name = f"y{k}"
                    try:
                        s.flush()
                    except orm_exc.StaleDataError as exc:
                        t0 = time.monotonic()
                        result = sa_explain.explain(exc)
                        durations[i].append(time.monotonic() - t0)
                        if result is not None:
                            result.to_dict()
                            explained[i] += 1
                    else:
                        raise AssertionError("no StaleDataError")
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    tracemalloc.start()
    try:
        before = dict(sa_probes.stats)
        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for w in workers:
            w.start()
        barrier.wait()
        gc.collect()
        mem["warm"] = tracemalloc.get_traced_memory()[0]
        t_start = time.monotonic()
        barrier.wait()
        for w in workers:
            w.join(120)
        duration = time.monotonic() - t_start
        gc.collect()
        mem["end"] = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert not errors, errors
    assert sum(explained) == threads * per_thread
    started = sa_probes.stats["started"] - before["started"]
    limited = sa_probes.stats["rate_limited"] - before["rate_limited"]
    # Warm-up phase (before t_start) included: allow its duration too via the burst + 1.
    allowed = rate * (duration + 5.0) + max(1.0, rate) + 1
    assert started <= allowed, f"{started} probes in {duration:.1f} s (limit {rate}/s)"
    assert limited >= threads * per_thread - started - 50
    growth = mem["end"] - mem["warm"]
    assert growth < 1_000_000, f"memory grew by {growth} bytes over {threads * (per_thread - 100)} explanations"
    # Waiting is bounded by the budget; what remains is CPU: 8 busy threads on 2 cores
    # under tracemalloc queue for the GIL, and a loaded machine can stall any one call.
    # So the bound is on the 99th percentile, with the slowest call reported.
    flat = sorted(d for per in durations for d in per)
    p99 = flat[int(len(flat) * 0.99) - 1]
    assert p99 <= BUDGET + 0.1, (
        f"explain() p99 {p99 * 1000:.0f} ms (slowest {flat[-1] * 1000:.0f} ms) under {threads} threads"
    )
    wait_probes_idle()
    for e in [primary, *engines]:
        e.dispose()


# ----------------------------------------------------------------------------- bounded memory


def test_one_million_tracked_statements_stay_bounded() -> None:
    engine = sa.create_engine("sqlite://")
    sa_explain.configure(probes=False)
    limit = sa_explain.get_config().track_statements
    tracking.clear_statements()
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        on_execute = tracking._after_cursor_execute
        for i in range(10_000):
            on_execute(conn, cursor, f"SELECT {i} FROM device", (), None, False)
        gc.collect()
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            for i in range(1_000_000):
                on_execute(conn, cursor, f"UPDATE device SET name = 'n' WHERE id = {i}", (), None, False)
            gc.collect()
            end = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        # And the real path still tracks real statements through the listener.
        conn.exec_driver_sql("SELECT 1")
    ring = tracking._ring.get()
    assert ring is not None and len(ring) <= limit
    assert end - start < 200_000, f"1 M statements grew memory by {end - start} bytes"
    recent = tracking.recent_statements()
    assert len(recent) <= limit and recent[-1].sql == "SELECT 1"
    engine.dispose()


def test_write_log_is_bounded_across_many_identities(sqlite_engine: sa.engine.Engine) -> None:
    sa_explain.configure(probes=False, track_writes=1000)
    with Session(sqlite_engine) as s:
        for batch in range(20):
            s.add_all(FDevice(id=batch * 500 + i, name="n") for i in range(500))
            s.commit()
    assert tracking.write_log_size() <= 1000


def test_pending_write_log_bounded_in_one_long_transaction(sqlite_engine: sa.engine.Engine) -> None:
    """Regression (found here): one long transaction must not grow the write log without limit.

    The first write log kept a list of uncommitted records per session with no cap (a
    10 M-row import kept 10 M records, ≈ 2-3 GB). The log is now one bounded,
    append-only deque of tuples, commit markers included.
    """
    sa_explain.configure(probes=False, track_writes=1000)
    with Session(sqlite_engine) as s:
        for batch in range(40):
            s.add_all(FDevice(id=batch * 500 + i, name="n") for i in range(500))
            s.flush()
        pending = tracking.write_log_size()
        s.rollback()
    assert pending <= 1000, f"{pending} write records kept for one uncommitted session (track_writes=1000)"


# ----------------------------------------------------------------------------- no references kept


def _deleted_refresh(engine: sa.engine.Engine) -> tuple[Session, FDevice, BaseException, list[weakref.ref[Any]]]:
    conns: list[weakref.ref[Any]] = []

    def remember(conn: Any, *args: Any) -> None:
        conns.append(weakref.ref(conn))

    sa.event.listen(engine, "engine_connect", remember)
    s1 = Session(engine)
    dev = FDevice(id=42, name="sensor")
    s1.add(dev)
    s1.commit()
    with Session(engine) as s2:
        s2.delete(s2.get(FDevice, 42))
        s2.commit()
    exc = capture(lambda: dev.name)
    assert isinstance(exc, orm_exc.ObjectDeletedError)
    sa.event.remove(engine, "engine_connect", remember)
    return s1, dev, exc, conns


@pytest.mark.parametrize("probes", [False, True])
def test_nothing_is_kept_alive(sqlite_engine: sa.engine.Engine, probes: bool) -> None:
    sa_explain.configure(primary=sqlite_engine, probes=True, probe_rate=1000)
    s1, dev, exc, conns = _deleted_refresh(sqlite_engine)
    explanation = sa_explain.explain(exc, probes=probes)
    assert explanation is not None
    assert explanation.identity == [42]
    if probes:
        assert explanation.probe is not None and explanation.probe["ran"] is True
    session_ref, dev_ref = weakref.ref(s1), weakref.ref(dev)
    exc_ref = weakref.ref(exc)
    s1.close()
    del s1, dev, exc
    wait_probes_idle()
    gc.collect()
    assert exc_ref() is None, gc.get_referrers(exc_ref())
    assert session_ref() is None, "sa-explain keeps the Session alive"
    assert dev_ref() is None, "sa-explain keeps the user object alive"
    assert conns and all(c() is None for c in conns), "sa-explain keeps a Connection alive"
    assert sqlite_engine.pool.checkedout() == 0
    # The explanation, held by the caller, is plain data: nothing reachable from it is live.
    assert _live_objects(explanation) == []
    explanation.to_dict()


def _live_objects(root: object) -> list[str]:
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.orm.state import InstanceState

    bad: list[str] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, Session | Connection | Engine | InstanceState | FDevice | BaseException):
            bad.append(type(obj).__name__)
            continue
        if isinstance(obj, type | str | bytes | int | float):  # leaves (table is a str subclass)
            continue
        stack.extend(gc.get_referents(obj))
    return bad


@pytest.mark.server
def test_no_pg_connection_checked_out_after_explain(pg_engine: sa.engine.Engine) -> None:
    exc = stale_update(pg_engine)
    sa_explain.configure(primary=pg_engine, probes=True, probe_timeout=BUDGET, probe_rate=1000)
    assert pg_engine.pool.checkedout() == 0
    for _ in range(5):
        elapsed, d = timed_explain(exc, probes=True)
        assert d["probe"]["ran"] is True and d["primary_row"] == "absent"
        assert elapsed <= BUDGET + SLACK
    assert pg_engine.pool.checkedout() == 0
