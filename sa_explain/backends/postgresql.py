"""PostgreSQL and pgpool-II: who is the primary, how far behind is the standby.

Role, once per new connection, in ONE query of stable functions::

    SELECT current_setting('in_hot_standby', true), current_setting('cluster_name'),
           inet_server_port(), host(inet_server_addr())

``in_hot_standby`` (PostgreSQL 14+) says what ``pg_is_in_recovery()`` says, but it is a
setting, read by a STABLE function. That matters behind pgpool-II: pgpool sends any
statement that calls a VOLATILE function (``pg_is_in_recovery()``, ``pg_last_wal_*``) to
the primary, so such a probe reports "primary" for a session whose reads all go to a
standby, *and* counts as a write, which under ``disable_load_balance_on_write =
'always'`` would pin the application's session to the primary for good. Stable
functions are load-balanced like the application's own SELECTs, so the answer describes
the node that serves this connection's reads. On PostgreSQL 13 and older the setting
is missing and ``pg_is_in_recovery()`` is asked in a second query (direct servers only).

pgpool-II is recognised when the server's own address or port differs from the one the
client connected to (something relays the connection) and ``SHOW pool_version``, which
only pgpool answers, succeeds. The answer is cached per address, so a plain server
behind a port mapping costs one failed ``SHOW`` per process, not per connection.
``SHOW pool_nodes`` then lists the backends, their roles, pgpool's own delay figure and
this session's load-balance node.

Lag, at explain time, on fresh connections (see :mod:`sa_explain.backends._direct`):
the primary's ``pg_current_wal_lsn()`` is read first, then the standby's
``pg_last_wal_replay_lsn()``; ``lag_bytes`` is their difference and ``caught_up`` says
whether the standby had replayed everything the primary had written before the reading
started. ``lag_seconds`` is ``now() - pg_last_xact_replay_timestamp()`` — an upper bound
(time since the last replayed commit) — and 0 when caught up: on an idle primary that
timestamp keeps ageing although nothing is pending. ``pg_stat_replication.replay_lag``
is not used: it is a sampled estimate that read 0.45 ms while a commit was still a
second from being applied.
"""

from __future__ import annotations

import contextlib
import ipaddress
import threading
from typing import TYPE_CHECKING, Any

from sa_explain.backends import Detected, register, remaining
from sa_explain.backends._direct import (
    DirectLagBackend,
    describe,
    empty_reading,
    pg_connect,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Dialect, Engine

NO_LOAD_BALANCE = "/*NO LOAD BALANCE*/ "
MAX_STANDBYS = 4

_DETECT_SQL = (
    "SELECT current_setting('in_hot_standby', true) AS hot, current_setting('cluster_name') AS cluster, "
    "inet_server_port() AS port, host(inet_server_addr()) AS addr"
)
_STANDBY_SQL = (
    "SELECT pg_is_in_recovery() AS in_recovery, "
    "pg_last_wal_receive_lsn()::text AS receive_lsn, "
    "pg_last_wal_replay_lsn()::text AS replay_lsn, "
    "EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp()))::float8 AS since_replay, "
    "current_setting('recovery_min_apply_delay') AS apply_delay, "
    "current_setting('cluster_name') AS cluster_name, "
    "inet_server_port() AS port, host(inet_server_addr()) AS addr, "
    "(SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'startup' LIMIT 1) AS startup_wait"
)
_PRIMARY_LSN_SQL = NO_LOAD_BALANCE + "SELECT pg_current_wal_lsn()::text AS lsn"

BY_LSN = "pg_wal_lsn_diff(primary pg_current_wal_lsn(), standby pg_last_wal_replay_lsn())"
BY_STANDBY_ONLY = (
    "standby only: pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) "
    "(primary not known: a lower bound)"
)
SECONDS_BY = "now() - pg_last_xact_replay_timestamp() (upper bound; 0 when caught up)"
SECONDS_BY_DELAY = (
    "min(now() - pg_last_xact_replay_timestamp(), recovery_min_apply_delay): the standby "
    "is holding a commit back for recovery_min_apply_delay (upper bound; 0 when caught up)"
)

_lock = threading.Lock()
_pgpool_version: dict[
    tuple[str, int | None], str | None
] = {}  # endpoint -> version | None (not pgpool)
_MAX_CACHE = 512


def lsn_to_int(lsn: Any) -> int | None:
    """``'0/30230C0'`` -> 50475200; None for NULL or junk."""
    if not isinstance(lsn, str) or "/" not in lsn:
        return None
    hi, _, lo = lsn.partition("/")
    try:
        return (int(hi, 16) << 32) + int(lo, 16)
    except ValueError:
        return None


def _remember(endpoint: tuple[str, int | None], version: str | None) -> None:
    with _lock:
        if len(_pgpool_version) >= _MAX_CACHE:
            _pgpool_version.clear()
        _pgpool_version[endpoint] = version


def is_known_pgpool(host: str | None, port: int | None) -> bool:
    """Whether a connection to ``host:port`` was recognised as pgpool-II in this process."""
    with _lock:
        return _pgpool_version.get((host or "", port or 5432)) is not None


def _client_endpoint(dbapi: Any) -> tuple[str | None, str | None, int | None]:
    """(host, resolved address, port) the DBAPI connection was opened to, when the driver says."""
    raw = getattr(dbapi, "driver_connection", None) or dbapi
    info = getattr(raw, "info", None)
    if info is not None and hasattr(info, "port"):  # psycopg 3, psycopg2
        host = getattr(info, "host", None)
        hostaddr = getattr(info, "hostaddr", None) or None
        try:
            port: int | None = int(info.port)
        except Exception:
            port = None
        return host, hostaddr, port
    addr = getattr(raw, "_addr", None)  # asyncpg: (host, port) or a socket path
    if isinstance(addr, tuple) and len(addr) >= 2:
        return str(addr[0]), None, int(addr[1])
    if isinstance(addr, str):
        return addr, None, None
    return None, None, None


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _relayed(
    host: str | None,
    hostaddr: str | None,
    port: int | None,
    server_addr: str | None,
    server_port: int | None,
) -> bool:
    """Whether the server's own address/port contradicts the one we connected to."""
    if host is None and port is None:
        return False  # the driver does not say: nothing to compare
    over_socket = bool(host) and str(host).startswith("/")
    if over_socket:
        return server_port is not None  # we used a socket, the server was reached over TCP
    if server_port is None:
        return True  # we used TCP, the server was reached over a socket
    if port is not None and server_port != port:
        return True
    client_ip = _ip(hostaddr) or _ip(host)
    server_ip = _ip(server_addr)
    if client_ip is not None and server_ip is not None and client_ip != server_ip:
        return not (client_ip.is_loopback and server_ip.is_loopback)
    return False


def _is_asyncpg(dbapi: Any) -> bool:
    raw = getattr(dbapi, "driver_connection", None)
    return raw is not None and type(raw).__module__.startswith("asyncpg")


def _rows(dbapi: Any, sql: str) -> list[dict[str, Any]]:
    cur = dbapi.cursor()
    try:
        cur.execute(sql)
        rows = _fetch(cur)
        if not rows:
            try:
                if cur.nextset():
                    rows = _fetch(cur)
            except Exception:
                pass
        return rows
    finally:
        with contextlib.suppress(Exception):
            cur.close()


def _fetch(cur: Any) -> list[dict[str, Any]]:
    if cur.description is None:
        return []
    cols = [str(d[0]) for d in cur.description]
    return [dict(zip(cols, row, strict=False)) for row in cur.fetchall()]


def _simple_query(dbapi: Any, sql: str) -> None:
    """Run ``sql`` with the simple query protocol on an asyncpg adapted connection.

    pgpool answers ``SHOW pool_*`` only in the simple protocol; asyncpg's cursors
    always prepare, so pgpool would pass the statement to PostgreSQL, which rejects it.
    """
    from sqlalchemy import util

    await_ = getattr(util, "await_", None) or util.await_only
    await_(dbapi.driver_connection.execute(sql))


def _pool_version(dbapi: Any) -> str | None:
    """pgpool's version if ``dbapi`` is connected to pgpool-II, else None (leaves a failed transaction)."""
    try:
        if _is_asyncpg(dbapi):
            _simple_query(dbapi, "SHOW pool_version")
            return "pgpool-II"
        rows = _rows(dbapi, "SHOW pool_version")
    except Exception:
        return None
    if rows:
        value = next(iter(rows[0].values()), None)
        return f"pgpool-II {value}" if value else "pgpool-II"
    return "pgpool-II"


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


def parse_pool_nodes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``SHOW pool_nodes`` rows (all strings) as plain typed dicts."""
    nodes = []
    for r in rows:
        delay_raw = r.get("replication_delay")
        nodes.append(
            {
                "node_id": _int(r.get("node_id")),
                "address": r.get("hostname"),
                "port": _int(r.get("port")),
                "status": r.get("status"),
                "role": r.get("role"),
                "weight": _float(r.get("lb_weight")),
                "load_balance_node": str(r.get("load_balance_node")).lower() == "true",
                # bytes of WAL in pgpool 4.3; "N second(s)" with delay_threshold_by_time (4.4+)
                "replication_delay": _int(delay_raw) if _int(delay_raw) is not None else delay_raw,
                "replication_state": r.get("replication_state") or None,
            }
        )
    return nodes


_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def _interval_seconds(setting: Any) -> float | None:
    """A PostgreSQL time setting as shown by ``current_setting`` (``'1s'``, ``'500ms'``, ``'0'``)."""
    text = str(setting or "").strip()
    if not text:
        return None
    num = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(num) :] or "ms"
    try:
        return float(num) * _UNITS[unit]
    except (ValueError, KeyError):
        return None


def _node_name(node: dict[str, Any]) -> str:
    return f"{node.get('address')}:{node.get('port')}"


class PostgreSQLBackend(DirectLagBackend):
    """PostgreSQL streaming replication, directly or through pgpool-II."""

    systems = ("postgresql",)

    # ------------------------------------------------------------------ role
    def detect_role(self, dbapi_connection: Any, dialect: Dialect) -> Detected | None:
        try:
            return self._detect(dbapi_connection)
        except Exception as exc:
            return Detected(role="unknown", system="postgresql", details={"error": describe(exc)})
        finally:
            with contextlib.suppress(Exception):
                dbapi_connection.rollback()  # leave no transaction (failed or not) behind

    def _detect(self, dbapi: Any) -> Detected:
        rows = _rows(dbapi, _DETECT_SQL)
        if not rows:
            return Detected(role="unknown", system="postgresql")
        row = rows[0]
        hot, cluster, server_port, server_addr = (
            row["hot"],
            row["cluster"],
            row["port"],
            row["addr"],
        )
        host, hostaddr, port = _client_endpoint(dbapi)
        endpoint = (host or "", port)
        if _relayed(host, hostaddr, port, server_addr, server_port):
            with _lock:
                known = endpoint in _pgpool_version
                version = _pgpool_version.get(endpoint)
            if not known:
                version = _pool_version(dbapi)
                with contextlib.suppress(Exception):
                    dbapi.rollback()  # SHOW pool_version fails on a real server
                _remember(endpoint, version)
                if hostaddr and hostaddr != host:
                    _remember((hostaddr, port), version)
            if version is not None:
                return self._pgpool(dbapi, version, hot, cluster, server_addr, server_port)
        if hot is None:  # PostgreSQL 13 and older: no in_hot_standby setting
            rec = _rows(dbapi, "SELECT pg_is_in_recovery()")
            in_recovery = bool(next(iter(rec[0].values()))) if rec else None
        else:
            in_recovery = str(hot).lower() == "on"
        role = "unknown" if in_recovery is None else "replica" if in_recovery else "primary"
        where = f"{server_addr}:{server_port}" if server_port is not None else "local socket"
        return Detected(
            role=role,
            server=str(cluster) if cluster else where,
            system="postgresql",
            details={
                "cluster_name": cluster or None,
                "address": server_addr,
                "port": server_port,
                "in_recovery": in_recovery,
                "by": "pg_is_in_recovery()" if hot is None else "in_hot_standby",
            },
        )

    def _pgpool(
        self, dbapi: Any, version: str, hot: Any, cluster: Any, addr: Any, port: Any
    ) -> Detected:
        # The detection SELECT used stable functions only, so pgpool load-balanced it like
        # the application's reads: it describes the node serving this session's reads.
        read_node = {
            "address": addr,
            "port": port,
            "cluster_name": cluster or None,
            "in_recovery": None if hot is None else str(hot).lower() == "on",
        }
        details: dict[str, Any] = {"proxy": "pgpool-II", "version": version, "read_node": read_node}
        nodes: list[dict[str, Any]] = []
        if not _is_asyncpg(dbapi):
            try:
                nodes = parse_pool_nodes(_rows(dbapi, "SHOW pool_nodes"))
            except Exception as exc:
                details["error"] = describe(exc)
        details["backends"] = nodes
        lb = next((n for n in nodes if n["load_balance_node"]), None)
        details["load_balance_node"] = _node_name(lb) if lb else None
        if lb is not None:
            served = f"{_node_name(lb)} ({lb.get('role')})"
        elif port is not None:
            served = f"{addr}:{port}" + (f" ({cluster})" if cluster else "")
        else:
            served = None
        server = f"{version} → reads on {served}" if served else version
        return Detected(role="proxy", server=server[:200], system="postgresql", details=details)

    # ------------------------------------------------------------------ probe
    def prepare_probe(self, connection: Connection, timeout: float) -> None:
        """``SET LOCAL`` statement and lock timeouts: they end with the probe's transaction."""
        try:
            ms = max(1, int(timeout * 1000))
            connection.exec_driver_sql(
                f"SELECT set_config('statement_timeout', '{ms}ms', true), "
                f"set_config('lock_timeout', '{ms}ms', true)"
            )
        except Exception:
            pass

    def probe_prefix(self, engine: Engine) -> str:
        """``/*NO LOAD BALANCE*/`` for a pgpool-II engine, so the probe reads the primary.

        pgpool honours the comment unless ``allow_sql_comments = on``; on a plain server
        it is just a comment. A proxy given in ``configure(proxies=...)`` gets it too.
        """
        try:
            from sa_explain.config import get_config

            if get_config().configured_role(engine) == "proxy":
                return NO_LOAD_BALANCE
            url = engine.url
            return NO_LOAD_BALANCE if is_known_pgpool(url.host, url.port) else ""
        except Exception:
            return ""

    # ------------------------------------------------------------------ lag
    # measure_lag() comes from DirectLagBackend: _measure() on a bounded thread.

    def _measure(self, replica: Engine, primary: Engine | None, deadline: float) -> dict[str, Any]:
        url = replica.url
        proxy = self._is_proxy(replica)
        primary_lsn: int | None = None
        notes: list[str] = []
        if not proxy and primary is not None and primary is not replica:
            try:
                with pg_connect(primary.url, deadline) as p:
                    primary_lsn = lsn_to_int(p.query(_PRIMARY_LSN_SQL)[0]["lsn"])
            except Exception as exc:
                notes.append(f"primary LSN not read: {describe(exc, primary.url)}")
        if proxy:
            return self._measure_pgpool(url, deadline)
        with pg_connect(url, deadline) as conn:
            row = conn.query(_STANDBY_SQL)[0]
            if not row.get("in_recovery"):
                # Not a standby, or a proxy that routed our volatile functions to the primary.
                try:
                    nodes = parse_pool_nodes(conn.query("SHOW pool_nodes"))
                except Exception:
                    nodes = []
                if nodes:
                    _remember((url.host or "", url.port or 5432), "pgpool-II")
                    conn.close()
                    return self._measure_pgpool(url, deadline, nodes_hint=nodes)
                out = empty_reading()
                out["node"] = conn.node
                out["error"] = f"{conn.node} is not in recovery (a primary, not a standby)"
                return out
        out = self._reading(row, primary_lsn, conn.node)
        if notes:
            out["notes"] = notes
        return out

    @staticmethod
    def _is_proxy(engine: Engine) -> bool:
        try:
            from sa_explain.config import get_config

            if get_config().configured_role(engine) == "proxy":
                return True
            return is_known_pgpool(engine.url.host, engine.url.port)
        except Exception:
            return False

    @staticmethod
    def _reading(row: dict[str, Any], primary_lsn: int | None, node: str) -> dict[str, Any]:
        out = empty_reading()
        replay = lsn_to_int(row.get("replay_lsn"))
        receive = lsn_to_int(row.get("receive_lsn"))
        since = row.get("since_replay")
        pending = max(0, receive - replay) if receive is not None and replay is not None else None
        if primary_lsn is not None and replay is not None:
            out["lag_bytes"] = max(0, primary_lsn - replay)
            out["caught_up"] = replay >= primary_lsn
            out["measured_by"] = BY_LSN
        else:
            out["lag_bytes"] = pending
            out["caught_up"] = False if pending else None
            out["measured_by"] = BY_STANDBY_ONLY
        waiting = row.get("startup_wait") == "RecoveryApplyDelay"
        delay = _interval_seconds(row.get("apply_delay"))
        out["seconds_measured_by"] = SECONDS_BY
        if out["caught_up"]:
            out["lag_seconds"] = 0.0
        elif since is not None and out["caught_up"] is False:
            # The time since the last replayed commit over-states the lag after an idle
            # spell on the primary. When the startup process is holding a commit back for
            # recovery_min_apply_delay, that commit is younger than the delay: a tighter bound.
            seconds = max(0.0, float(since))
            if waiting and delay is not None and delay < seconds:
                seconds = delay
                out["seconds_measured_by"] = SECONDS_BY_DELAY
            out["lag_seconds"] = round(seconds, 3)
        out["waiting_for_apply_delay"] = waiting if row.get("startup_wait") is not None else None
        out["pending_bytes"] = pending
        out["apply_delay"] = row.get("apply_delay")
        out["server"] = row.get("cluster_name") or None
        out["node"] = node
        return out

    def _measure_pgpool(
        self, url: URL, deadline: float, nodes_hint: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """Backends from ``SHOW pool_nodes``; primary LSN through pgpool; each standby directly."""
        with pg_connect(url, deadline) as conn:
            nodes = nodes_hint or parse_pool_nodes(conn.query("SHOW pool_nodes"))
            primary_lsn = lsn_to_int(conn.query(_PRIMARY_LSN_SQL)[0]["lsn"])
        standbys = [
            n for n in nodes if n.get("role") == "standby" and n.get("status") in ("up", "waiting")
        ]
        readings: list[dict[str, Any]] = []
        for node in standbys[:MAX_STANDBYS]:
            reading = self._pgpool_node(url, node, primary_lsn, deadline)
            readings.append(reading)
        out = empty_reading()
        out["proxy"] = "pgpool-II"
        out["nodes"] = readings
        if not readings:
            out["error"] = "pgpool reports no standby that is up"
            return out

        def badness(r: dict[str, Any]) -> tuple[int, int]:
            return (1 if r.get("caught_up") is False else 0, r.get("lag_bytes") or 0)

        worst = max(readings, key=badness)
        for key in (
            "lag_seconds",
            "lag_bytes",
            "caught_up",
            "measured_by",
            "node",
            "error",
            "apply_delay",
            "server",
            "waiting_for_apply_delay",
        ):
            out[key] = worst.get(key)
        out["seconds_measured_by"] = worst.get("seconds_measured_by", SECONDS_BY)
        return out

    def _pgpool_node(
        self, url: URL, node: dict[str, Any], primary_lsn: int | None, deadline: float
    ) -> dict[str, Any]:
        name = _node_name(node)
        delay = node.get("replication_delay")
        base = {
            "node": name,
            "weight": node.get("weight"),
            "pgpool_replication_delay": delay,
        }
        if remaining(deadline) > 0.005:
            try:
                with pg_connect(
                    url, deadline, host=node.get("address"), port=node.get("port")
                ) as s:
                    row = s.query(_STANDBY_SQL)[0]
                reading = self._reading(row, primary_lsn, name)
                reading.pop("elapsed_ms", None)
                reading.pop("gtid", None)
                return {**reading, **base}
            except Exception as exc:
                why = describe(exc, url)
        else:
            why = "no time left to connect to the standby"
        # pgpool's own figure: WAL bytes, sampled every sr_check_period.
        fallback = {k: v for k, v in empty_reading().items() if k not in ("elapsed_ms", "gtid")}
        fallback.update(base)
        if isinstance(delay, int):
            fallback["lag_bytes"] = delay
            fallback["caught_up"] = False if delay > 0 else None
            fallback["measured_by"] = (
                "pgpool SHOW pool_nodes replication_delay (sampled every sr_check_period)"
            )
        fallback["error"] = f"standby not reachable directly: {why}"
        return fallback


BACKEND = PostgreSQLBackend()
register(BACKEND)
