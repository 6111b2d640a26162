"""Which operation (task, request, script step) is running, so an explanation can name it.

A :class:`contextvars.ContextVar` carries the current operation: asyncio tasks and
``contextvars.copy_context().run`` (what Starlette's thread pool uses) inherit it; a
plain new ``threading.Thread`` starts without it. Celery signals, the WSGI/ASGI
middleware and :func:`operation` all set it the same way.

Two moments matter and they are not the same one:

* while the operation runs, :func:`current_context` answers (the Celery
  ``task_failure`` signal, a logging filter inside a Flask request);
* after the exception has left :func:`operation` (an ``except`` in the caller,
  ``sys.excepthook``, the ASGI server's error log) the context variable is already
  reset. :func:`operation` therefore remembers the context *on the exception* on its
  way out, and :func:`context_of` finds it there, through ``__cause__`` and
  ``__context__`` too.

When a duplicate detector is configured (``configure(duplicates=Detector(...))``),
:func:`operation` also records the operation's start and end in it, so that another
operation with the same ``key`` can later be named as the racing twin.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

_current: ContextVar[dict[str, Any] | None] = ContextVar("sa_explain_operation", default=None)

PUBLIC_KEYS: tuple[str, ...] = (
    "kind",
    "name",
    "id",
    "key",
    "retries",
    "root_id",
    "parent_id",
    "started_at",
)
"""The keys of the schema's ``context`` object, in schema order (``docs/schema.md``)."""

_EXC_ATTR = "__sa_explain_context__"


@runtime_checkable
class Recorder(Protocol):
    """What :func:`operation` calls on the configured duplicate detector.

    :class:`sa_explain.duplicates.Detector` implements it; any object with these two
    methods can be passed as ``configure(duplicates=...)``. Both must never raise.
    """

    def record_start(self, context: Mapping[str, Any]) -> None: ...

    def record_end(self, context: Mapping[str, Any], outcome: str) -> None: ...


def current_context() -> dict[str, Any] | None:
    """A copy of the running operation's context, or None outside any operation.

    The copy includes private keys (``_started``: the start as a POSIX time; ``_run``:
    a token unique to this run, so that two deliveries of one task id can be told
    apart), used by the duplicate detector; :func:`public_context` keeps only the
    schema's keys.
    """
    ctx = _current.get()
    return dict(ctx) if ctx is not None else None


def public_context(ctx: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The schema's ``context`` object: the documented keys, then any extra public ones.

    Private keys (leading underscore) are dropped, so what reaches a log or Sentry is
    only what ``docs/schema.md`` promises, plus additive keys such as ``payload``
    (present only when the user allowed raw values).
    """
    if ctx is None:
        return None
    out: dict[str, Any] = {k: ctx.get(k) for k in PUBLIC_KEYS}
    for k, v in ctx.items():
        if k not in out and not k.startswith("_"):
            out[k] = v
    return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bind_context(values: Mapping[str, Any]) -> object:
    """Set the current operation context; returns a token for :func:`unbind_context`.

    Only binds: it records nothing in the duplicate detector (the Celery hooks and
    :func:`operation` do that themselves, once per run).
    """
    started = time.time()
    ctx: dict[str, Any] = {
        "kind": "operation",
        "name": None,
        "id": None,
        "key": None,
        "retries": None,
        "root_id": None,
        "parent_id": None,
        "started_at": _iso(started),
        "_started": started,
        "_run": uuid.uuid4().hex,
    }
    ctx.update(values)
    return _current.set(ctx)


def unbind_context(token: object) -> None:
    """Restore the context that was current before :func:`bind_context`.

    A token from another thread or task cannot be reset (``ValueError`` from
    :mod:`contextvars`); then the context is cleared instead, never raised, because
    the callers are hooks that must not fail.
    """
    try:
        _current.reset(token)  # type: ignore[arg-type]
    except (ValueError, TypeError, RuntimeError):
        _current.set(None)


def _recorder() -> Recorder | None:
    try:
        from sa_explain.config import get_config

        finder = get_config().duplicates
    except Exception:  # pragma: no cover - config import cannot fail in practice
        return None
    return finder if isinstance(finder, Recorder) else None


def record_start(ctx: Mapping[str, Any]) -> None:
    """Tell the configured detector that ``ctx`` started (no-op without one; never raises)."""
    rec = _recorder()
    if rec is None or ctx.get("key") is None:
        return
    with suppress(Exception):
        rec.record_start(ctx)


def record_end(ctx: Mapping[str, Any], outcome: str) -> None:
    """Tell the configured detector that ``ctx`` ended with ``outcome`` (never raises)."""
    rec = _recorder()
    if rec is None or ctx.get("key") is None:
        return
    with suppress(Exception):
        rec.record_end(ctx, outcome)


def remember(exc: BaseException, ctx: Mapping[str, Any]) -> None:
    """Attach a copy of ``ctx`` to ``exc`` so it can be explained after the context is gone.

    The first context wins (the innermost operation the error passed through). Held as
    a plain dict: no frames, sessions or user objects. ``ObjectDeletedError`` drops it
    when pickled (its ``__reduce__`` ignores ``__dict__``); in-process it survives.
    """
    if getattr(exc, _EXC_ATTR, None) is not None:
        return
    with suppress(Exception):  # exceptions with __slots__ and no __dict__
        setattr(exc, _EXC_ATTR, dict(ctx))


def context_of(exc: BaseException | None = None) -> dict[str, Any] | None:
    """The context to explain ``exc`` with: the running operation, else the one remembered.

    Looks at ``exc``, then its ``__cause__``/``__context__`` chain (bounded), for a
    context left by :func:`operation` or the middleware. Returns a copy, private keys
    included (``_started``), or None.
    """
    ctx = current_context()
    if ctx is not None or exc is None:
        return ctx
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen and len(seen) < 16:
        seen.add(id(cur))
        found = getattr(cur, _EXC_ATTR, None)
        if isinstance(found, dict):
            return dict(found)
        cur = cur.__cause__ or cur.__context__
    return None


@contextmanager
def operation(
    name: str,
    key: str | None = None,
    id: str | None = None,
    *,
    kind: str = "operation",
    values: Mapping[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Mark a unit of work (a request, a script step) so explanations inside it name it.

    ``key`` should identify the payload (an idempotency key or a digest from
    :func:`sa_explain.duplicates.digest`), so two operations with the same key can be
    recognised as duplicates. ``id`` defaults to a random UUID. ``kind`` is
    ``"operation"`` or, for the middleware, ``"request"``; ``values`` adds keys.

    The yielded dict is the live context: setting ``ctx["_outcome"] = "failure"`` (a
    500 response that raised nothing, say) overrides the outcome recorded at the end,
    which is otherwise ``"failure"`` when an exception leaves the block and
    ``"success"`` when none does. An exception leaving the block carries the context
    with it (see :func:`context_of`); it is never swallowed.
    """
    fields: dict[str, Any] = {"kind": kind, "name": name, "key": key, "id": id or uuid.uuid4().hex}
    if values:
        fields.update(values)
    token = bind_context(fields)
    ctx = _current.get()
    assert ctx is not None
    record_start(ctx)
    outcome = "success"
    try:
        yield ctx
    except BaseException as exc:
        outcome = "failure"
        remember(exc, ctx)
        raise
    finally:
        forced = ctx.get("_outcome")
        record_end(ctx, forced if isinstance(forced, str) else outcome)
        unbind_context(token)
