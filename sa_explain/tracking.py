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
* the pool's ``connect`` asks the database, once per new DBAPI connection, whether it
  is a primary, a replica or a proxy (see :mod:`sa_explain.backends`); a role given to
  ``configure()`` still wins.

Nothing here holds a session, connection or user object: engines are referenced through
a per-engine info object holding a weak reference, identities are copied tuples.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass
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
_ring_get = _ring.get
_perf_counter = time.perf_counter
_get_ident = threading.get_ident
_engine_seq = 0


# --------------------------------------------------------------------------- engines


class EngineInfo:
    """Per-engine bookkeeping, stored on the engine itself (no global registry to leak)."""

    __slots__ = ("__weakref__", "engine_ref", "label", "per_connection", "seq")

    def __init__(self, engine: Engine) -> None:
        global _engine_seq
        _engine_seq += 1
        self.seq = _engine_seq
        self.engine_ref: weakref.ref[Engine] = weakref.ref(engine)
        # Read once: statements on a proxy record their connection's backend.
        self.per_connection = bool(getattr(engine.pool, _POOL_PROXY, False))
        self.label = _default_label(engine)

    def engine(self) -> Engine | None:
        return self.engine_ref()

    @property
    def detected(self) -> Detected | None:
        """What the newest connection of this engine's pool said it was."""
        engine = self.engine_ref()
        detected: Detected | None = getattr(engine.pool, _POOL_DETECTED, None) if engine is not None else None
        return detected


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
    # The hot path: runs for every statement of every engine. Keep it to attribute
    # reads and one deque append (measured in benchmarks/profile_tracking.py).
    ring = _ring_get()
    if ring is None or ring.maxlen != _config_module._config.track_statements:
        ring = _new_ring(ring)
    try:
        rowcount = cursor.rowcount
    except Exception:
        rowcount = None
    engine = conn.engine
    info = getattr(engine, _ATTR, None) or engine_info(engine)
    if info is not None and info.per_connection:
        ring.append((_perf_counter(), info, statement, rowcount, executemany, _connection_detected(conn)))
    else:
        ring.append((_perf_counter(), info, statement, rowcount, executemany, None))


def _new_ring(old: deque[tuple[Any, ...]] | None) -> deque[tuple[Any, ...]]:
    ring = deque(old or (), maxlen=_config_module._config.track_statements)
    _ring.set(ring)
    return ring


def _connection_detected(conn: Any) -> Detected | None:
    try:
        detected: Detected | None = conn.connection.info.get(_DETECTED_KEY)
        return detected
    except Exception:
        return None


def _on_commit(conn: Any) -> None:
    ring = _ring_get()
    if ring is not None:
        engine = conn.engine
        ring.append((_perf_counter(), getattr(engine, _ATTR, None) or engine_info(engine), "COMMIT", None, False, None))


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
# lock, no dict): per flushed row ``(verb, at, info, thread, operation_id,
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


def _record_write(verb: str, mapper: Any, connection: Any, state: Any) -> None:
    # Registered with raw=True: ``state`` is the InstanceState, no wrapper call.
    try:
        log = _log
        if not log.maxlen:
            return
        cls, pk_keys = mapper.__dict__.get(_KEYS_ATTR) or _mapper_keys(mapper)
        dict_ = state.dict
        pk = (dict_.get(pk_keys[0]),) if len(pk_keys) == 1 else tuple([dict_.get(k) for k in pk_keys])
        old = None
        if verb == "UPDATE":
            committed = state.committed_state
            if committed and any(k in committed for k in pk_keys):
                old = tuple([committed.get(k, dict_.get(k)) for k in pk_keys])
        op = _current_operation.get()
        engine = connection.engine
        info = engine.__dict__.get(_ATTR) or engine_info(engine)
        log.append(
            (verb, _perf_counter(), info, _get_ident(), op.get("id") if op else None, state.session_id, cls, pk, old)
        )
    except Exception:  # a tracking failure must never break the user's flush
        return


def _after_insert(mapper: Any, connection: Any, state: Any) -> None:
    _record_write("INSERT", mapper, connection, state)


def _after_update(mapper: Any, connection: Any, state: Any) -> None:
    _record_write("UPDATE", mapper, connection, state)


def _after_delete(mapper: Any, connection: Any, state: Any) -> None:
    _record_write("DELETE", mapper, connection, state)


def wall_of(at: float) -> float:
    """``time.time()`` of a ``perf_counter()`` reading (the hot path stores only the latter)."""
    return time.time() - (time.perf_counter() - at)


def _after_commit(session: Any) -> None:
    try:  # not contextlib.suppress: this runs on every commit, and try is free
        _log.append((_COMMIT, session.hash_key, _perf_counter()))
    except Exception:
        return


def _after_rollback(session: Any) -> None:
    try:
        _log.append((_ROLLBACK, session.hash_key, _perf_counter()))
    except Exception:
        return


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
        verb, at, info, thread, op_id, session_key, cls, pk, old = entry
        if cls != class_qualname or (pk != identity and old != identity):
            continue
        marker = markers.get(session_key)
        found.append(
            WriteRecord(
                verb=verb, at=at, wall=wall_of(at), info=info, thread=thread, operation_id=op_id,
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


_POOL_DETECTED = "_sa_explain_detected"
_POOL_PROXY = "_sa_explain_proxy"


def _on_pool_connect(dbapi_connection: Any, record: Any) -> None:
    """Once per new DBAPI connection (not per checkout): ask the server what it is.

    A pool event, so a Session's checkout costs nothing: the answer is kept on the
    connection record (per connection: which backend a proxy balanced it to) and on the
    pool (the engine's role, read by :func:`bind_info`).
    """
    try:
        if not get_config().detect_roles:
            return
        pool = getattr(record, "_ConnectionRecord__pool", None)
        dialect = getattr(pool, "_dialect", None)
        if pool is None or dialect is None:
            return
        detected = for_system(dialect.name).detect_role(dbapi_connection, dialect)
        record.info[_DETECTED_KEY] = detected
        if detected is not None:
            setattr(pool, _POOL_DETECTED, detected)
            if detected.role == "proxy":
                # a proxy balances per client connection: statements must say which one
                setattr(pool, _POOL_PROXY, True)
    except Exception:
        return


# --------------------------------------------------------------------------- install


def _listeners(writes: bool) -> list[tuple[Any, str, Any, dict[str, Any]]]:
    """The listeners for the current settings; the write log's only when it is on."""
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Mapper, Session

    out: list[tuple[Any, str, Any, dict[str, Any]]] = [
        (Engine, "after_cursor_execute", _after_cursor_execute, {}),
        (Engine, "commit", _on_commit, {}),
        (Engine, "connect", _on_pool_connect, {}),  # a pool event: every engine's pool
    ]
    if writes:
        out += [
            (Mapper, "after_insert", _after_insert, {"raw": True}),
            (Mapper, "after_update", _after_update, {"raw": True}),
            (Mapper, "after_delete", _after_delete, {"raw": True}),
            (Session, "after_commit", _after_commit, {}),
            (Session, "after_rollback", _after_rollback, {}),
        ]
    return out


_registered: list[tuple[Any, str, Any, dict[str, Any]]] = []


def install() -> None:
    """Register the listeners on every Engine (and, with a write log, Mapper and Session).

    Idempotent; called again by ``configure()`` it adds or removes the write-log
    listeners to match ``track_writes`` (0 removes them: no per-row cost at all).
    """
    global _installed
    with _lock:
        from sqlalchemy import event

        wanted = _listeners(get_config().track_writes > 0)
        for item in wanted:
            if item[:3] not in [r[:3] for r in _registered]:
                event.listen(item[0], item[1], item[2], **item[3])
                _registered.append(item)
        for item in list(_registered):
            if item[:3] not in [w[:3] for w in wanted]:
                event.remove(item[0], item[1], item[2])
                _registered.remove(item)
        _installed = True


def uninstall() -> None:
    """Remove the listeners (benchmarks and tests compare with and without)."""
    global _installed
    with _lock:
        from sqlalchemy import event

        for target, name, fn, _kw in _registered:
            event.remove(target, name, fn)
        _registered.clear()
        _installed = False


def installed() -> bool:
    return _installed
