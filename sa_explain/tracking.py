"""In-process evidence: which engine ran what, and when each row was last written.

At explain time the failing Session has rolled back and its connection is gone, so the
only way to say "the refresh ran on the replica 4 ms after the INSERT committed on the
primary" is to have noted it as it happened. Three cheap listeners do that:

* ``after_cursor_execute`` and ``commit`` on every Engine append a tuple to a small ring
  per thread / asyncio task (a :class:`~contextvars.ContextVar`): no parsing, no copying,
  the SQL string is the one SQLAlchemy already cached.
* ``after_insert`` / ``after_update`` / ``after_delete`` on every mapper note the identity
  and the engine in a bounded LRU *write log*, marked committed by the Session's
  ``after_commit``. This one is process-wide, so a write by another thread (the racing
  twin) is visible too.
* ``engine_connect`` asks the database, once per DBAPI connection, whether it is a
  primary, a replica or a proxy (see :mod:`sa_explain.backends`), unless ``configure()``
  already said.

Nothing here holds a session, connection or user object: engines are referenced through
a per-engine info object holding a weak reference, identities are copied tuples.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections import OrderedDict, deque
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
_writes: OrderedDict[tuple[str, tuple[Any, ...]], list[WriteRecord]] = OrderedDict()
_pending: OrderedDict[int, deque[WriteRecord]] = OrderedDict()
_MAX_PENDING_SESSIONS = 1000
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
    extra: dict[str, Any] = field(default_factory=dict)


def _identity_of(mapper: Any, target: Any) -> tuple[str, tuple[Any, ...], Any] | None:
    from sqlalchemy.orm import attributes

    state = attributes.instance_state(target)
    dict_ = state.dict
    props = mapper._columntoproperty
    pk = tuple(dict_.get(props[col].key) for col in mapper.primary_key)
    return _safe.qualname(mapper.base_mapper.class_), pk, state


def _record_write(verb: str, mapper: Any, connection: Any, target: Any) -> None:
    try:
        limit = get_config().track_writes
        if limit <= 0:
            return
        found = _identity_of(mapper, target)
        if found is None:
            return
        cls, pk, state = found
        op = _current_operation.get()
        session_key = state.session_id
        engine = connection.engine
        info = engine.__dict__.get(_ATTR) or engine_info(engine)
        record = WriteRecord(
            verb=verb,
            at=time.perf_counter(),
            wall=time.time(),
            info=info,
            thread=threading.get_ident(),
            operation_id=op.get("id") if op else None,
            session_key=session_key,
        )
        keys = [(cls, pk)]
        if verb == "UPDATE":
            old = _old_pk(mapper, state)
            if old is not None and old != pk:
                record.new_identity = pk
                keys = [(cls, old), (cls, pk)]
        with _lock:
            for key in keys:
                history = _writes.get(key)
                if history is None:
                    history = _writes[key] = []
                else:
                    _writes.move_to_end(key)
                history.append(record)
                if len(history) > 4:
                    del history[0]
            while len(_writes) > limit:
                _writes.popitem(last=False)
            if session_key is not None:
                pend = _pending.get(session_key)
                if pend is None or pend.maxlen != limit:
                    # bounded per session too: one long transaction must not grow without limit
                    pend = _pending[session_key] = deque(pend or (), maxlen=limit)
                    while len(_pending) > _MAX_PENDING_SESSIONS:
                        _pending.popitem(last=False)
                pend.append(record)
    except Exception:  # a tracking failure must never break the user's flush
        return


def _old_pk(mapper: Any, state: Any) -> tuple[Any, ...] | None:
    committed = state.committed_state
    if not committed:
        return None
    props = mapper._columntoproperty
    values = []
    changed = False
    for col in mapper.primary_key:
        key = props[col].key
        if key in committed:
            changed = True
            values.append(committed[key])
        else:
            values.append(state.dict.get(key))
    return tuple(values) if changed else None


def _after_insert(mapper: Any, connection: Any, target: Any) -> None:
    _record_write("INSERT", mapper, connection, target)


def _after_update(mapper: Any, connection: Any, target: Any) -> None:
    _record_write("UPDATE", mapper, connection, target)


def _after_delete(mapper: Any, connection: Any, target: Any) -> None:
    _record_write("DELETE", mapper, connection, target)


def _after_commit(session: Any) -> None:
    try:
        with _lock:
            pend = _pending.pop(session.hash_key, None)
        if pend:
            now = time.perf_counter()
            for record in pend:
                record.committed_at = now
    except Exception:
        return


def _after_rollback(session: Any) -> None:
    try:
        with _lock:
            pend = _pending.pop(session.hash_key, None)
        for record in pend or ():
            record.rolled_back = True
    except Exception:
        return


def writes_for(class_qualname: str, identity: tuple[Any, ...]) -> list[WriteRecord]:
    """The last writes of one identity in this process (newest last)."""
    with _lock:
        return list(_writes.get((class_qualname, identity), ()))


def clear_writes() -> None:
    with _lock:
        _writes.clear()
        _pending.clear()


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
