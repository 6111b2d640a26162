"""pgpool-II in front of the PG pair, the application knowing only pgpool's URL: the post-mortem's setup.

tests/servers/pgpool.sh gives the primary load-balance weight 0, so every load-balanced
SELECT goes to the standby (1 s apply delay): the refresh after a commit always misses.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import ObjectDeletedError

import sa_explain
from sa_explain.backends import for_system
from sa_explain.backends import postgresql as pg_backend
from tests._replicas import Widget, no_password, reset_tables, wait_pg_replayed, with_driver
from tests._servers import require_module, require_url

pytestmark = pytest.mark.server

BACKEND = for_system("postgresql")


@pytest.fixture(scope="module")
def pool() -> Iterator[Engine]:
    """The proxy engine, with the standby caught up and the tables in place."""
    proxy = sa.create_engine(require_url("PGPOOL_URL"))
    primary = sa.create_engine(require_url("PG_PRIMARY_URL"))  # only to set up and wait
    standby = sa.create_engine(require_url("PG_STANDBY_URL"))
    reset_tables(primary)
    wait_pg_replayed(primary, standby)
    yield proxy
    proxy.dispose()
    primary.dispose()
    standby.dispose()


def _caught_up() -> None:
    p = sa.create_engine(require_url("PG_PRIMARY_URL"))
    s = sa.create_engine(require_url("PG_STANDBY_URL"))
    wait_pg_replayed(p, s)
    p.dispose()
    s.dispose()


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_detect_pgpool_as_proxy(pool: Engine, driver: str) -> None:
    require_module(driver)
    pg_backend._pgpool_version.clear()  # no cached verdict: run the real check
    engine = sa.create_engine(with_driver(require_url("PGPOOL_URL"), driver))
    with engine.connect() as conn:
        detected = BACKEND.detect_role(conn.connection.dbapi_connection, engine.dialect)
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1  # connection left usable
    assert detected is not None and detected.role == "proxy", detected
    d = detected.details
    assert d["proxy"] == "pgpool-II" and d["version"].startswith("pgpool-II 4.")
    roles = {n["role"] for n in d["backends"]}
    assert roles == {"primary", "standby"}
    standby_port = int(os.environ.get("PG_STANDBY_PORT", "55433"))
    # the detection SELECT is load-balanced like the app's reads: it names the read node
    assert d["read_node"]["port"] == standby_port and d["read_node"]["in_recovery"] is True
    assert d["load_balance_node"] == f"127.0.0.1:{standby_port}"
    assert "pgpool-II" in (detected.server or "")
    assert BACKEND.probe_prefix(engine) == "/*NO LOAD BALANCE*/ "
    engine.dispose()


def test_detect_pgpool_with_asyncpg(pool: Engine) -> None:
    require_module("asyncpg")
    from sqlalchemy.ext.asyncio import create_async_engine

    pg_backend._pgpool_version.clear()

    async def detect() -> Any:
        engine = create_async_engine(with_driver(require_url("PGPOOL_URL"), "asyncpg"))
        try:
            async with engine.connect() as conn:
                found = await conn.run_sync(
                    lambda sync: BACKEND.detect_role(sync.connection.dbapi_connection, sync.dialect)
                )
                assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
                return found
        finally:
            await engine.dispose()

    detected = asyncio.run(detect())
    assert detected is not None and detected.role == "proxy", detected
    assert detected.details["read_node"]["cluster_name"] == "pg_standby"


def test_direct_servers_are_not_taken_for_pgpool(pool: Engine) -> None:
    for name in ("PG_PRIMARY_URL", "PG_STANDBY_URL"):
        engine = sa.create_engine(require_url(name))
        with engine.connect() as conn:
            detected = BACKEND.detect_role(conn.connection.dbapi_connection, engine.dialect)
        assert detected is not None and detected.role in ("primary", "replica")
        assert BACKEND.probe_prefix(engine) == ""
        engine.dispose()


def test_configured_proxy_gets_the_prefix(pool: Engine) -> None:
    pg_backend._pgpool_version.clear()
    engine = sa.create_engine(require_url("PGPOOL_URL"))
    assert BACKEND.probe_prefix(engine) == ""  # nothing known yet
    sa_explain.configure(proxies=[engine], install=False)
    assert BACKEND.probe_prefix(engine) == "/*NO LOAD BALANCE*/ "
    engine.dispose()


# --------------------------------------------------------------------------- lag


def test_measure_lag_through_pgpool(pool: Engine) -> None:
    _caught_up()
    idle = BACKEND.measure_lag(pool, None, time.monotonic() + 2.0)
    assert idle is not None and idle["error"] is None, idle
    assert idle["proxy"] == "pgpool-II" and idle["caught_up"] is True

    with pool.begin() as c:  # the INSERT goes to the primary
        c.execute(sa.insert(Widget).values(name="via-pgpool"))
    busy = BACKEND.measure_lag(pool, None, time.monotonic() + 2.0)
    assert busy is not None and busy["error"] is None, busy
    assert busy["caught_up"] is False and busy["lag_bytes"] > 0 and busy["lag_seconds"] > 0
    standby_port = int(os.environ.get("PG_STANDBY_PORT", "55433"))
    assert busy["node"] == f"127.0.0.1:{standby_port}"
    assert len(busy["nodes"]) == 1 and busy["nodes"][0]["pgpool_replication_delay"] is not None
    _caught_up()


def test_measure_lag_through_pgpool_tiny_deadline(pool: Engine) -> None:
    started = time.monotonic()
    r = BACKEND.measure_lag(pool, None, time.monotonic() + 0.0005)
    assert r is not None and r["error"]
    assert time.monotonic() - started < 0.05


# --------------------------------------------------------------------------- the incident


def _incident(engine: Engine) -> BaseException:
    """Plain Session on the proxy: INSERT + commit, then the refresh SELECT is load-balanced."""
    _caught_up()
    session = Session(engine)
    widget = Widget(name="post-mortem")
    session.add(widget)
    session.commit()
    try:
        with pytest.raises(ObjectDeletedError) as info:
            _ = widget.name
        return info.value
    finally:
        session.close()


def _log_size() -> int:
    log = os.environ.get("PGPOOL_LOG")
    return Path(log).stat().st_size if log and Path(log).exists() else -1


def _probe_nodes(offset: int) -> set[int] | None:
    """pgpool's log (log_per_node_statement) since ``offset``: which nodes ran the probe."""
    log = os.environ.get("PGPOOL_LOG")
    if offset < 0 or not log:
        return None
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    nodes = set()
    for line in text.splitlines():
        if "/*NO LOAD BALANCE*/" in line and "sae_widget" in line:
            m = re.search(r"DB node id: (\d+)", line)
            if m:
                nodes.add(int(m.group(1)))
    return nodes


def test_incident_through_pgpool_with_configured_proxy(pool: Engine) -> None:
    """The recommended configuration when the app only knows the proxy: proxies=[engine]."""
    sa_explain.configure(proxies=[pool], probe_rate=1000)
    exc = _incident(pool)
    offset = _log_size()
    explanation = sa_explain.explain(exc)
    assert explanation is not None
    record = explanation.to_dict()
    print(
        "\npgpool explanation (configured proxy):",
        {k: record[k] for k in ("cause", "confidence", "bind", "replica", "primary_row", "probe")},
    )
    assert record["bind"]["role"] == "proxy" and record["bind"]["role_source"] == "configured"
    assert record["primary_row"] == "present", record["probe"]
    assert record["probe"]["ran"] is True
    nodes = _probe_nodes(offset)
    if nodes is not None:  # pgpool's log says where the probe ran: node 0, the primary
        assert nodes == {0}, nodes
    replica = record["replica"]
    assert replica is not None and replica["caught_up"] is False, replica
    assert replica["lag_bytes"] > 0 and replica["lag_seconds"] > 0
    assert record["cause"] == "replica_lag", record
    no_password(record, "app")


def test_incident_through_pgpool_detected(pool: Engine) -> None:
    """No configure() at all, only install(): detection recognises pgpool."""
    pg_backend._pgpool_version.clear()
    sa_explain.install()
    engine = sa.create_engine(require_url("PGPOOL_URL"))
    exc = _incident(engine)
    record = sa_explain.explain(exc).to_dict()  # type: ignore[union-attr]
    print(
        "\npgpool explanation (detected):",
        {k: record[k] for k in ("cause", "confidence", "bind", "replica", "primary_row", "probe")},
    )
    assert record["bind"]["role"] == "proxy" and record["bind"]["role_source"] == "detected"
    assert "pgpool-II" in (record["bind"]["server"] or "")
    assert record["replica"] is not None and record["replica"]["caught_up"] is False
    assert record["primary_row"] == "present", record["probe"]
    assert record["cause"] == "replica_lag", record
    engine.dispose()
