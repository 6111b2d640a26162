"""PostgreSQL primary + delayed streaming standby (tests/servers/pg_primary_replica.sh), for real.

The standby applies commits ``recovery_min_apply_delay`` (1 s) late, so a routing Session
that reads after a commit really misses the row, and lag is really there to be measured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

import sa_explain
from sa_explain.backends import for_system
from tests._replicas import (
    Base,
    VersionedDoc,
    Widget,
    no_password,
    reset_tables,
    routing_session,
    silent_server,
    wait_pg_replayed,
    with_driver,
)
from tests._servers import require_module, require_url

pytestmark = pytest.mark.server

BACKEND = for_system("postgresql")


@pytest.fixture(scope="module")
def pg() -> Iterator[tuple[Engine, Engine]]:
    primary = sa.create_engine(require_url("PG_PRIMARY_URL"))
    standby = sa.create_engine(require_url("PG_STANDBY_URL"))
    reset_tables(primary)
    wait_pg_replayed(primary, standby)
    yield primary, standby
    primary.dispose()
    standby.dispose()


def _raw_detect(engine: Engine) -> Any:
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        detected = BACKEND.detect_role(dbapi, engine.dialect)
        # detect_role must leave no transaction open on the connection
        status = getattr(getattr(dbapi, "info", None), "transaction_status", None)
        if status is not None:
            assert int(status) == 0, f"transaction left open: status {status}"
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    return detected


# --------------------------------------------------------------------------- role detection


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_detect_role_primary_and_standby(pg: tuple[Engine, Engine], driver: str) -> None:
    require_module(driver)
    primary = sa.create_engine(with_driver(require_url("PG_PRIMARY_URL"), driver))
    standby = sa.create_engine(with_driver(require_url("PG_STANDBY_URL"), driver))
    p, s = _raw_detect(primary), _raw_detect(standby)
    assert (p.role, p.server, p.system) == ("primary", "pg_primary", "postgresql")
    assert (s.role, s.server) == ("replica", "pg_standby")
    assert s.details["in_recovery"] is True and s.details["port"] == standby.url.port
    primary.dispose()
    standby.dispose()


def test_detect_role_asyncpg() -> None:
    require_module("asyncpg")
    from sqlalchemy.ext.asyncio import create_async_engine

    async def detect(url: str) -> Any:
        engine = create_async_engine(with_driver(url, "asyncpg"))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: BACKEND.detect_role(sync.connection.dbapi_connection, sync.dialect)
                )
        finally:
            await engine.dispose()

    p = asyncio.run(detect(require_url("PG_PRIMARY_URL")))
    s = asyncio.run(detect(require_url("PG_STANDBY_URL")))
    assert (p.role, s.role) == ("primary", "replica")


def test_detect_role_is_cheap_and_cached_by_tracking(pg: tuple[Engine, Engine]) -> None:
    """Through the lead's tracking: one detection per DBAPI connection, role on the bind."""
    del pg  # only for the servers being up
    sa_explain.configure(probes=False)  # no configured roles: detection decides
    engine = sa.create_engine(require_url("PG_STANDBY_URL"), pool_size=1, max_overflow=0)
    from sa_explain import tracking

    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    info = tracking.engine_info(engine)
    assert info is not None and info.detected is not None
    assert info.detected.role == "replica"
    assert tracking.bind_info(engine).role == "replica"
    engine.dispose()


# --------------------------------------------------------------------------- lag


def test_measure_lag_in_flight_then_caught_up(pg: tuple[Engine, Engine]) -> None:
    primary, standby = pg
    wait_pg_replayed(primary, standby)
    idle = BACKEND.measure_lag(standby, primary, time.monotonic() + 2.0)
    assert idle is not None and idle["error"] is None, idle
    assert idle["caught_up"] is True and idle["lag_bytes"] == 0 and idle["lag_seconds"] == 0.0

    with primary.begin() as c:
        c.execute(sa.insert(Widget).values(name="in-flight"))
    busy = BACKEND.measure_lag(standby, primary, time.monotonic() + 2.0)
    assert busy is not None and busy["error"] is None, busy
    assert busy["caught_up"] is False
    assert busy["lag_bytes"] > 0
    assert 0.0 < busy["lag_seconds"] <= 1.5, busy  # the apply delay is 1 s
    assert busy["node"] == f"127.0.0.1:{standby.url.port}"
    assert busy["measured_by"].startswith("pg_wal_lsn_diff")
    assert busy["elapsed_ms"] < 2000

    wait_pg_replayed(primary, standby)
    after = BACKEND.measure_lag(standby, primary, time.monotonic() + 2.0)
    assert after is not None and after["caught_up"] is True and after["lag_bytes"] == 0


def test_measure_lag_without_primary_is_a_lower_bound(pg: tuple[Engine, Engine]) -> None:
    primary, standby = pg
    with primary.begin() as c:
        c.execute(sa.insert(Widget).values(name="standby-only"))
    r = BACKEND.measure_lag(standby, None, time.monotonic() + 2.0)
    assert r is not None and r["error"] is None, r
    assert "standby only" in r["measured_by"]
    # the standby has received the commit record but not applied it
    assert r["caught_up"] is False and r["lag_bytes"] > 0
    wait_pg_replayed(primary, standby)


def test_measure_lag_respects_a_tiny_deadline(pg: tuple[Engine, Engine]) -> None:
    primary, standby = pg
    started = time.monotonic()
    r = BACKEND.measure_lag(standby, primary, time.monotonic() + 0.0005)
    took = time.monotonic() - started
    assert r is not None and r["error"], r
    assert took < 0.05, took


def test_measure_lag_gives_up_on_a_silent_server() -> None:
    with silent_server() as port:
        engine = sa.create_engine(f"postgresql+psycopg://app:s3cret@127.0.0.1:{port}/appdb")
        started = time.monotonic()
        r = BACKEND.measure_lag(engine, None, time.monotonic() + 0.2)
        took = time.monotonic() - started
    assert r is not None and "timed out" in r["error"], r
    assert 0.15 < took < 0.3, took
    assert "s3cret" not in str(r)


def test_measure_lag_on_a_primary_says_so(pg: tuple[Engine, Engine]) -> None:
    primary, _ = pg
    r = BACKEND.measure_lag(primary, primary, time.monotonic() + 2.0)
    assert r is not None and "not in recovery" in r["error"]


def test_prepare_probe_sets_local_timeouts(pg: tuple[Engine, Engine]) -> None:
    primary, _ = pg
    with primary.connect() as conn:
        trans = conn.begin()
        BACKEND.prepare_probe(conn, 0.25)
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "250ms"
        assert conn.execute(sa.text("SHOW lock_timeout")).scalar() == "250ms"
        trans.rollback()
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "0"
        conn.rollback()
    assert BACKEND.probe_prefix(primary) == ""


# --------------------------------------------------------------------------- the incident


def test_routing_session_object_deleted_is_replica_lag(pg: tuple[Engine, Engine]) -> None:
    primary, standby = pg
    wait_pg_replayed(primary, standby)
    sa_explain.configure(primary=primary, replicas=[standby], probe_rate=1000)
    session = routing_session(primary, standby)
    widget = Widget(name="hello")
    session.add(widget)
    session.commit()  # INSERT on the primary; expire_on_commit
    with pytest.raises(ObjectDeletedError) as info:
        _ = widget.name  # refresh SELECT -> get_bind -> standby, 1 s behind
    explanation = sa_explain.explain(info.value)
    session.close()
    assert explanation is not None
    record = explanation.to_dict()
    print(
        "\nPG routing-session explanation:",
        {k: record[k] for k in ("cause", "confidence", "bind", "replica", "primary_row", "probe")},
    )
    assert record["cause"] == "replica_lag", record
    assert record["bind"]["role"] == "replica"
    assert record["bind"]["role_source"] == "configured"
    replica = record["replica"]
    assert replica is not None and replica["caught_up"] is False, replica
    assert replica["lag_bytes"] is not None and replica["lag_bytes"] > 0
    assert replica["lag_seconds"] is not None and replica["lag_seconds"] > 0
    assert record["primary_row"] == "present"
    no_password(record, "app")


def test_routing_session_detected_roles_without_configure(pg: tuple[Engine, Engine]) -> None:
    """Only install(): the standby is recognised as a replica by detection."""
    primary, standby = pg
    wait_pg_replayed(primary, standby)
    sa_explain.install()
    p = sa.create_engine(require_url("PG_PRIMARY_URL"))
    s = sa.create_engine(require_url("PG_STANDBY_URL"))
    session = routing_session(p, s)
    widget = Widget(name="detected")
    session.add(widget)
    session.commit()
    with pytest.raises(ObjectDeletedError) as info:
        _ = widget.name
    record = sa_explain.explain(info.value).to_dict()  # type: ignore[union-attr]
    session.close()
    print(
        "\nPG detected-roles explanation:",
        {k: record[k] for k in ("cause", "bind", "replica", "primary_row")},
    )
    assert record["bind"]["role"] == "replica"
    assert record["bind"]["role_source"] == "detected"
    assert record["bind"]["server"] == "pg_standby"
    p.dispose()
    s.dispose()


# --------------------------------------------------------------------------- StaleDataError


def _stale_sync(engine: Engine) -> BaseException:
    with Session(engine) as s1:
        doc = VersionedDoc(title="v1")
        s1.add(doc)
        s1.commit()
        doc_id = doc.id  # reloads the row: version 1 in memory
        with Session(engine) as s2:  # a concurrent writer bumps the version first
            other = s2.get(VersionedDoc, doc_id)
            assert other is not None
            other.title = "theirs"
            s2.commit()
        doc.title = "mine"  # UPDATE … WHERE id = ? AND version_id = 1 matches nothing
        with pytest.raises(StaleDataError) as info:
            s1.commit()
        return info.value


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_stale_data_on_postgresql(pg: tuple[Engine, Engine], driver: str) -> None:
    require_module(driver)
    engine = sa.create_engine(with_driver(require_url("PG_PRIMARY_URL"), driver))
    sa_explain.configure(primary=engine, probe_rate=1000)
    exc = _stale_sync(engine)
    record = sa_explain.explain(exc).to_dict()  # type: ignore[union-attr]
    print(
        f"\nPG {driver} StaleDataError:",
        {k: record[k] for k in ("cause", "rows", "version", "primary_row")},
    )
    assert record["error"] == "stale_data"
    assert record["rows"]["expected"] == 1 and record["rows"]["matched"] == 0
    assert record["bind"]["driver"] == driver and record["bind"]["role"] == "primary"
    assert record["cause"] == "concurrent_update", record
    no_password(record, "app")
    engine.dispose()


def test_stale_data_on_postgresql_asyncpg(pg: tuple[Engine, Engine]) -> None:
    require_module("asyncpg")
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    async def scenario() -> BaseException:
        engine = create_async_engine(with_driver(require_url("PG_PRIMARY_URL"), "asyncpg"))
        sa_explain.configure(primary=engine, probe_rate=1000)
        try:
            async with AsyncSession(engine) as s1:
                doc = VersionedDoc(title="v1")
                s1.add(doc)
                await s1.commit()
                await s1.refresh(doc)  # version 1 in memory (no lazy load in async)
                doc_id = doc.id
                async with AsyncSession(engine) as s2:
                    other = await s2.get(VersionedDoc, doc_id)
                    assert other is not None
                    other.title = "theirs"
                    await s2.commit()
                doc.title = "mine"
                try:
                    await s1.commit()
                except StaleDataError as exc:
                    return exc
                raise AssertionError("no StaleDataError")
        finally:
            await engine.dispose()

    exc = asyncio.run(scenario())
    record = sa_explain.explain(exc).to_dict()  # type: ignore[union-attr]
    print(
        "\nPG asyncpg StaleDataError:",
        {k: record[k] for k in ("cause", "rows", "version", "primary_row")},
    )
    assert record["error"] == "stale_data"
    assert record["bind"]["driver"] == "asyncpg"
    assert record["rows"]["matched"] == 0
    assert record["cause"] == "concurrent_update", record


def test_tables_exist_for_the_models() -> None:
    assert {"sae_widget", "sae_vdoc"} <= set(Base.metadata.tables)


def test_probe_is_skipped_when_lag_spent_the_budget(pg: tuple[Engine, Engine]) -> None:
    primary, standby = pg
    wait_pg_replayed(primary, standby)
    budget = 0.005  # lag readings open fresh backend connections: several ms
    sa_explain.configure(primary=primary, replicas=[standby], probe_rate=1000, probe_timeout=budget)
    session = routing_session(primary, standby)
    widget = Widget(name="budget")
    session.add(widget)
    session.commit()
    with pytest.raises(ObjectDeletedError) as info:
        _ = widget.name
    started = time.perf_counter()
    explanation = sa_explain.explain(info.value)
    elapsed = time.perf_counter() - started
    session.close()
    assert explanation is not None
    d = explanation.to_dict()
    assert elapsed < budget + 0.05, f"explain() took {elapsed * 1000:.1f} ms for a {budget * 1000:.0f} ms budget"
    assert d["probe"]["ran"] is False and "budget" in d["probe"]["skipped"], d["probe"]
    assert any("budget" in e for e in d["evidence"]), d["evidence"]
    assert d["replica"]["error"], d["replica"]  # the lag reading itself was cut off
    assert d["cause"] == "replica_lag"  # still: the refresh read a replica
