"""MariaDB primary + GTID replica with MASTER_DELAY=1 (tests/servers/mariadb_primary_replica.sh), for real."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm.exc import ObjectDeletedError

import sa_explain
from sa_explain.backends import for_system
from tests._replicas import (
    Widget,
    no_password,
    reset_tables,
    routing_session,
    silent_server,
    wait_mariadb_applied,
    with_driver,
)
from tests._servers import require_module, require_url

pytestmark = pytest.mark.server

BACKEND = for_system("mariadb")


@pytest.fixture(scope="module")
def maria() -> Iterator[tuple[Engine, Engine]]:
    primary = sa.create_engine(require_url("MARIADB_PRIMARY_URL"))
    replica = sa.create_engine(require_url("MARIADB_REPLICA_URL"))
    reset_tables(primary)
    wait_mariadb_applied(primary, replica)
    yield primary, replica
    primary.dispose()
    replica.dispose()


@pytest.mark.parametrize("driver", ["pymysql", "mysqldb"])
def test_detect_role(maria: tuple[Engine, Engine], driver: str) -> None:
    require_module("MySQLdb" if driver == "mysqldb" else driver)
    for name, role in (("MARIADB_PRIMARY_URL", "primary"), ("MARIADB_REPLICA_URL", "replica")):
        engine = sa.create_engine(with_driver(require_url(name), driver))
        with engine.connect() as conn:
            detected = BACKEND.detect_role(conn.connection.dbapi_connection, engine.dialect)
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        assert detected is not None and detected.role == role, detected
        assert detected.system == "mariadb"
        assert detected.server is not None and detected.server.startswith("@@server_id=")
        if role == "replica":
            assert detected.details["read_only"] is True and detected.details["replicating"] is True
        engine.dispose()
    assert BACKEND is for_system("mysql")


def test_detect_role_needs_no_privilege(maria: tuple[Engine, Engine]) -> None:
    engine = sa.create_engine(
        with_driver(
            require_url("MARIADB_REPLICA_URL"), "pymysql", username="plain", password="plain"
        )
    )
    with engine.connect() as conn:
        detected = BACKEND.detect_role(conn.connection.dbapi_connection, engine.dialect)
    assert detected is not None and detected.role == "replica"
    engine.dispose()


def test_measure_lag_in_flight_then_caught_up(maria: tuple[Engine, Engine]) -> None:
    primary, replica = maria
    wait_mariadb_applied(primary, replica)
    idle = BACKEND.measure_lag(replica, primary, time.monotonic() + 2.0)
    assert idle is not None and idle["error"] is None, idle
    assert idle["caught_up"] is True and idle["lag_seconds"] == 0.0
    assert idle["gtid"]["primary"] == idle["gtid"]["replica"]

    with primary.begin() as c:
        c.execute(sa.insert(Widget).values(name="in-flight"))
    busy = BACKEND.measure_lag(replica, primary, time.monotonic() + 2.0)
    assert busy is not None and busy["error"] is None, busy
    assert busy["caught_up"] is False, busy
    assert busy["lag_transactions"] == 1
    g = busy["gtid"]
    assert g["primary"] != g["replica"] and g["received"] == g["primary"]
    # Seconds_Behind_Master reads 0 here; SQL_Remaining_Delay says a second remains.
    assert busy["lag_seconds"] is not None and busy["lag_seconds"] >= 1.0, busy
    assert busy["node"] == f"127.0.0.1:{replica.url.port}"

    wait_mariadb_applied(primary, replica)
    after = BACKEND.measure_lag(replica, primary, time.monotonic() + 2.0)
    assert after is not None and after["caught_up"] is True and after["lag_seconds"] == 0.0


def test_measure_lag_without_the_monitor_privilege(maria: tuple[Engine, Engine]) -> None:
    """SHOW SLAVE STATUS is refused (no SLAVE MONITOR): the GTID comparison still works."""
    primary, _ = maria
    plain = sa.create_engine(
        with_driver(
            require_url("MARIADB_REPLICA_URL"), "pymysql", username="plain", password="plain"
        )
    )
    with primary.begin() as c:
        c.execute(sa.insert(Widget).values(name="no-privilege"))
    r = BACKEND.measure_lag(plain, primary, time.monotonic() + 2.0)
    assert r is not None and r["error"] is None, r
    assert r["caught_up"] is False and r["lag_seconds"] is None
    assert any("SLAVE MONITOR" in n for n in r["notes"])
    assert "plain@" not in str(r)
    wait_mariadb_applied(primary, sa.create_engine(require_url("MARIADB_REPLICA_URL")))
    plain.dispose()


def test_measure_lag_respects_deadlines(maria: tuple[Engine, Engine]) -> None:
    primary, replica = maria
    started = time.monotonic()
    r = BACKEND.measure_lag(replica, primary, time.monotonic() + 0.0005)
    assert r is not None and r["error"], r
    assert time.monotonic() - started < 0.05
    with silent_server() as port:
        dead = sa.create_engine(f"mysql+pymysql://app:s3cret@127.0.0.1:{port}/appdb")
        started = time.monotonic()
        r = BACKEND.measure_lag(dead, None, time.monotonic() + 0.2)
        took = time.monotonic() - started
    assert r is not None and "timed out" in r["error"], r
    assert took < 0.3, took
    assert "s3cret" not in str(r)


def test_prepare_probe_timeout_is_put_back(maria: tuple[Engine, Engine]) -> None:
    primary, _ = maria
    engine = sa.create_engine(require_url("MARIADB_PRIMARY_URL"), pool_size=1, max_overflow=0)
    with engine.connect() as conn:
        trans = conn.begin()
        BACKEND.prepare_probe(conn, 0.25)
        assert float(conn.execute(sa.text("SELECT @@session.max_statement_time")).scalar()) == 0.25
        trans.rollback()
    with engine.connect() as conn:  # the same DBAPI connection (pool_size=1), reset on check-in
        value = conn.execute(sa.text("SELECT @@session.max_statement_time")).scalar()
        default = conn.execute(sa.text("SELECT @@global.max_statement_time")).scalar()
        assert float(value) == float(default)
    assert BACKEND.probe_prefix(engine) == ""
    engine.dispose()
    del primary


@pytest.mark.parametrize("driver", ["pymysql", "mysqldb"])
def test_routing_session_object_deleted_is_replica_lag(
    maria: tuple[Engine, Engine], driver: str
) -> None:
    require_module("MySQLdb" if driver == "mysqldb" else driver)
    primary = sa.create_engine(with_driver(require_url("MARIADB_PRIMARY_URL"), driver))
    replica = sa.create_engine(with_driver(require_url("MARIADB_REPLICA_URL"), driver))
    wait_mariadb_applied(primary, replica)
    sa_explain.configure(primary=primary, replicas=[replica], probe_rate=1000)
    session = routing_session(primary, replica)
    widget = Widget(name="hello")
    session.add(widget)
    session.commit()
    with pytest.raises(ObjectDeletedError) as info:
        _ = widget.name
    explanation = sa_explain.explain(info.value)
    session.close()
    assert explanation is not None
    record = explanation.to_dict()
    print(
        f"\nMariaDB {driver} explanation:",
        {k: record[k] for k in ("cause", "confidence", "bind", "replica", "primary_row", "probe")},
    )
    assert record["bind"]["role"] == "replica" and record["bind"]["system"] == "mariadb"
    rep = record["replica"]
    assert rep is not None and rep["caught_up"] is False, rep
    assert rep["gtid"]["primary"] and rep["gtid"]["replica"] != rep["gtid"]["primary"]
    assert rep["lag_seconds"] is not None and rep["lag_seconds"] > 0
    assert record["primary_row"] == "present"
    assert record["cause"] == "replica_lag", record
    no_password(record, "app")
    primary.dispose()
    replica.dispose()
