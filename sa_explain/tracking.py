"""In-process evidence: which engine ran what, and when each row was last written.

At explain time the failing Session has rolled back and its connection is gone, so the
only way to say "the refresh ran on the replica 4 ms after the INSERT committed on the
primary" is to have noted it as it happened. Three cheap listeners do that:

* ``after_cursor_execute`` and ``commit`` on every Engine append a tuple to a small ring
  per thread / asyncio task (a :class:`~contextvars.ContextVar`): no parsing, no copying,
  the SQL string is the one SQLAlchemy already cached.
* ``after_insert`` / ``after_update`` / ``after_delete`` on every mapper append the
  identity and the engine to a bounded, append-only *write log*; the Session's
  ``after_commit`` / ``after_rollback`` append a marker. This one is process-wide, so a write by another thread (the racing
  twin) is visible too.
* ``engine_connect`` asks the database, once per DBAPI connection, whether it is a
  primary, a replica or a proxy (see :mod:`sa_explain.backends`), unless ``configure()``
  already said.

Nothing here holds a session, connection or user object: engines are referenced through
a per-engine info object holding a weak reference, identities are copied tuples.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import weakref
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sa_explain.config as _config_module
from sa_explain import _safe
from sa_explain.backends import Detected, for_system
from sa_explain.config import get_config
from sa_explain.context import _current as _current_operation
from sa_explain.explanation import BindInfo

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

_ATTR = "_sa_explain_info"
_DETECTED_KEY = "sa_explain.detected"

_lock = threading.Lock()
_installed = False
_ring: ContextVar[deque[tuple[Any, ...]] | None] = ContextVar("sa_explain_statements", default=None)
_engine_seq = 0


# --------------------------------------------------------------------------- engines


class EngineInfo:
    """Per-engine bookkeeping, stored on the engine itself (no global registry to leak)."""

    __slots__ = ("__weakref__", "detected", "engine_ref", "label", "per_connection", "seq")

    def __init__(self, engine: Engine) -> None:
        global _engine_seq
        _engine_seq += 1
        self.seq = _engine_seq
        self.engine_ref: weakref.ref[Engine] = weakref.ref(engine)
        self.detected: Detected | None = None
        self.per_connection = False
        self.label = _default_label(engine)

    def engine(self) -> Engine | None:
        return self.engine_ref()


def _default_label(engine: Engine) -> str:
    try:
        name = engine.logging_name
        if name:
            return _safe.text(name, _safe.MAX_NAME)
        url = engine.url
        if url.get_backend_name() == "sqlite":
            db = url.database or ":memory:"
            return _safe.text(f"sqlite:{db.rsplit('/', 1)[-1]}", _safe.MAX_NAME)
        host = url.host or "localhost"
        port = f":{url.port}" if url.port else ""
        return _safe.text(f"{host}{port}/{url.database or ''}", _safe.MAX_NAME)
    except Exception:
        return "engine"


def engine_info(engine: Any) -> EngineInfo | None:
    """The info object of ``engine`` (created on first sight); None for non-engines."""
    try:
        info = engine.__dict__.get(_ATTR)
        if info is None:
            info = EngineInfo(engine)
            setattr(engine, _ATTR, info)
        return info  # type: ignore[no-any-return]
    except Exception:
        return None


def bind_info(engine: Any, connection_detected: Detected | None = None) -> BindInfo:
    """Name, role and address of ``engine``: configured role > detected role > unknown.

    ``connection_detected`` (what one proxied connection said: which backend it is
    balanced to) takes precedence over the engine's last detection for ``server``.
    """
    cfg = get_config()
    info = engine_info(engine)
    try:
        url = engine.url
        dialect = engine.dialect
        system: str | None = dialect.name
        if system == "mysql" and getattr(dialect, "is_mariadb", False):
            system = "mariadb"
        driver: str | None = dialect.driver
        address, port, database = url.host, url.port, url.database
        rendered = _safe.url_without_password(url)
    except Exception:
        system = driver = address = database = rendered = None
        port = None
    role = cfg.configured_role(engine)
    source = "configured" if role else "unknown"
    server = None
    detected = connection_detected or (info.detected if info is not None else None)
    if detected is not None:
        server = detected.server
        if detected.system:
            system = detected.system
        if role is None and detected.role in ("primary", "replica", "proxy"):
            role, source = detected.role, "detected"
    name = cfg.configured_name(engine) or (info.label if info is not None else None)
    return BindInfo(
        name=name,
        role=role or "unknown",  # type: ignore[arg-type]
        role_source=source,
        system=system,
        driver=driver,
        address=_safe.text(address, _safe.MAX_NAME) if address else None,
        port=port if isinstance(port, int) else None,
        database=_safe.text(database, _safe.MAX_NAME) if database else None,
        url=rendered,
        server=_safe.text(server, _safe.MAX_NAME) if server else None,
    )


# --------------------------------------------------------------------------- statements


def _after_cursor_execute(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: bool) -> None:
    ring = _ring.get()
    size = _config_module._config.track_statements
    if ring is None or ring.maxlen != size:
        ring = deque(ring or (), maxlen=size)
        _ring.set(ring)
    try:
        rowcount = cursor.rowcount
    except Exception:
        rowcount = None
    engine = conn.engine
    info = engine.__dict__.get(_ATTR) or engine_info(engine)
    detected = None
    if info is not None and info.per_connection:
        try:
            detected = conn.connection.info.get(_DETECTED_KEY)
        except Exception:
            detected = None
    ring.append((time.perf_counter(), info, statement, rowcount, executemany, detected))


def _on_commit(conn: Any) -> None:
    ring = _ring.get()
    if ring is None:
        return
    engine = conn.engine
    info = engine.__dict__.get(_ATTR) or engine_info(engine)
    ring.append((time.perf_counter(), info, "COMMIT", None, False, None))


_VERB = re.compile(r"^\s*(?:/\*.*?\*/\s*)*(\w+)", re.S)
_TABLE = re.compile(
    r"\b(?:FROM|INTO|UPDATE|JOIN)\s+((?:[\"`\[]?[\w$]+[\"`\]]?\.)?[\"`\[]?[\w$]+[\"`\]]?)", re.I
)


def parse_statement(sql: str) -> tuple[str, str | None]:
    """(verb, first table) of a SQL string, cheaply; only used at explain time."""
    m = _VERB.match(sql or "")
    verb = m.group(1).upper() if m else "?"
    t = _TABLE.search(sql or "")
    table = t.group(1).replace('"', "").replace("`", "").replace("[", "").replace("]", "") if t else None
    return verb, table


@dataclass(frozen=True, slots=True)
class Statement:
    """One tracked statement, copied out of the ring at explain time."""

    at: float  # perf_counter
    info: EngineInfo | None
    sql: str
    verb: str
    table: str | None
    rowcount: int | None
    executemany: bool
    detected: Detected | None = None  # per-connection detection (proxies only)


def recent_statements(limit: int = 64) -> list[Statement]:
    """The statements this thread/task ran recently, oldest first."""
    ring = _ring.get()
    if not ring:
        return []
    out = []
    for at, info, sql, rowcount, executemany, detected in list(ring)[-limit:]:
        sql_text = sql if isinstance(sql, str) else _safe.text(sql)
        verb, table = ("COMMIT", None) if sql_text == "COMMIT" else parse_statement(sql_text)
        count = rowcount if isinstance(rowcount, int) else None
        out.append(Statement(at, info, sql_text, verb, table, count, bool(executemany), detected))
    return out


def clear_statements() -> None:
    """Forget this thread/task's statements (tests, and after an explanation is made)."""
    ring = _ring.get()
    if ring is not None:
        ring.clear()


# --------------------------------------------------------------------------- write log
#
# The hot path only appends a plain tuple to a bounded deque (atomic under the GIL, no
# lock, no dict): per flushed row ``(verb, at, wall, info, thread, operation_id,
# session_key, class, pk, old_pk)``, per commit/rollback ``(COMMIT|ROLLBACK,
# session_key, at)``. Records are assembled only at explain time, by scanning the log
# from the newest entry — the commit marker that follows a write says it was committed.

_COMMIT = "COMMIT"
_ROLLBACK = "ROLLBACK"
_KEYS_ATTR = "_sa_explain_keys"
_log: deque[tuple[Any, ...]] = deque(maxlen=get_config().track_writes)


@dataclass(slots=True)
class WriteRecord:
    """One INSERT/UPDATE/DELETE of one identity, as the ORM flushed it."""

    verb: str
    at: float  # perf_counter
    wall: float  # time.time()
    info: EngineInfo | None
    thread: int
    operation_id: str | None
    session_key: int | None
    committed_at: float | None = None
    rolled_back: bool = False
    new_identity: tuple[Any, ...] | None = None


def _mapper_keys(mapper: Any) -> tuple[str, tuple[str, ...]]:
    """(base class name, primary-key attribute keys), cached on the mapper."""
    keys: tuple[str, tuple[str, ...]] | None = mapper.__dict__.get(_KEYS_ATTR)
    if keys is None:
        props = mapper._columntoproperty
        keys = (
            _safe.qualname(mapper.base_mapper.class_),
            tuple(props[col].key for col in mapper.primary_key),
        )
        setattr(mapper, _KEYS_ATTR, keys)
    return keys


def _record_write(verb: str, mapper: Any, connection: Any, target: Any) -> None:
    try:
        log = _log
        if not log.maxlen:
            return
        cls, pk_keys = mapper.__dict__.get(_KEYS_ATTR) or _mapper_keys(mapper)
        state = target._sa_instance_state
        dict_ = state.dict
        pk = tuple([dict_.get(k) for k in pk_keys])
        old = None
        if verb == "UPDATE":
            committed = state.committed_state
            if committed and any(k in committed for k in pk_keys):
                old = tuple([committed.get(k, dict_.get(k)) for k in pk_keys])
        op = _current_operation.get()
        engine = connection.engine
        info = engine.__dict__.get(_ATTR) or engine_info(engine)
        log.append(
            (verb, time.perf_counter(), time.time(), info, threading.get_ident(),
             op.get("id") if op else None, state.session_id, cls, pk, old)
        )
    except Exception:  # a tracking failure must never break the user's flush
        return


def _after_insert(mapper: Any, connection: Any, target: Any) -> None:
    _record_write("INSERT", mapper, connection, target)


def _after_update(mapper: Any, connection: Any, target: Any) -> None:
    _record_write("UPDATE", mapper, connection, target)


def _after_delete(mapper: Any, connection: Any, target: Any) -> None:
    _record_write("DELETE", mapper, connection, target)


def _after_commit(session: Any) -> None:
    with contextlib.suppress(Exception):
        _log.append((_COMMIT, session.hash_key, time.perf_counter()))


def _after_rollback(session: Any) -> None:
    with contextlib.suppress(Exception):
        _log.append((_ROLLBACK, session.hash_key, time.perf_counter()))


def resize_write_log(size: int) -> None:
    """Apply ``configure(track_writes=…)``: keep the newest entries that still fit."""
    global _log
    if _log.maxlen != size:
        _log = deque(list(_log)[-size:] if size else (), maxlen=size)


def writes_for(class_qualname: str, identity: tuple[Any, ...], limit: int = 8) -> list[WriteRecord]:
    """The last writes of one identity in this process, oldest first.

    A write whose primary key changed is listed under both keys, with
    ``new_identity`` set. Scans the log once from the newest entry.
    """
    markers: dict[Any, tuple[str, float]] = {}
    found: list[WriteRecord] = []
    for entry in reversed(list(_log)):
        kind = entry[0]
        if kind is _COMMIT or kind is _ROLLBACK:
            markers[entry[1]] = (kind, entry[2])  # the oldest marker newer than what follows
            continue
        verb, at, wall, info, thread, op_id, session_key, cls, pk, old = entry
        if cls != class_qualname or (pk != identity and old != identity):
            continue
        marker = markers.get(session_key)
        found.append(
            WriteRecord(
                verb=verb, at=at, wall=wall, info=info, thread=thread, operation_id=op_id,
                session_key=session_key,
                committed_at=marker[1] if marker and marker[0] is _COMMIT else None,
                rolled_back=bool(marker and marker[0] is _ROLLBACK),
                new_identity=pk if old is not None and old != pk else None,
            )
        )
        if len(found) >= limit:
            break
    found.reverse()
    return found


def write_log_size() -> int:
    return len(_log)


def clear_writes() -> None:
    _log.clear()


# --------------------------------------------------------------------------- roles


def _detect(conn: Any) -> None:
    try:
        cfg = get_config()
        if not cfg.detect_roles:
            return
        engine = conn.engine
        fairy = conn.connection
        cache = fairy.info
        if _DETECTED_KEY in cache:
            return
        cache[_DETECTED_KEY] = None
        backend = for_system(engine.dialect.name)
        dbapi = getattr(fairy, "dbapi_connection", None) or getattr(fairy, "connection", None)
        detected = backend.detect_role(dbapi, engine.dialect)
        cache[_DETECTED_KEY] = detected
        info = engine_info(engine)
        if info is not None and detected is not None:
            info.detected = detected
            if detected.role == "proxy":
                # a proxy balances per client connection: statements must say which one
                info.per_connection = True
    except Exception:
        return


def _engine_connect_2x(conn: Any) -> None:
    _detect(conn)


def _engine_connect_14(conn: Any, branch: bool) -> None:
    if not branch:
        _detect(conn)


# --------------------------------------------------------------------------- install


def _listeners() -> list[tuple[Any, str, Any]]:
    import sqlalchemy
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Mapper, Session

    legacy = sqlalchemy.__version__.startswith("1.")
    return [
        (Engine, "after_cursor_execute", _after_cursor_execute),
        (Engine, "commit", _on_commit),
        (Engine, "engine_connect", _engine_connect_14 if legacy else _engine_connect_2x),
        (Mapper, "after_insert", _after_insert),
        (Mapper, "after_update", _after_update),
        (Mapper, "after_delete", _after_delete),
        (Session, "after_commit", _after_commit),
        (Session, "after_rollback", _after_rollback),
    ]


def install() -> None:
    """Register the listeners on every Engine, Mapper and Session (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        from sqlalchemy import event

        for target, name, fn in _listeners():
            event.listen(target, name, fn)
        _installed = True


def uninstall() -> None:
    """Remove the listeners (benchmarks and tests compare with and without)."""
    global _installed
    with _lock:
        if not _installed:
            return
        from sqlalchemy import event

        for target, name, fn in _listeners():
            event.remove(target, name, fn)
        _installed = False


def installed() -> bool:
    return _installed
