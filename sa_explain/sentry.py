"""Sentry integration: every ObjectDeletedError / StaleDataError event carries its explanation.

Usage::

    sentry_sdk.init(dsn=..., integrations=[SAExplain()])

or, for projects that only use ``before_send``::

    sentry_sdk.init(dsn=..., before_send=sa_explain.before_send)

What one error event gains (see docs/sentry.md):

* ``contexts["sa_explain"]``: :meth:`Explanation.to_dict`, size-capped here (the SDK
  trims neither the depth nor the breadth of contexts, and older 2.x cut strings at
  1024 characters);
* tags ``sa_explain.error``, ``sa_explain.cause``, ``sa_explain.table``,
  ``sa_explain.bind_role`` — low-cardinality only, never a primary key or a URL;
* ``fingerprint = ["sa-explain", error, mapper, cause]`` unless one is already set;
* the exception value without the memory address and with the identity
  (``Instance '<Device [42]>' has been deleted, …``);
* one breadcrumb per tracked statement, with the bind that ran it.

Failure semantics: a processor that raises gets its event *dropped* by sentry-sdk 3.x
and half-modified by 2.x, so everything is computed first, on copies, and applied at
the end; any failure returns the event exactly as it came in. The processor never
returns None and never logs above DEBUG (an ERROR record would become another event,
whose processing could log again).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import sentry_sdk
from sentry_sdk.integrations import DidNotEnable, Integration

from sa_explain import _safe
from sa_explain.logging import DEFAULT_ATTRIBUTE, exception_from_exc_info, is_explanation

if TYPE_CHECKING:
    from sentry_sdk._types import Event, Hint

__all__ = ["SAExplain", "before_send"]

_log = logging.getLogger("sa_explain.sentry")

MIN_SQLALCHEMY = (1, 4)

# Limits (see docs/sentry.md): stay far below what any sentry-sdk 2.x/3.x or Sentry accepts.
MAX_STRING = 1000  # sentry-sdk 2.0–2.30 cut every string at 1024 characters
MAX_NAME = 200
MAX_LIST = 20
MAX_KEYS = 50
MAX_DEPTH = 6
MAX_CONTEXT_BYTES = 16_000  # JSON size of contexts["sa_explain"]; the event limit is 1 MB
MAX_BREADCRUMBS = 20
MAX_TAG_VALUE = 200
TAG_KEY = re.compile(r"^[a-zA-Z0-9_.:-]{1,32}$")

_ADDRESS = re.compile(r"<([A-Za-z_][\w.]*) at 0x[0-9a-fA-F]+>")

_inside: ContextVar[bool] = ContextVar("sa_explain_sentry_inside", default=False)
"""Set while the processor runs: an event captured from inside it is passed through."""


@dataclass(frozen=True, slots=True)
class _Options:
    fingerprint: bool = True
    strip_address: bool = True
    breadcrumbs: bool = True
    include_params: bool | None = None
    probes: bool | None = None
    record_attribute: str = DEFAULT_ATTRIBUTE
    query_tags: bool = False


class SAExplain(Integration):
    """sentry-sdk 2.x integration that explains SQLAlchemy's two "row is gone" errors.

    Options (all keyword-only):

    * ``fingerprint`` — group by ``["sa-explain", error, mapper, cause]`` instead of by
      call site; an event that already has a fingerprint (scope, ``capture_event``)
      keeps it.
    * ``strip_address`` — rewrite the exception value: no ``at 0x…``, the identity in
      its place.
    * ``breadcrumbs`` — add the statements sa-explain tracked, with their bind.
    * ``include_params`` — bound parameter values in the explanation. None (default)
      follows Sentry: ``data_collection["database_query_data"]`` when the user set
      ``data_collection``, else ``send_default_pii``.
    * ``probes`` — allow the primary-row probe (None follows
      :func:`sa_explain.configure`).
    * ``query_tags`` — also tag ``sa_explain.identity``, ``sa_explain.context_key`` and
      ``sa_explain.context_id`` (high-cardinality; what the Sentry queries of
      docs/queries/sentry filter on). Off by default.
    * ``record_attribute`` — the LogRecord attribute :class:`sa_explain.logging.ExplainFilter`
      sets; an explanation found there is moved from ``extra`` into the contexts.
    """

    identifier = "sa_explain"

    def __init__(
        self,
        *,
        fingerprint: bool = True,
        strip_address: bool = True,
        breadcrumbs: bool = True,
        include_params: bool | None = None,
        probes: bool | None = None,
        record_attribute: str = DEFAULT_ATTRIBUTE,
        query_tags: bool = False,
    ) -> None:
        flags: tuple[tuple[str, object], ...] = (
            ("fingerprint", fingerprint),
            ("strip_address", strip_address),
            ("breadcrumbs", breadcrumbs),
            ("query_tags", query_tags),
        )
        for name, value in flags:
            if not isinstance(value, bool):
                raise TypeError(f"SAExplain({name}=...) must be a bool, got {value!r}")
        optional: tuple[tuple[str, object], ...] = (
            ("include_params", include_params),
            ("probes", probes),
        )
        for name, value in optional:
            if value is not None and not isinstance(value, bool):
                raise TypeError(f"SAExplain({name}=...) must be a bool or None, got {value!r}")
        if not isinstance(record_attribute, str) or not record_attribute.isidentifier():
            raise ValueError(f"record_attribute must be an identifier, got {record_attribute!r}")
        self.options = _Options(
            fingerprint=fingerprint,
            strip_address=strip_address,
            breadcrumbs=breadcrumbs,
            include_params=include_params,
            probes=probes,
            record_attribute=record_attribute,
            query_tags=query_tags,
        )

    @staticmethod
    def setup_once() -> None:
        """Once per process: check SQLAlchemy, silence our loggers, register the processor."""
        try:
            import sqlalchemy
        except ImportError as exc:
            raise DidNotEnable("sa-explain needs SQLAlchemy, which is not installed") from exc
        version = _version_tuple(getattr(sqlalchemy, "__version__", ""))
        if version < MIN_SQLALCHEMY:
            raise DidNotEnable(
                f"sa-explain needs SQLAlchemy >= 1.4, found {sqlalchemy.__version__!r}"
            )

        from sentry_sdk.integrations.logging import ignore_logger
        from sentry_sdk.scope import add_global_event_processor

        # Nothing we log may become an event or a breadcrumb: an event created while
        # processing an event would be processed again (unbounded recursion).
        for name in ("sa_explain", "sa_explain.*", "sa_explain*"):
            ignore_logger(name)

        try:
            from sa_explain import install

            install()
        except Exception:
            # Tracking makes explanations better, it is not required for them; a broken
            # install must not break the user's sentry_sdk.init().
            _log.warning("sa-explain: statement tracking could not be installed", exc_info=True)

        add_global_event_processor(_event_processor)

    def process(self, event: Event, hint: Hint | None) -> Event:
        """Enrich an event (processor or ``before_send`` form) with these options."""
        return _process(event, hint, self.options)

    def __repr__(self) -> str:
        return f"SAExplain({self.options!r})"


def _active_integration() -> SAExplain | None:
    """The active client's SAExplain, or None when it has none or the user disabled it.

    ``disabled_integrations`` only stops ``setup_once``: after an earlier ``init()`` in the
    same process installed SAExplain, a later ``init(integrations=[SAExplain()],
    disabled_integrations=[SAExplain])`` would still list it, so that option is checked here.
    """
    try:
        client = sentry_sdk.get_client()
        integration = client.get_integration(SAExplain)
        if integration is None:
            return None
        for disabled in client.options.get("disabled_integrations") or ():
            if disabled is SAExplain or isinstance(disabled, SAExplain):
                return None
        return integration
    except Exception:
        return None


def _event_processor(event: Event, hint: Hint) -> Event:
    """The global event processor: a no-op unless the active client enabled SAExplain."""
    integration = _active_integration()
    if integration is None:
        return event
    return _process(event, hint, integration.options)


def before_send(event: Event, hint: Hint) -> Event:
    """A ``before_send`` hook doing what :class:`SAExplain` does, for before_send users.

    Chain it with your own: ``return my_hook(sa_explain.before_send(event, hint), hint)``.
    Call :func:`sa_explain.install` (or ``configure``) at start-up: without the integration
    nothing else installs statement tracking.
    Uses the options of the installed :class:`SAExplain` if there is one (and does
    nothing when its processor already explained the event), else the defaults.
    Returns the event — never None — so it cannot drop anything.
    """
    integration = _active_integration()
    options = integration.options if integration is not None else _Options()
    return _process(event, hint, options)


# --- the work ---------------------------------------------------------------------------


def _process(event: Event, hint: Hint | None, options: _Options) -> Event:
    if _inside.get():
        return event
    token = _inside.set(True)
    try:
        changes = _changes(cast("dict[str, Any]", event), hint, options)
        if changes:
            cast("dict[str, Any]", event).update(changes)
    except Exception:
        with contextlib.suppress(Exception):
            _log.debug("sa-explain: event left unchanged after an error", exc_info=True)
    finally:
        _inside.reset(token)
    return event


def _changes(event: dict[str, Any], hint: object, options: _Options) -> dict[str, Any] | None:
    """The new top-level values for ``event``, built from copies; None for no change."""
    if not isinstance(event, dict) or event.get("type") == "transaction":
        return None
    if not isinstance(hint, Mapping):
        return None
    contexts = event.get("contexts")
    if contexts is not None and not isinstance(contexts, dict):
        return None
    if contexts and "sa_explain" in contexts:
        return None  # already explained (the processor and before_send both installed)

    allow_params = _params_allowed(options)
    attribute = options.record_attribute
    # Already computed where the error was logged: the logging filter's record attribute,
    # or structlog-sentry's copy of the event dict in contexts["structlog"].
    data = _precomputed(hint.get("log_record"), attribute)
    raw_structlog = (contexts or {}).get("structlog")
    structlog_ctx: dict[str, Any] | None = (
        raw_structlog
        if isinstance(raw_structlog, dict) and is_explanation(raw_structlog.get(attribute))
        else None
    )
    if data is None and structlog_ctx is not None:
        data = dict(structlog_ctx[attribute])
    exc = exception_from_exc_info(hint.get("exc_info"))
    statements_sql: list[dict[str, Any]] = []
    if data is None and exc is not None:
        from sa_explain import explain

        explanation = explain(exc, include_params=allow_params, probes=options.probes)
        if explanation is None:
            return None
        statements_sql = [dict(s) for s in explanation.statements if isinstance(s, Mapping)]
        data = explanation.to_dict()
    if data is None:
        return None
    if not statements_sql:
        raw = data.get("statements")
        statements_sql = (
            [dict(s) for s in raw if isinstance(s, Mapping)] if isinstance(raw, list) else []
        )

    full = _capped(data)
    context = _context(full, allow_params)
    changes: dict[str, Any] = {}
    new_contexts = dict(contexts or {})
    new_contexts["sa_explain"] = context
    if structlog_ctx is not None:
        # Moved, not copied: that context is untrimmed, a second copy would double the size.
        new_contexts["structlog"] = {k: v for k, v in structlog_ctx.items() if k != attribute}
    changes["contexts"] = new_contexts

    extra = event.get("extra")
    if isinstance(extra, dict) and attribute in extra:
        # The logging filter's copy, trimmed by the SDK to 10 keys: the context replaces it.
        changes["extra"] = {k: v for k, v in extra.items() if k != attribute}

    tags = _tags(full, options.query_tags)
    old_tags = event.get("tags")
    if tags and (old_tags is None or isinstance(old_tags, dict)):
        changes["tags"] = {**(old_tags or {}), **tags}

    if options.fingerprint and not event.get("fingerprint"):
        changes["fingerprint"] = _fingerprint(full)

    if options.strip_address:
        exception = _exception_values(event.get("exception"), full)
        if exception is not None:
            changes["exception"] = exception

    if options.breadcrumbs and statements_sql:
        crumbs = _breadcrumbs(event.get("breadcrumbs"), statements_sql, full, allow_params)
        if crumbs is not None:
            changes["breadcrumbs"] = crumbs
    return changes


def _params_allowed(options: _Options) -> bool:
    """Whether bound parameter values may be sent, following Sentry's own PII switches."""
    if options.include_params is not None:
        return options.include_params
    client = sentry_sdk.get_client()
    opts = getattr(client, "options", None)
    if not isinstance(opts, Mapping):
        return False
    from sentry_sdk import utils as sentry_utils

    # data_collection exists from sentry-sdk 2.75 on; before that only send_default_pii.
    enabled = getattr(sentry_utils, "has_data_collection_enabled", None)
    if callable(enabled) and enabled(dict(opts)):
        collection = opts.get("data_collection")
        return bool(isinstance(collection, Mapping) and collection.get("database_query_data"))
    return bool(opts.get("send_default_pii"))


def _precomputed(record: object, attribute: str) -> dict[str, Any] | None:
    """An explanation the logging filter (or structlog via stdlib) left on the log record."""
    if record is None:
        return None
    try:
        value = getattr(record, "__dict__", {}).get(attribute)
    except Exception:
        return None
    return dict(value) if isinstance(value, Mapping) and is_explanation(value) else None


# --- capping: contexts are not trimmed by the SDK, so we do it -----------------------------


def _safe_str(value: object, limit: int = MAX_STRING) -> str:
    return _safe.text(value, limit)  # never raises, no memory address, capped


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, capped copy: strings ≤ 1000, lists ≤ 20, dicts ≤ 50 keys, depth ≤ 6."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _safe_str(value)
    if isinstance(value, str):
        return _safe_str(value)
    if depth >= MAX_DEPTH:
        return _safe_str(value, MAX_NAME)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= MAX_KEYS:
                break
            key = _safe_str(k, MAX_NAME)
            if key == "type" and depth == 0:
                continue  # reserved by Sentry in a context
            out[key] = _jsonable(v, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_jsonable(v, depth + 1) for v in value[:MAX_LIST]]
    return _safe_str(value, MAX_NAME)


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


_SHRINK_STEPS: tuple[tuple[str, Any], ...] = (
    ("params", None),
    ("statements", 5),
    ("identities", 5),
    ("hints", "short"),
    ("evidence", 5),
    ("twin", None),
    ("context", None),
    ("statements", 0),
    ("replica", None),
    ("session", None),
    ("probe", None),
)


def _capped(data: Mapping[str, Any]) -> dict[str, Any]:
    """The explanation JSON-safe and capped per value; statements keep the newest."""
    statements = data.get("statements")
    if isinstance(statements, list | tuple) and len(statements) > MAX_LIST:
        data = {**data, "statements": list(statements)[-MAX_LIST:]}
    return cast("dict[str, Any]", _jsonable(data))


def _context(full: Mapping[str, Any], allow_params: bool) -> dict[str, Any]:
    """``contexts["sa_explain"]`` from the capped explanation: at most MAX_CONTEXT_BYTES."""
    ctx = dict(full)
    if not allow_params:
        ctx["params"] = None
    statements = ctx.get("statements")
    if isinstance(statements, list):
        # The SQL text goes to breadcrumbs, not into the context (docs/schema.md).
        ctx["statements"] = [
            {k: v for k, v in s.items() if k != "sql" and (allow_params or k != "params")}
            if isinstance(s, dict)
            else s
            for s in statements
        ]
    for key, how in _SHRINK_STEPS:
        if _size(ctx) <= MAX_CONTEXT_BYTES:
            break
        value = ctx.get(key)
        if how is None:
            ctx[key] = None
        elif how == "short" and isinstance(value, list):
            ctx[key] = [
                {k: v for k, v in h.items() if k != "detail"} if isinstance(h, dict) else h
                for h in value
            ]
        elif isinstance(how, int) and isinstance(value, list):
            ctx[key] = value[-how:] if how and key == "statements" else value[:how]
    if _size(ctx) > MAX_CONTEXT_BYTES:
        # Still too big (absurd input): keep what identifies the error, each value short.
        keep = ("schema", "error", "exception", "operation", "site", "mapper", "table", "cause")
        ctx = {
            k: _safe_str(ctx[k], MAX_NAME) if isinstance(ctx.get(k), str) else None for k in keep
        }
        confidence = full.get("confidence")
        ctx["confidence"] = confidence if isinstance(confidence, int | float) else None
        ctx["truncated"] = True
    return ctx


# --- tags, fingerprint, exception value, breadcrumbs ---------------------------------------


def _tag_value(value: object) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = " ".join(_safe_str(value, MAX_TAG_VALUE * 4).split())  # no newlines, no runs
    return text[:MAX_TAG_VALUE] or None


def _lag_bucket(ctx: Mapping[str, Any]) -> str | None:
    replica = ctx.get("replica")
    lag = replica.get("lag_seconds") if isinstance(replica, Mapping) else None
    if not isinstance(lag, int | float) or isinstance(lag, bool):
        return None
    return "<1s" if lag < 1 else "1-5s" if lag < 5 else "5-30s" if lag < 30 else ">30s"


def _tags(ctx: Mapping[str, Any], query_tags: bool = False) -> dict[str, str]:
    """Low-cardinality tags always; identity and operation ids only with ``query_tags``.

    Sentry's issue search and Discover filter on tags, not on contexts, so the query
    pack (docs/queries/sentry) needs the identity and the payload digest as tags; they
    are high-cardinality values, hence opt-in.
    """
    bind = ctx.get("bind")
    candidates: dict[str, object] = {
        "sa_explain.error": ctx.get("error"),
        "sa_explain.cause": ctx.get("cause"),
        "sa_explain.table": ctx.get("table"),
        "sa_explain.bind_role": bind.get("role") if isinstance(bind, Mapping) else None,
        "sa_explain.bind_name": bind.get("name") if isinstance(bind, Mapping) else None,
        "sa_explain.lag_bucket": _lag_bucket(ctx),
    }
    if query_tags:
        context = ctx.get("context")
        identity = ctx.get("identity")
        candidates["sa_explain.identity"] = (
            json.dumps(identity, separators=(",", ":"), default=str) if isinstance(identity, list) else None
        )
        candidates["sa_explain.context_key"] = context.get("key") if isinstance(context, Mapping) else None
        candidates["sa_explain.context_id"] = context.get("id") if isinstance(context, Mapping) else None
    out: dict[str, str] = {}
    for key, raw in candidates.items():
        value = _tag_value(raw)
        if value is not None and TAG_KEY.match(key):
            out[key] = value
    return out


def _fingerprint(ctx: Mapping[str, Any]) -> list[str]:
    parts = [ctx.get("error"), ctx.get("mapper") or ctx.get("table"), ctx.get("cause")]
    return ["sa-explain", *(_tag_value(p) or "unknown" for p in parts)]


def _identity_text(identity: object) -> str | None:
    if not isinstance(identity, list) or not identity:
        return None
    try:
        text = json.dumps(identity, ensure_ascii=False, default=str)
    except Exception:
        return None
    return _safe_str(text, MAX_NAME)


def _strip(value: str) -> str:
    return _ADDRESS.sub(lambda m: f"<{m.group(1)}>", value)


def clean_value(value: str, ctx: Mapping[str, Any]) -> str:
    """The exception value without ``at 0x…`` and with the identity where it belongs.

    ``Instance '<Device at 0x7f…>' has been deleted…`` becomes ``Instance '<Device [42]>'
    has been deleted…``; a StaleDataError message gets ``(<Device [42]>)`` appended when
    the failing instance is known.
    """
    ident = _identity_text(ctx.get("identity"))
    matches = _ADDRESS.findall(value)
    if ident is not None and len(matches) == 1:
        return _ADDRESS.sub(lambda m: f"<{m.group(1)} {ident}>", value)
    cleaned = _strip(value)
    mapper = ctx.get("mapper")
    if ident is not None and not matches and ctx.get("error") == "stale_data" and mapper:
        short = str(mapper).rsplit(".", 1)[-1]
        cleaned = f"{cleaned.rstrip()} (<{short} {ident}>)"
    return cleaned


def _exception_values(exception: object, ctx: Mapping[str, Any]) -> dict[str, Any] | None:
    """A copy of ``event["exception"]`` with the explained entry's value rewritten."""
    if not isinstance(exception, dict):
        return None
    values = exception.get("values")
    if not isinstance(values, list) or not values:
        return None
    qualified = str(ctx.get("exception") or "")
    short = qualified.rsplit(".", 1)[-1]
    message = ctx.get("message")
    by_text: list[int] = []
    by_type: list[int] = []
    for i, entry in enumerate(values):
        if not isinstance(entry, dict) or not isinstance(entry.get("value"), str):
            continue
        if message and _strip(entry["value"]) == message:
            by_text.append(i)
        etype, module = entry.get("type"), entry.get("module")
        if etype == short and (not module or f"{module}.{etype}" == qualified):
            by_type.append(i)
    # The chain is listed oldest first, the raised exception last: prefer the entry whose
    # text is the explained message and whose type matches, newest first.
    both = [i for i in by_text if i in by_type]
    pick = both or by_text or by_type
    if not pick:
        return None
    chosen = pick[-1]
    old = values[chosen]["value"]
    new = clean_value(old, ctx)
    if new == old:
        return None
    new_values = list(values)
    new_values[chosen] = {**values[chosen], "value": new}
    return {**exception, "values": new_values}


def _parse_time(value: object) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


_CRUMB_KEYS = (
    "bind",
    "role",
    "verb",
    "table",
    "rowcount",
    "ago_ms",
    "executemany",
    "committed",
    "same_thread",
)


def _breadcrumbs(
    existing: object,
    statements: list[dict[str, Any]],
    ctx: Mapping[str, Any],
    allow_params: bool,
) -> dict[str, Any] | None:
    """A copy of ``event["breadcrumbs"]`` with one ``query`` crumb per tracked statement."""
    if existing is not None and not isinstance(existing, dict):
        return None
    old = (existing or {}).get("values", [])
    if not isinstance(old, list):
        return None
    # ISO strings, never datetimes: in before_send the event is already serialized and goes
    # to json.dumps as is (a datetime there loses the event); in a processor the SDK's
    # serializer passes strings through. Existing crumbs hold datetimes (processor) or
    # strings (before_send); the sort below compares both as datetimes.
    base = _parse_time(ctx.get("timestamp"))
    crumbs: list[dict[str, Any]] = []
    for st in statements[-MAX_BREADCRUMBS:]:
        verb, table = st.get("verb"), st.get("table")
        sql = st.get("sql")
        message = (
            _safe_str(sql)
            if isinstance(sql, str) and sql
            else " ".join(_safe_str(p, MAX_NAME) for p in (verb or "SQL", table) if p)
        )
        # bind and role always (null = not known): "which server ran it" is the point.
        data = {k: _jsonable(st.get(k), 1) for k in ("bind", "role")}
        data.update(
            {k: _jsonable(st[k], 1) for k in _CRUMB_KEYS if st.get(k) is not None and k not in data}
        )
        if allow_params and st.get("params") is not None:
            data["params"] = _jsonable(st["params"], 1)
        ago = st.get("ago_ms")
        when = base
        if isinstance(ago, int | float) and not isinstance(ago, bool) and math.isfinite(ago):
            when = base - timedelta(milliseconds=max(0.0, float(ago)))
        stamp = when.isoformat().replace("+00:00", "Z")
        crumbs.append(
            {
                "type": "query",
                "category": "sa_explain.statement",
                "level": "info",
                "message": message,
                "data": data,
                "timestamp": stamp,
            }
        )
    if not crumbs:
        return None
    merged = [*old, *crumbs]
    try:
        merged.sort(
            key=lambda c: (
                _parse_time(c["timestamp"]) if isinstance(c["timestamp"], str) else c["timestamp"]
            )
        )
    except Exception:
        merged = [*old, *crumbs]  # mixed or odd timestamps: ours last, in order
    return {**(existing or {}), "values": merged}


def _version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split(".")[:3]:
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)
