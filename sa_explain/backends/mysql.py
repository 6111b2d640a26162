"""MySQL 8 and MariaDB: who is the primary, how far behind is the replica, CLIENT_FOUND_ROWS.

Role, once per new connection, in ONE query that needs no privilege::

    MariaDB: SELECT @@server_id, @@read_only, @@port, @@hostname, @@version,
                    @@gtid_slave_pos, <Slave_running from information_schema.GLOBAL_STATUS>
    MySQL:   SELECT @@server_id, @@read_only, @@super_read_only, @@port, @@hostname, @@version

A MariaDB server whose replication threads run (``Slave_running = ON``) or that is
``read_only`` is a replica; otherwise a primary. MySQL 8 keeps replica status in
``performance_schema``, readable only with privileges, so there ``read_only`` /
``super_read_only`` decide (give replicas that are not read-only a role in ``configure()``).

Lag, at explain time, on fresh connections. ``Seconds_Behind_Master`` alone lies: with
``MASTER_DELAY=1`` it read 0 for 0.9 s while the replica was a second behind, because it
is computed from the event the SQL thread is executing, not from what is waiting. So:

* ``caught_up`` comes from GTID positions: the primary's ``@@gtid_binlog_pos`` (MariaDB) /
  ``@@gtid_executed`` (MySQL), read first, against the replica's applied
  ``@@gtid_slave_pos`` (MariaDB, per replication domain) / ``GTID_SUBSET()`` (MySQL);
* ``lag_seconds`` is 0 when caught up, else the larger of ``Seconds_Behind_Master``
  (``Seconds_Behind_Source`` on MySQL 8.0.22+) and ``SQL_Remaining_Delay`` (seconds until a
  delayed event is applied), from ``SHOW SLAVE STATUS`` / ``SHOW REPLICA STATUS``, which
  needs ``SLAVE MONITOR`` (MariaDB 10.5.9+) or ``REPLICATION CLIENT`` (MySQL);
* ``gtid`` = ``{"primary", "replica" (applied), "received" (Gtid_IO_Pos / Retrieved_Gtid_Set)}``
  and, on MariaDB, ``lag_transactions``: how many transactions the replica has yet to apply.

The probe is bounded with ``max_statement_time`` (MariaDB, seconds) or
``max_execution_time`` (MySQL, milliseconds, SELECT only). Both are session settings, so
they are put back (``= DEFAULT``) when the connection returns to its pool.
"""

from __future__ import annotations

import contextlib
import re
import threading
import weakref
from typing import TYPE_CHECKING, Any

from sa_explain.backends import Detected, register
from sa_explain.backends._direct import (
    DirectConnection,
    DirectLagBackend,
    describe,
    empty_reading,
    mysql_connect,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Dialect, Engine
    from sqlalchemy.pool import Pool

_MARIADB_DETECT = (
    "SELECT @@server_id AS server_id, @@read_only AS read_only, @@port AS port, "
    "@@hostname AS hostname, @@version AS version, @@gtid_slave_pos AS gtid_slave_pos, "
    "(SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
    "WHERE VARIABLE_NAME = 'SLAVE_RUNNING') AS slave_running"
)
_MYSQL_DETECT = (
    "SELECT @@server_id AS server_id, @@read_only AS read_only, @@super_read_only AS super_read_only, "
    "@@port AS port, @@hostname AS hostname, @@version AS version"
)
_RESTORE_KEY = "sa_explain.restore_sql"
_hooked: weakref.WeakSet[Pool] = weakref.WeakSet()
_hook_lock = threading.Lock()

_GTID = re.compile(r"^\s*(\d+)-(\d+)-(\d+)\s*$")


def parse_mariadb_gtids(pos: Any) -> dict[int, int]:
    """``'0-1-10,1-2-5'`` -> ``{0: 10, 1: 5}`` (domain -> sequence number)."""
    out: dict[int, int] = {}
    if not pos:
        return out
    for part in str(pos).split(","):
        m = _GTID.match(part)
        if m:
            out[int(m.group(1))] = int(m.group(3))
    return out


def mariadb_behind(primary_pos: Any, replica_pos: Any) -> int:
    """Transactions the replica has yet to apply: per domain, primary seq - replica seq."""
    p, r = parse_mariadb_gtids(primary_pos), parse_mariadb_gtids(replica_pos)
    return sum(max(0, seq - r.get(domain, 0)) for domain, seq in p.items())


def _is_mariadb(dialect: Any, version: str | None = None) -> bool:
    if version is not None:
        return "mariadb" in version.lower()
    return bool(getattr(dialect, "is_mariadb", False))


def _num(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _truthy(value: Any) -> bool:
    return str(value).strip().upper() in ("1", "ON", "YES", "TRUE")


def _rows(dbapi: Any, sql: str) -> list[dict[str, Any]]:
    cur = dbapi.cursor()
    try:
        cur.execute(sql)
        if cur.description is None:
            return []
        cols = [str(d[0]) for d in cur.description]
        return [dict(zip(cols, row, strict=False)) for row in cur.fetchall()]
    finally:
        with contextlib.suppress(Exception):
            cur.close()


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes | bytearray) else value


def _on_checkin(dbapi_connection: Any, record: Any) -> None:
    """Put back the session timeout set for a probe before the connection is reused."""
    try:
        restore = record.info.pop(_RESTORE_KEY, None)
    except Exception:
        return
    if restore is None or dbapi_connection is None:
        return
    try:
        cur = dbapi_connection.cursor()
        try:
            cur.execute(restore)
        finally:
            cur.close()
    except Exception:
        with contextlib.suppress(Exception):  # an unreset connection must not serve the app
            record.invalidate()


def _hook_pool(pool: Pool) -> None:
    with _hook_lock:
        if pool in _hooked:
            return
        from sqlalchemy import event

        event.listen(pool, "checkin", _on_checkin)
        _hooked.add(pool)


class MySQLBackend(DirectLagBackend):
    """MySQL 8 and MariaDB (10.5+; older MariaDB works minus the privilege names)."""

    systems = ("mysql", "mariadb")

    # ------------------------------------------------------------------ role
    def detect_role(self, dbapi_connection: Any, dialect: Dialect) -> Detected | None:
        try:
            return self._detect(dbapi_connection, dialect)
        except Exception as exc:
            return Detected(role="unknown", details={"error": describe(exc)})
        finally:
            with contextlib.suppress(Exception):
                dbapi_connection.rollback()

    def _detect(self, dbapi: Any, dialect: Any) -> Detected:
        known = getattr(dialect, "server_version_info", None) is not None
        mariadb = _is_mariadb(dialect) if known else None
        if mariadb is None:
            version_rows = _rows(dbapi, "SELECT @@version AS version")
            mariadb = (
                _is_mariadb(dialect, str(_text(version_rows[0]["version"])))
                if version_rows
                else False
            )
        rows = _rows(dbapi, _MARIADB_DETECT if mariadb else _MYSQL_DETECT)
        if not rows:
            return Detected(role="unknown", system="mariadb" if mariadb else "mysql")
        r = {k: _text(v) for k, v in rows[0].items()}
        read_only = _truthy(r.get("read_only")) or _truthy(r.get("super_read_only"))
        running = _truthy(r.get("slave_running")) if mariadb else None
        if mariadb:
            role = "replica" if (running or read_only) else "primary"
            by = "Slave_running" if running else "@@read_only"
        else:
            role = "replica" if read_only else "primary"
            by = "@@read_only/@@super_read_only"
        details = {
            "server_id": _num(r.get("server_id")),
            "read_only": read_only,
            "replicating": running,
            "port": _num(r.get("port")),
            "hostname": r.get("hostname"),
            "version": r.get("version"),
            "by": by,
        }
        if mariadb:
            details["gtid_slave_pos"] = r.get("gtid_slave_pos") or None
        server = f"@@server_id={details['server_id']} ({r.get('hostname')}:{details['port']})"
        return Detected(
            role=role,
            server=server[:200],
            system="mariadb" if mariadb else "mysql",
            details=details,
        )

    # ------------------------------------------------------------------ probe
    def prepare_probe(self, connection: Connection, timeout: float) -> None:
        """A server-side limit for the probe's SELECT, restored when the connection is checked in."""
        try:
            if _is_mariadb(connection.dialect):
                sql = f"SET SESSION max_statement_time = {max(0.001, timeout):.3f}"
                restore = "SET SESSION max_statement_time = DEFAULT"
            else:
                sql = f"SET SESSION max_execution_time = {max(1, int(timeout * 1000))}"
                restore = "SET SESSION max_execution_time = DEFAULT"
            _hook_pool(connection.engine.pool)
            connection.info[_RESTORE_KEY] = restore  # before the SET: restore even if it half-fails
            connection.exec_driver_sql(sql)
        except Exception:
            pass

    def probe_prefix(self, engine: Engine) -> str:
        """No comment by default: MySQL proxies route by rules this library cannot know.

        MaxScale honours ``-- maxscale route to master`` (hintfilter) and ProxySQL
        ``/* hostgroup=<writer> */``; both need configuration on the proxy side, see
        docs/databases/mariadb-mysql.md. Configure the primary engine directly instead.
        """
        return ""

    # ------------------------------------------------------------------ lag
    # measure_lag() comes from DirectLagBackend: _measure() on a bounded thread.

    def _measure(self, replica: Engine, primary: Engine | None, deadline: float) -> dict[str, Any]:
        try:
            from sa_explain.config import get_config

            if get_config().configured_role(replica) == "proxy":
                out = empty_reading()
                out["error"] = (
                    "lag is not read through a MySQL/MariaDB proxy: its replicas are not known "
                    "(configure the replica engines directly)"
                )
                return out
        except Exception:
            pass
        dialect = replica.dialect
        mariadb = (
            _is_mariadb(dialect)
            if getattr(dialect, "server_version_info", None) is not None
            else None
        )
        notes: list[str] = []
        primary_pos: Any = None
        if primary is not None and primary is not replica:
            try:
                with mysql_connect(primary.url, deadline) as p:
                    if mariadb is None:
                        mariadb = _is_mariadb(
                            None, str(_text(p.query("SELECT @@version AS v")[0]["v"]))
                        )
                    sql = (
                        "SELECT @@gtid_binlog_pos AS pos"
                        if mariadb
                        else "SELECT @@global.gtid_executed AS pos"
                    )
                    primary_pos = _text(p.query(sql)[0]["pos"])
            except Exception as exc:
                notes.append(f"primary position not read: {describe(exc, primary.url)}")
        with mysql_connect(replica.url, deadline) as conn:
            if mariadb is None:
                mariadb = _is_mariadb(None, str(_text(conn.query("SELECT @@version AS v")[0]["v"])))
            out = (
                self._mariadb(conn, primary_pos, notes)
                if mariadb
                else self._mysql(conn, primary_pos, notes)
            )
        if notes:
            out["notes"] = notes
        return out

    @staticmethod
    def _status(
        conn: DirectConnection, statements: tuple[str, ...], notes: list[str]
    ) -> dict[str, Any] | None:
        """The first row of the first status statement the server accepts; None if refused/empty."""
        last: Exception | None = None
        for sql in statements:
            try:
                rows = conn.query(sql)
            except Exception as exc:
                last = exc
                if "1227" in str(exc) or "denied" in str(exc).lower():
                    break  # a privilege problem: the other spelling needs the same privilege
                continue
            return {k: _text(v) for k, v in rows[0].items()} if rows else None
        if last is not None:
            notes.append(f"{statements[0]} refused: {describe(last, conn.url)}")
        return None

    def _mariadb(
        self, conn: DirectConnection, primary_pos: Any, notes: list[str]
    ) -> dict[str, Any]:
        out = empty_reading()
        out["node"] = conn.node
        pos = {
            k: _text(v)
            for k, v in conn.query(
                "SELECT @@gtid_slave_pos AS applied, @@gtid_current_pos AS current_pos, @@server_id AS server_id"
            )[0].items()
        }
        status = self._status(conn, ("SHOW SLAVE STATUS",), notes)
        received = status.get("Gtid_IO_Pos") if status else None
        out["gtid"] = {
            "primary": primary_pos,
            "replica": pos.get("applied") or "",
            "received": received,
        }
        out["server"] = f"@@server_id={pos.get('server_id')}"
        by = []
        if primary_pos is not None:
            behind = mariadb_behind(primary_pos, pos.get("applied"))
            out["caught_up"] = behind == 0
            out["lag_transactions"] = behind
            by.append("GTID: primary @@gtid_binlog_pos vs replica @@gtid_slave_pos")
        elif status is not None and received is not None:
            behind = mariadb_behind(received, pos.get("applied"))
            out["lag_transactions"] = behind
            out["caught_up"] = False if behind else None
            by.append(
                "GTID: replica Gtid_IO_Pos (received) vs @@gtid_slave_pos (primary not known: a lower bound)"
            )
        if status is not None:
            self._seconds(
                out,
                status,
                "Seconds_Behind_Master",
                "Slave_IO_Running",
                "Slave_SQL_Running",
                "Slave_SQL_Running_State",
            )
            by.append("SHOW SLAVE STATUS (max of Seconds_Behind_Master, SQL_Remaining_Delay)")
        elif not by:
            out["error"] = "; ".join(notes) or "no replication status"
        out["measured_by"] = "; ".join(by) or None
        return out

    def _mysql(self, conn: DirectConnection, primary_pos: Any, notes: list[str]) -> dict[str, Any]:
        out = empty_reading()
        out["node"] = conn.node
        applied = _text(conn.query("SELECT @@global.gtid_executed AS applied")[0]["applied"])
        status = self._status(conn, ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS"), notes)
        received = None
        if status is not None:
            received = status.get("Retrieved_Gtid_Set")
        out["gtid"] = {"primary": primary_pos, "replica": applied, "received": received}
        by = []
        if primary_pos is not None:
            rows = conn.query(
                "SELECT GTID_SUBSET(%s, @@global.gtid_executed) AS ok", (primary_pos,)
            )
            out["caught_up"] = bool(_num(rows[0]["ok"]))
            by.append("GTID_SUBSET(primary @@gtid_executed, replica @@gtid_executed)")
        if status is not None:
            sbm = (
                "Seconds_Behind_Source"
                if "Seconds_Behind_Source" in status
                else "Seconds_Behind_Master"
            )
            io = "Replica_IO_Running" if "Replica_IO_Running" in status else "Slave_IO_Running"
            sql = "Replica_SQL_Running" if "Replica_SQL_Running" in status else "Slave_SQL_Running"
            state = (
                "Replica_SQL_Running_State"
                if "Replica_SQL_Running_State" in status
                else "Slave_SQL_Running_State"
            )
            self._seconds(out, status, sbm, io, sql, state)
            by.append(f"SHOW REPLICA STATUS (max of {sbm}, SQL_Remaining_Delay)")
        elif not by:
            out["error"] = "; ".join(notes) or "no replication status"
        out["measured_by"] = "; ".join(by) or None
        return out

    @staticmethod
    def _seconds(
        out: dict[str, Any],
        status: dict[str, Any],
        sbm_key: str,
        io_key: str,
        sql_key: str,
        state_key: str,
    ) -> None:
        sbm = _num(status.get(sbm_key))
        remaining_delay = _num(status.get("SQL_Remaining_Delay"))
        io_ok = str(status.get(io_key)) == "Yes"
        sql_ok = str(status.get(sql_key)) == "Yes"
        out["seconds_behind"] = sbm
        out["sql_delay"] = _num(status.get("SQL_Delay"))
        out["sql_remaining_delay"] = remaining_delay
        out["replication_running"] = io_ok and sql_ok
        out["sql_thread_state"] = status.get(state_key)
        if (
            out["caught_up"] is None
            and io_ok
            and sql_ok
            and (remaining_delay is not None or (sbm or 0) > 0)
        ):
            # No GTID comparison possible: fall back on the status fields (SBM alone lies).
            out["caught_up"] = False
        if out["caught_up"] is True:
            out["lag_seconds"] = 0.0
        else:
            candidates = [v for v in (sbm, remaining_delay) if v is not None]
            if candidates and (out["caught_up"] is False or max(candidates) > 0):
                out["lag_seconds"] = float(max(candidates))
        if not (io_ok and sql_ok):
            out["error"] = (
                f"replication is not running ({io_key}={status.get(io_key)}, {sql_key}={status.get(sql_key)})"
            )


BACKEND = MySQLBackend()
register(BACKEND)
