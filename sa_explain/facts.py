"""Stage 1: find the ORM error and copy what its raise site knew into plain data.

SQLAlchemy's exceptions carry only a message; the facts (instance state, records,
matched rows, the connection that ran the statement) live in the frame locals of the
function that raised. This module walks the exception chain, finds the innermost raise
site, and reads those locals *without running SQL*: only ``InstanceState.key``, params
dicts, table and dialect metadata are touched — never instance attributes (they are
expired by now and would emit SQL) and never generators found in frames (advancing them
resumes ORM code).

The returned :class:`Facts` holds no reference to frames, states, sessions or
connections, so the exception (which pins a pooled connection and every flushed object)
can be released. The only live objects kept are metadata and engines (``Table``,
``Mapper``, ``Engine``), needed by the probe and by bind resolution within the same
``explain()`` call; they are dropped with the ``Facts``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from sa_explain import _safe

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Mapper
    from sqlalchemy.sql.schema import Table

MAX_CHAIN = 32
MAX_FRAMES = 400
MAX_RECORDS = 20
MAX_MESSAGE = 100_000  # parsed in full; only the explanation's copy is capped

# (file under sqlalchemy/orm/, co_name) -> site. Qualnames differ across versions (2.1
# prefixes classes with "_"), co_names only where listed, so match on these two.
_STALE_SITES: dict[tuple[str, str], str] = {
    ("persistence.py", "_emit_update_statements"): "update",
    ("persistence.py", "_emit_post_update_statements"): "post_update",
    ("persistence.py", "_emit_delete_statements"): "delete",
    ("dependency.py", "_run_crud"): "m2m",
    ("loading.py", "_validate_version_id"): "load_version_check",
    ("session.py", "_merge"): "merge_version_check",
    ("attributes.py", "sethasparent"): "stale_parent",
}
_DELETED_SITES: dict[tuple[str, str], str] = {
    ("loading.py", "load_scalar_attributes"): "refresh",
    ("loading.py", "_load_scalar_attributes"): "refresh",
    ("strategies.py", "_load_for_state"): "refresh",  # 1.4 deferred columns
}
_REFRESH_SITES: dict[tuple[str, str], str] = {("session.py", "refresh"): "session_refresh"}
_FLUSH_NAMES = frozenset({"_flush", "flush"})

_OPERATION = {
    "update": "update",
    "post_update": "update",
    "delete": "delete",
    "m2m_delete": "delete",
    "m2m_update": "update",
    "load_version_check": "refresh",
    "merge_version_check": "update",
    "refresh": "refresh",
    "session_refresh": "refresh",
    "stale_parent": "unknown",
}


@dataclass
class Facts:
    """What the raise site knew, as plain data (plus metadata objects for the probe)."""

    error: str  # "object_deleted" | "stale_data"
    exception: str
    message: str
    site: str = "message"
    operation: str = "unknown"
    source: str = "traceback"
    via: str | None = None
    mapper_name: str | None = None
    class_name: str | None = None
    table_name: str | None = None
    identity: tuple[Any, ...] | None = None
    identities: list[tuple[Any, ...]] = field(default_factory=list)
    expected: int | None = None
    matched: int | None = None
    executemany: bool | None = None
    bulk: bool = False
    version_column: str | None = None
    version_expected: Any = None
    version_new: Any = None
    version_actual: Any = None  # from the load/merge checks, where SQLAlchemy read it
    params: list[dict[str, Any]] = field(default_factory=list)
    set_values: list[dict[str, Any]] = field(default_factory=list)  # column name -> value written
    attribute_names: list[str] | None = None
    in_flush: bool = False
    expire_on_commit: bool | None = None
    in_transaction: bool | None = None
    session_key: int | None = None
    frames_cleared: bool = False
    relationship: str | None = None
    # metadata / engines, used only inside one explain() call
    table: Table | None = None
    mapper: Mapper[Any] | None = None
    engine: Engine | None = None
    session_engines: list[Engine] = field(default_factory=list)
    sane_rowcount: bool | None = None
    sane_multi_rowcount: bool | None = None
    dialect: str | None = None
    driver: str | None = None
    is_async: bool = False
    sql: str | None = None

    @property
    def pk_columns(self) -> list[str]:
        if self.table is None:
            return []
        try:
            mapper = self.mapper
            if mapper is not None and self.table in getattr(mapper, "_pks_by_table", {}):
                cols = mapper._pks_by_table[self.table]
                return [c.name for c in self.table.primary_key.columns if c in cols] or [c.name for c in cols]
            return [c.name for c in self.table.primary_key.columns]
        except Exception:
            return []


# --------------------------------------------------------------------------- chain


def _orm_exc() -> Any:
    from sqlalchemy.orm import exc as orm_exc

    return orm_exc


def walk_chain(exc: BaseException) -> Iterator[tuple[BaseException, str | None]]:
    """The exception, then its causes and contexts (and group members), cycle-safe."""
    seen: set[int] = set()
    queue: list[tuple[BaseException, str | None]] = [(exc, None)]
    while queue and len(seen) < MAX_CHAIN:
        current, via = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current, via
        for attr, label in (("__cause__", "cause"), ("__context__", "context")):
            try:
                nxt = getattr(current, attr, None)
            except Exception:
                nxt = None
            if isinstance(nxt, BaseException):
                queue.append((nxt, via or label))
        members = getattr(current, "exceptions", None) if isinstance(current, BaseExceptionGroup) else None
        if members:
            for member in list(members)[:MAX_CHAIN]:
                if isinstance(member, BaseException):
                    queue.append((member, via or "group"))


def _message(exc: BaseException) -> str:
    try:
        args = exc.args
        if args and isinstance(args[0], str):
            return _safe.text(args[0], MAX_MESSAGE)
    except Exception:
        pass
    return _safe.text(exc, MAX_MESSAGE)


def classify(exc: BaseException) -> str | None:
    """``object_deleted``, ``stale_data``, ``pending_rollback`` or None."""
    try:
        from sqlalchemy import exc as sa_exc
    except ImportError:  # pragma: no cover
        return None
    orm_exc = _orm_exc()
    if isinstance(exc, orm_exc.ObjectDeletedError):
        return "object_deleted"
    if isinstance(exc, orm_exc.StaleDataError):
        return "stale_data"
    if isinstance(exc, sa_exc.InvalidRequestError):
        msg = _message(exc)
        if msg.startswith("Could not refresh instance"):
            return "object_deleted"
        if type(exc).__name__ == "PendingRollbackError":
            return "pending_rollback"
    return None


def find(exc: BaseException | None) -> Facts | None:
    """Stage-1 entry point: the facts of the first explainable error in ``exc``'s chain."""
    if exc is None or not isinstance(exc, BaseException):
        return None
    pending: list[tuple[BaseException, str | None]] = []
    for candidate, via in walk_chain(exc):
        kind = classify(candidate)
        if kind in ("object_deleted", "stale_data"):
            return extract(candidate, kind, via)
        if kind == "pending_rollback":
            pending.append((candidate, via))
    for candidate, _via in pending:
        original = _rollback_exception(candidate)
        if original is not None and original is not candidate:
            kind = classify(original)
            if kind in ("object_deleted", "stale_data"):
                return extract(original, kind, "pending_rollback")
        facts = _from_pending_message(candidate)
        if facts is not None:
            return facts
    return None


def _rollback_exception(exc: BaseException) -> BaseException | None:
    """The original error kept by the Session whose transaction it failed (7s2a)."""
    for frame, _ in _frames(exc.__traceback__):
        try:
            owner = frame.f_locals.get("self")
        except Exception:
            continue
        for obj in (owner, getattr(owner, "_transaction", None)):
            try:
                found = getattr(obj, "_rollback_exception", None)
                parent = getattr(obj, "_parent", None)
                while found is None and parent is not None:
                    found = getattr(parent, "_rollback_exception", None)
                    parent = getattr(parent, "_parent", None)
            except Exception:
                found = None
            if isinstance(found, BaseException):
                return found
    return None


def _from_pending_message(exc: BaseException) -> Facts | None:
    msg = _message(exc)
    marker = "Original exception was: "
    if marker not in msg:
        return None
    inner = msg.split(marker, 1)[1]
    inner = inner.split(" (Background on this error", 1)[0].strip()
    facts = from_message(inner, _safe.qualname(type(exc)))
    if facts is not None:
        facts.via = "pending_rollback"
    return facts


# --------------------------------------------------------------------------- frames


def _frames(tb: TracebackType | None) -> Iterator[tuple[FrameType, str]]:
    n = 0
    while tb is not None and n < MAX_FRAMES:
        frame = tb.tb_frame
        try:
            filename = frame.f_code.co_filename.replace("\\", "/")
        except Exception:
            filename = ""
        yield frame, filename
        tb = tb.tb_next
        n += 1


def _site_of(filename: str, co_name: str, table: dict[tuple[str, str], str]) -> str | None:
    if "sqlalchemy/orm/" not in filename:
        return None
    short = filename.rsplit("sqlalchemy/orm/", 1)[1]
    return table.get((short, co_name))


def extract(exc: BaseException, kind: str, via: str | None = None) -> Facts:
    """Read the facts of one ObjectDeletedError / StaleDataError / refresh failure."""
    facts = Facts(error=kind, exception=_safe.qualname(type(exc)), message=_message(exc), via=via)
    sites = dict(_STALE_SITES) if kind == "stale_data" else {**_DELETED_SITES, **_REFRESH_SITES}
    chosen: tuple[FrameType, str] | None = None
    saw_sa_frame = False
    for frame, filename in _frames(exc.__traceback__):
        co_name = frame.f_code.co_name
        if "sqlalchemy/" in filename:
            saw_sa_frame = True
        if co_name in _FLUSH_NAMES and filename.endswith("sqlalchemy/orm/session.py"):
            facts.in_flush = True
        site = _site_of(filename, co_name, sites)
        if site is not None:
            chosen = (frame, site)  # keep going: the innermost site wins
    if chosen is None:
        parsed = from_message(facts.message, facts.exception)
        if parsed is not None:
            parsed.via = via
            parsed.frames_cleared = saw_sa_frame
            parsed.exception = facts.exception
            return parsed
        return facts
    frame, site = chosen
    try:
        local = dict(frame.f_locals)
    except Exception:
        local = {}
    if not local:
        parsed = from_message(facts.message, facts.exception) or facts
        parsed.via, parsed.frames_cleared, parsed.exception = via, True, facts.exception
        return parsed
    facts.site = site
    try:
        _READERS[site](facts, local, frame)
    except Exception:  # odd locals: keep what was read, and say so
        facts.source = "traceback (partial)"
    finally:
        del local
    if facts.expected is None and kind == "stale_data":
        _fill_counts_from_message(facts)
    facts.operation = _OPERATION.get(facts.site, "unknown")
    return facts


# --------------------------------------------------------------------------- readers


def _state_identity(state: Any) -> tuple[Any, ...] | None:
    try:
        key = state.key
    except Exception:
        return None
    if key is None:
        return None
    try:
        return tuple(key[1])
    except Exception:
        return None


def _set_mapper(facts: Facts, mapper: Any) -> None:
    try:
        from sqlalchemy.orm import Mapper

        if isinstance(mapper, Mapper):
            facts.mapper = mapper
            facts.mapper_name = _safe.qualname(mapper.class_)
            facts.class_name = mapper.class_.__name__
    except Exception:
        pass


def _set_table(facts: Facts, table: Any) -> None:
    try:
        from sqlalchemy.sql.schema import Table

        if isinstance(table, Table):
            facts.table = table
            facts.table_name = _safe.text(table.fullname, _safe.MAX_NAME)
    except Exception:
        pass


def _set_connection(facts: Facts, connection: Any) -> None:
    try:
        engine = connection.engine
    except Exception:
        return
    _set_engine(facts, engine)


def _set_engine(facts: Facts, engine: Any) -> None:
    try:
        dialect = engine.dialect
        facts.engine = engine
        facts.dialect = dialect.name
        facts.driver = dialect.driver
        facts.is_async = bool(getattr(dialect, "is_async", False))
        facts.sane_rowcount = bool(dialect.supports_sane_rowcount)
        facts.sane_multi_rowcount = bool(dialect.supports_sane_multi_rowcount)
    except Exception:
        pass


def _set_result(facts: Facts, result: Any) -> None:
    """executemany and the SQL text of the (last) CursorResult of the statement group."""
    if result is None:
        return
    with contextlib.suppress(Exception):
        facts.executemany = bool(result.context.executemany)
        facts.sql = _safe.text(result.context.statement, 2000)


def _set_session(facts: Facts, session: Any) -> None:
    try:
        from sqlalchemy.orm import Session

        if not isinstance(session, Session):
            return
        facts.expire_on_commit = bool(session.expire_on_commit)
        facts.session_key = session.hash_key
        trans = session._transaction
        facts.in_transaction = trans is not None
        engines: list[Any] = []
        while trans is not None:
            for bind in list(getattr(trans, "_connections", {}).keys()):
                eng = getattr(bind, "engine", bind)
                if eng not in engines:
                    engines.append(eng)
            trans = getattr(trans, "_parent", None)
        facts.session_engines = engines
    except Exception:
        pass


def _version_column(facts: Facts) -> Any:
    mapper, table = facts.mapper, facts.table
    try:
        col = mapper.version_id_col if mapper is not None else None
        if col is not None and table is not None and table.c.contains_column(col):
            facts.version_column = col.name
            return col
    except Exception:
        pass
    return None


def _pk_from_params(facts: Facts, params: dict[str, Any], by_label: bool) -> tuple[Any, ...] | None:
    table = facts.table
    if table is None:
        return None
    try:
        mapper = facts.mapper
        cols: list[Any] = list(mapper._pks_by_table[table]) if mapper is not None else list(table.primary_key.columns)
        order: list[Any] = list(table.columns)
        cols.sort(key=order.index)
        out = []
        for col in cols:
            key = col._label if by_label else col.key
            if key not in params:
                key = col.key if by_label else col._label
            if key not in params:
                return None
            out.append(params[key])
        return tuple(out)
    except Exception:
        return None


def _set_values(facts: Facts, params: dict[str, Any]) -> dict[str, Any]:
    """Column name -> value for the SET part of an UPDATE (keys are ``col.key``)."""
    table = facts.table
    if table is None:
        return {}
    out: dict[str, Any] = {}
    try:
        for col in table.columns:
            if col.key in params and not col.primary_key and col.name != facts.version_column:
                out[col.name] = params[col.key]
    except Exception:
        pass
    return out


def _read_update(facts: Facts, local: dict[str, Any], frame: FrameType) -> None:
    post = facts.site == "post_update"
    records = local.get("records")
    records = list(records) if isinstance(records, list | tuple) else []
    _set_table(facts, local.get("table"))
    # The record's own mapper names the class (a subclass under inheritance); the
    # ``mapper`` local is only the last record's.
    first: Any = records[0] if records else None
    with contextlib.suppress(Exception):
        _set_mapper(facts, first[2] if post else first[3])
    for name in ("base_mapper", "mapper"):
        if facts.mapper is None:
            _set_mapper(facts, local.get(name))
    facts.expected = len(records) if records else None
    rows = local.get("rows")
    if isinstance(rows, int):
        facts.matched = rows
    facts.bulk = local.get("uowtransaction", True) is None
    _set_connection(facts, local.get("connection"))
    _set_result(facts, local.get("c"))
    vcol = _version_column(facts)
    for rec in records:
        try:
            state = rec[0]
            params = rec[4] if post else rec[2]
            ident = _state_identity(state) if state is not None else None
            if ident is None and isinstance(params, dict):
                ident = _pk_from_params(facts, params, by_label=True)
            if ident is not None and len(facts.identities) < MAX_RECORDS:
                facts.identities.append(ident)
            if isinstance(params, dict) and len(facts.params) < MAX_RECORDS:
                facts.params.append(dict(params))
                facts.set_values.append(_set_values(facts, params))
                if vcol is not None and facts.version_expected is None:
                    facts.version_expected = params.get(vcol._label)
                    facts.version_new = params.get(vcol.key)
        except Exception:
            continue
    if len(records) == 1 and facts.identities:
        facts.identity = facts.identities[0]


def _read_delete(facts: Facts, local: dict[str, Any], frame: FrameType) -> None:
    _set_table(facts, local.get("table"))
    _set_mapper(facts, local.get("base_mapper"))
    if facts.mapper is None:
        _set_mapper(facts, local.get("mapper"))
    expected, matched = local.get("expected"), local.get("rows_matched")
    facts.expected = expected if isinstance(expected, int) else None
    facts.matched = matched if isinstance(matched, int) else None
    _set_connection(facts, local.get("connection"))
    _set_result(facts, local.get("c"))
    vcol = _version_column(facts)
    objs = local.get("del_objects")
    for params in list(objs)[:MAX_RECORDS] if isinstance(objs, list | tuple) else []:
        if not isinstance(params, dict):
            continue
        ident = _pk_from_params(facts, params, by_label=False)
        if ident is not None:
            facts.identities.append(ident)
        facts.params.append(dict(params))
        if vcol is not None and facts.version_expected is None:
            facts.version_expected = params.get(vcol.key)
    if facts.expected == 1 and len(facts.identities) == 1:
        facts.identity = facts.identities[0]


def _read_m2m(facts: Facts, local: dict[str, Any], frame: FrameType) -> None:
    dp: Any = local.get("self")
    msg = facts.message
    facts.site = "m2m_update" if msg.startswith("UPDATE") else "m2m_delete"
    rows = local.get("secondary_update" if facts.site == "m2m_update" else "secondary_delete")
    try:
        _set_table(facts, dp.secondary)
        _set_mapper(facts, dp.parent)
        facts.relationship = _safe.text(str(dp.prop), _safe.MAX_NAME)
    except Exception:
        pass
    _set_connection(facts, local.get("connection"))
    result: Any = local.get("result")
    try:
        facts.matched = int(result.rowcount)
        facts.sql = _safe.text(result.context.statement, 2000)
        facts.executemany = bool(result.context.executemany)
    except Exception:
        pass
    if isinstance(rows, list):
        facts.expected = len(rows)
        for row in rows[:MAX_RECORDS]:
            if isinstance(row, dict):
                facts.params.append(dict(row))
                facts.identities.append(tuple(row.values()))
        if len(rows) == 1 and facts.identities:
            facts.identity = facts.identities[0]


def _read_load_version(facts: Facts, local: dict[str, Any], frame: FrameType) -> None:
    mapper: Any = local.get("mapper")
    state: Any = local.get("state")
    _set_mapper(facts, mapper)
    with contextlib.suppress(Exception):
        _set_table(facts, mapper.version_id_col.table)
    vcol = _version_column(facts)
    facts.identity = _state_identity(state)
    if facts.identity is not None:
        facts.identities.append(facts.identity)
    try:
        dict_ = local.get("dict_")
        if vcol is not None and isinstance(dict_, dict):
            prop = mapper._columntoproperty[vcol]
            facts.version_expected = dict_.get(prop.key)
        getter, row = local.get("getter"), local.get("row")
        if getter is not None and row is not None:
            facts.version_actual = getter(row)
    except Exception:
        pass
    _parent_session(facts, frame)


def _read_merge(facts: Facts, local: dict[str, Any], frame: FrameType) -> None:
    _set_mapper(facts, local.get("mapper"))
    with contextlib.suppress(Exception):
        _set_table(facts, facts.mapper.local_table if facts.mapper is not None else None)
    _version_column(facts)
    facts.identity = _state_identity(local.get("merged_state")) or _state_identity(local.get("state"))
    if facts.identity is not None:
        facts.identities.append(facts.identity)
    facts.version_expected = local.get("existing_version")
    facts.version_actual = local.get("merged_version")
    _set_session(facts, local.get("self"))


def _read_refresh(facts: Facts, local: dict[str, Any], frame: FrameType) -> None:
    state: Any = local.get("state")
    mapper: Any = local.get("mapper") or local.get("localparent")
    if mapper is None:
        try:
            mapper = state.mapper
        except Exception:
            mapper = None
    _set_mapper(facts, mapper)
    with contextlib.suppress(Exception):
        _set_table(facts, mapper.local_table)
    key = local.get("identity_key")
    ident = None
    try:
        ident = tuple(key[1]) if key is not None else None
    except Exception:
        ident = None
    facts.identity = ident or _state_identity(state)
    if facts.identity is not None:
        facts.identities.append(facts.identity)
    names = local.get("attribute_names") or local.get("group")
    try:
        if names is not None:
            facts.attribute_names = sorted(str(n) for n in list(names)[:50])
    except Exception:
        pass
    session = local.get("session") if facts.site == "refresh" else local.get("self")
    _set_session(facts, session)
    if facts.session_engines:
        _set_engine(facts, facts.session_engines[-1])


def _read_stale_parent(facts: Facts, local: dict[str, Any], frame: FrameType) -> None:
    state: Any = local.get("state")
    try:
        _set_mapper(facts, state.mapper)
        _set_table(facts, state.mapper.local_table)
    except Exception:
        pass
    facts.identity = _state_identity(state)
    if facts.identity is not None:
        facts.identities.append(facts.identity)


def _parent_session(facts: Facts, frame: FrameType) -> None:
    f: FrameType | None = frame
    for _ in range(30):
        if f is None:
            return
        try:
            session = f.f_locals.get("session")
        except Exception:
            session = None
        if session is not None:
            _set_session(facts, session)
            if facts.session_engines and facts.engine is None:
                _set_engine(facts, facts.session_engines[-1])
            return
        f = f.f_back


_READERS = {
    "update": _read_update,
    "post_update": _read_update,
    "delete": _read_delete,
    "m2m": _read_m2m,
    "load_version_check": _read_load_version,
    "merge_version_check": _read_merge,
    "refresh": _read_refresh,
    "session_refresh": _read_refresh,
    "stale_parent": _read_stale_parent,
}

# --------------------------------------------------------------------------- messages

_RE_DELETED = re.compile(r"Instance '<(?P<cls>[\w.]+)(?: at 0x[0-9a-fA-F]+)?>' has been deleted")
_RE_REFRESH = re.compile(r"Could not refresh instance '<(?P<cls>[\w.]+)(?: at 0x[0-9a-fA-F]+)?>'")
_RE_STALE = re.compile(
    r"(?P<verb>UPDATE|DELETE) statement on table '(?P<table>[^']*)' expected to (?:update|delete) "
    r"(?P<expected>-?\d+) row\(s\); (?P<only>Only )?(?P<matched>-?\d+) were matched"
)
_RE_VERSION = re.compile(
    r"Instance '<(?P<cls>[\w.]+)(?: at 0x[0-9a-fA-F]+)?>' has version id '(?P<mem>.*?)' which does not "
    r"match database-loaded version id '(?P<db>.*?)'"
)
_RE_MERGE = re.compile(r"Version id '(?P<inc>.*?)' on merged state <(?P<cls>[\w.]+)[^>]*> does not match existing version '(?P<db>.*?)'")


def _fill_counts_from_message(facts: Facts) -> None:
    m = _RE_STALE.search(facts.message)
    if m:
        facts.expected = int(m.group("expected"))
        facts.matched = int(m.group("matched")) if facts.matched is None else facts.matched
        facts.table_name = facts.table_name or m.group("table")


def from_message(message: str, exception: str) -> Facts | None:
    """The fallback when no frames survived (pickled, Celery-cleared): parse the text."""
    m = _RE_STALE.search(message)
    if m:
        verb = m.group("verb")
        if m.group("only"):
            site = "m2m_update" if verb == "UPDATE" else "m2m_delete"
        else:
            site = "update" if verb == "UPDATE" else "delete"
        return Facts(
            error="stale_data",
            exception=exception,
            message=message,
            site=site,
            operation=_OPERATION[site],
            source="message",
            table_name=m.group("table"),
            expected=int(m.group("expected")),
            matched=int(m.group("matched")),
        )
    m = _RE_VERSION.search(message)
    if m:
        return Facts(
            error="stale_data", exception=exception, message=message, site="load_version_check",
            operation="refresh", source="message", class_name=m.group("cls"),
            version_expected=m.group("mem"), version_actual=m.group("db"),
        )
    m = _RE_MERGE.search(message)
    if m:
        return Facts(
            error="stale_data", exception=exception, message=message, site="merge_version_check",
            operation="update", source="message", class_name=m.group("cls"),
            version_expected=m.group("inc"), version_actual=m.group("db"),
        )
    for rx, site in ((_RE_DELETED, "refresh"), (_RE_REFRESH, "session_refresh")):
        m = rx.search(message)
        if m:
            return Facts(
                error="object_deleted", exception=exception, message=message, site=site,
                operation="refresh", source="message", class_name=m.group("cls"),
            )
    return None
