"""Which operation (task, request, script step) is running, so an explanation can name it.

A :class:`contextvars.ContextVar` carries the current operation: it follows threads
and asyncio tasks without any help, and Celery signals, the WSGI/ASGI middleware and
:func:`operation` all set it the same way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_current: ContextVar[dict[str, Any] | None] = ContextVar("sa_explain_operation", default=None)


def current_context() -> dict[str, Any] | None:
    """A copy of the running operation's context, or None outside any operation."""
    ctx = _current.get()
    return dict(ctx) if ctx is not None else None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bind_context(values: Mapping[str, Any]) -> object:
    """Set the current operation context; returns a token for :func:`unbind_context`."""
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
    }
    ctx.update(values)
    return _current.set(ctx)


def unbind_context(token: object) -> None:
    """Restore the context that was current before :func:`bind_context`."""
    _current.reset(token)  # type: ignore[arg-type]


@contextmanager
def operation(name: str, key: str | None = None, id: str | None = None) -> Iterator[dict[str, Any]]:
    """Mark a unit of work (a request, a script step) so explanations inside it name it.

    ``key`` should identify the payload (an idempotency key or a digest from
    :func:`sa_explain.duplicates.digest`), so two operations with the same key can be
    recognised as duplicates. ``id`` defaults to a random UUID.
    """
    token = bind_context({"kind": "operation", "name": name, "key": key, "id": id or uuid.uuid4().hex})
    try:
        ctx = _current.get()
        assert ctx is not None
        yield ctx
    finally:
        unbind_context(token)
