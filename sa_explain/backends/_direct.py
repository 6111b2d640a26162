"""Short-lived, budgeted connections for lag readings, shared by the PostgreSQL and MySQL backends.

Lag is read on *fresh* connections made from an engine's URL with a synchronous driver,
not from the engine's pool: the pool may be exhausted (a checkout would then wait up to
``pool_timeout``, 30 s by default), belong to an async engine (its connections only work
inside the event loop's greenlet), or hand back the very connection whose transaction
failed. The price is that ``connect_args`` and custom ``creator`` functions are not
reused: put TLS settings in the URL query (``?sslmode=require``, ``?ssl_ca=…``).

Every reading runs on a daemon thread that the caller waits for until the deadline at
most: libpq cannot time out a connect in less than 2 s, and no driver bounds DNS. A
reading that overruns is abandoned (its thread finishes on its own; server-side
statement timeouts bound it) and at most :data:`MAX_IN_FLIGHT` can be pending at once,
so a dead server cannot pile up threads.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sa_explain.backends import Backend, remaining

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

T = TypeVar("T")
MAX_IN_FLIGHT = 4
_slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)

# libpq connection keywords that may appear in a SQLAlchemy URL query. Anything else
# (asyncpg's ``prepared_statement_cache_size``, SQLAlchemy's own options) is dropped.
_LIBPQ_KEYS = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcrl",
        "sslcompression",
        "sslsni",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "requirepeer",
        "gssencmode",
        "channel_binding",
        "krbsrvname",
        "target_session_attrs",
        "options",
        "application_name",
        "passfile",
        "service",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "hostaddr",
        "host",
        "port",
    }
)


def empty_reading() -> dict[str, Any]:
    """The schema's ``replica`` object with every key present and unknown."""
    return {
        "lag_seconds": None,
        "lag_bytes": None,
        "gtid": None,
        "caught_up": None,
        "measured_by": None,
        "node": None,
        "elapsed_ms": None,
        "error": None,
    }


def ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


def describe(exc: BaseException, url: URL | None = None, limit: int = 300) -> str:
    """``Type: message`` on one line, capped, with the URL's password (if any) masked."""
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:
        text = type(exc).__name__
    text = " ".join(text.split())
    password = None
    if url is not None:
        try:
            password = url.password
        except Exception:
            password = None
    if password:
        text = text.replace(str(password), "***")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_bounded(fn: Callable[[], T], deadline: float) -> tuple[bool, T | None, str | None]:
    """Run ``fn()`` on a daemon thread; wait until ``deadline`` at most. Never raises.

    Returns ``(True, value, None)`` or ``(False, None, why)``.
    """
    left = remaining(deadline)
    if left <= 0:
        return False, None, "no time left in the budget"
    if not _slots.acquire(blocking=False):
        return False, None, "earlier lag readings are still running (server slow or unreachable)"
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc
        finally:
            _slots.release()
            done.set()

    try:
        threading.Thread(target=work, name="sa-explain-lag", daemon=True).start()
    except Exception as exc:  # interpreter shutting down, thread limit
        _slots.release()
        return False, None, describe(exc)
    if not done.wait(left):
        return False, None, f"timed out after {left * 1000.0:.0f} ms"
    if "error" in box:
        return False, None, describe(box["error"])
    return True, box.get("value"), None


class DirectConnection:
    """A plain DBAPI connection in autocommit mode with a dict-rows ``query``."""

    def __init__(self, raw: Any, url: URL, node: str) -> None:
        self.raw = raw
        self.url = url
        self.node = node

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        cur = self.raw.cursor()
        try:
            if params is None:
                cur.execute(sql)
            else:
                cur.execute(sql, params)
            rows = _fetch(cur)
            if not rows:
                # pgpool answers some SHOW commands with an empty result first and the
                # real one second; psycopg 3 exposes the second through nextset().
                try:
                    if cur.nextset():
                        rows = _fetch(cur)
                except Exception:
                    pass
            return rows
        finally:
            with contextlib.suppress(Exception):
                cur.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.close()

    def __enter__(self) -> DirectConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fetch(cur: Any) -> list[dict[str, Any]]:
    if cur.description is None:
        return []
    cols = [str(d[0]) for d in cur.description]
    return [dict(zip(cols, row, strict=False)) for row in cur.fetchall()]


def _query_value(value: Any) -> str:
    if isinstance(value, tuple | list):
        return str(value[-1]) if value else ""
    return str(value)


def pg_connect(
    url: URL, deadline: float, host: str | None = None, port: int | None = None
) -> DirectConnection:
    """A fresh psycopg (3) or psycopg2 connection to ``url`` (or to ``host:port`` with its credentials).

    ``statement_timeout`` is set in the startup packet (no extra round trip) to what is
    left of the budget; pgpool passes it on to its backends.
    """
    left = remaining(deadline)
    if left <= 0:
        raise TimeoutError("no time left in the budget")
    kw: dict[str, Any] = {}
    for key, value in url.query.items():
        if key in _LIBPQ_KEYS:
            kw[key] = _query_value(value)
    if url.host:
        kw["host"] = url.host
    if url.port:
        kw["port"] = url.port
    if url.username:
        kw["user"] = url.username
    if url.password is not None:
        kw["password"] = str(url.password)
    if url.database:
        kw["dbname"] = url.database
    if host is not None:
        kw["host"] = host
        kw.pop("hostaddr", None)
    if port is not None:
        kw["port"] = port
    ms = max(1, int(left * 1000))
    kw["options"] = f"{kw.get('options', '')} -c statement_timeout={ms}".strip()
    kw["connect_timeout"] = max(1, math.ceil(left))  # libpq: whole seconds, 2 at least
    kw.setdefault("application_name", "sa-explain")
    node = f"{kw.get('host') or 'localhost'}:{kw.get('port') or 5432}"
    try:
        import psycopg

        raw: Any = psycopg.connect(autocommit=True, **kw)
    except ImportError:
        try:
            import psycopg2
        except ImportError as exc:
            raise RuntimeError(
                "reading PostgreSQL lag needs psycopg (3) or psycopg2 installed"
            ) from exc
        raw = psycopg2.connect(**kw)
        raw.autocommit = True
    return DirectConnection(raw, url, node)


def mysql_connect(url: URL, deadline: float) -> DirectConnection:
    """A fresh mysqlclient (or PyMySQL) connection to ``url`` in autocommit mode.

    mysqlclient first: PyMySQL 1.1+ builds a fresh TLS context for every connection in
    its default "preferred" TLS mode, which costs about 20 ms here; mysqlclient connects
    in under a millisecond.
    """
    left = remaining(deadline)
    if left <= 0:
        raise TimeoutError("no time left in the budget")
    query = {k: _query_value(v) for k, v in url.query.items()}
    host = url.host or "localhost"
    port = int(url.port or 3306)
    ssl = {k[4:]: v for k, v in query.items() if k.startswith("ssl_")}
    node = query.get("unix_socket", f"{host}:{port}")
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "user": url.username or "",
        "password": str(url.password) if url.password is not None else "",
    }
    if url.database:
        common["database"] = url.database
    if "unix_socket" in query:
        common["unix_socket"] = query["unix_socket"]
    if "charset" in query:
        common["charset"] = query["charset"]
    if ssl:
        common["ssl"] = ssl
    try:
        import MySQLdb
    except ImportError:
        MySQLdb = None
    if MySQLdb is not None:
        secs = max(1, math.ceil(left))  # whole seconds only
        raw: Any = MySQLdb.connect(
            connect_timeout=secs, read_timeout=secs, write_timeout=secs, **common
        )
        raw.autocommit(True)
        return DirectConnection(raw, url, node)
    try:
        import pymysql
    except ImportError as exc:
        raise RuntimeError(
            "reading MySQL/MariaDB lag needs mysqlclient or PyMySQL installed"
        ) from exc
    t = max(0.001, left)
    raw = pymysql.connect(
        connect_timeout=t, read_timeout=t, write_timeout=t, autocommit=True, **common
    )
    return DirectConnection(raw, url, node)


class DirectLagBackend(Backend):
    """A backend that reads lag on its own short-lived connections (see module docstring).

    Subclasses implement ``_measure(replica, primary, deadline)``; this runs it on a
    bounded thread, so the deadline holds even when a driver cannot time out a connect.
    """

    def measure_lag(self, replica: Engine, primary: Engine | None, deadline: float) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            ok, value, err = run_bounded(lambda: self._measure(replica, primary, deadline), deadline)
        except Exception as exc:  # pragma: no cover - run_bounded does not raise
            ok, value, err = False, None, describe(exc)
        out = value if ok and value is not None else empty_reading()
        if not ok:
            out["error"] = err
        out["elapsed_ms"] = ms_since(started)
        return out

    def _measure(self, replica: Engine, primary: Engine | None, deadline: float) -> dict[str, Any]:
        raise NotImplementedError
