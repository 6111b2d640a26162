"""Celery integration: the task as the explanation's ``context``, twins, and explaining in time.

``sa_explain.celery.install()`` connects receivers to Celery's task signals (in the
worker process; call it where the worker imports your tasks, e.g. next to
``configure()`` in the module that creates the app):

* ``task_prerun``: binds the task's id, name, retries, root and parent ids and a
  digest of its arguments (:func:`sa_explain.duplicates.digest`) as the current
  context, and records the start in the duplicate detector, if one is configured;
* ``task_failure``: explains the exception **inside the signal**, while its frames
  still hold the facts (Celery clears them right after, in ``traceback_clear``), and
  logs the explanation on the ``sa_explain.celery`` logger at WARNING with
  ``extra={"sa_explain": dict}``. The explanation is also attached to the exception
  (``exc.__sa_explain__``, the :class:`~sa_explain.explanation.Explanation`) and a
  one-line note is added with ``add_note``, so later handlers and a pickled
  ``StaleDataError`` still carry it;
* ``task_retry``: the same for the error a task retries on (``self.retry(exc=exc)``),
  with " - retrying" in the message;
* ``task_postrun``: records the end (``success``, ``failure`` or ``retry``) and
  unbinds the context.

Why WARNING and no ``exc_info``: Celery itself logs the failure at ERROR with the
traceback, and Sentry captures the exception through its Celery integration. Sentry's
logging integration turns ERROR records into events and lower ones into breadcrumbs,
so a WARNING record becomes a breadcrumb on the real event instead of a second event;
without ``exc_info`` no logging filter (ours or anyone's) tries to explain it again.

Raw arguments never enter the context unless allowed: ``install(include_args=True)``
or ``configure(include_params=True)`` adds a capped ``payload`` repr.
"""

from __future__ import annotations

import logging
import reprlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sa_explain import context as _context
from sa_explain.duplicates import digest

__all__ = ["install", "installed", "task_key", "uninstall"]

logger = logging.getLogger("sa_explain.celery")

TaskKey = Callable[[str, Sequence[Any], Mapping[str, Any]], Any]

_lock = threading.Lock()
_settings: dict[str, Any] | None = None
# Tokens of the contexts bound in task_prerun, by task id and thread, for task_postrun.
_tokens: dict[tuple[str, int], tuple[object, dict[str, Any]]] = {}

_OUTCOMES = {"SUCCESS": "success", "FAILURE": "failure", "RETRY": "retry"}
_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200
_repr.maxlevel = 3


def task_key(task: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """The payload digest used as ``context["key"]`` for a task call.

    A task can choose what identifies its payload with a ``sa_explain_key`` option
    (``@app.task(sa_explain_key=lambda args, kwargs: kwargs["order_id"])``); otherwise
    the ``key`` given to :func:`install` (called with the task name, args, kwargs) is
    used; when both are absent or return None, every argument counts. The result is
    always a digest, so raw values never leave the task.
    """
    settings = _settings or {}
    name = str(getattr(task, "name", "") or "")
    per_task = getattr(task, "sa_explain_key", None)
    if callable(per_task):
        return digest(args, kwargs, key=lambda a, kw: per_task(a, kw))
    global_key: TaskKey | None = settings.get("key")
    if global_key is not None:
        return digest(args, kwargs, key=lambda a, kw: global_key(name, a, kw))
    return digest(args, kwargs)


def _allowed(task: Any) -> bool:
    settings = _settings or {}
    app = settings.get("app")
    return app is None or getattr(task, "app", None) is app


def _include_args() -> bool:
    settings = _settings or {}
    flag = settings.get("include_args")
    if flag is not None:
        return bool(flag)
    try:
        from sa_explain.config import get_config

        return bool(get_config().include_params)
    except Exception:
        return False


def _on_prerun(
    sender: Any = None,
    task_id: str | None = None,
    task: Any = None,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    **_: Any,
) -> None:
    try:
        task = task if task is not None else sender
        if task is None or not task_id or not _allowed(task):
            return
        req = getattr(task, "request", None)
        a = tuple(args or ())
        kw = dict(kwargs or {})
        values: dict[str, Any] = {
            "kind": "celery",
            "name": getattr(task, "name", None),
            "id": task_id,
            "key": task_key(task, a, kw),
            "retries": getattr(req, "retries", None),
            "root_id": getattr(req, "root_id", None),
            "parent_id": getattr(req, "parent_id", None),
            "_host": getattr(req, "hostname", None),
        }
        if _include_args():
            values["payload"] = _repr.repr((a, kw))
        token = _context.bind_context(values)
        ctx = _context._current.get()
        if ctx is None:  # pragma: no cover - bind_context just set it
            return
        _tokens[(task_id, threading.get_ident())] = (token, ctx)
        _context.record_start(ctx)
    except Exception:
        pass


def _on_postrun(
    sender: Any = None,
    task_id: str | None = None,
    state: str | None = None,
    **_: Any,
) -> None:
    try:
        entry = _tokens.pop((str(task_id), threading.get_ident()), None)
        if entry is None:
            return
        token, ctx = entry
        outcome = _OUTCOMES.get(str(state), str(state).lower() if state else "unknown")
        _context.record_end(ctx, outcome)
        _context.unbind_context(token)
    except Exception:
        pass


def _on_failure(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    retrying: bool = False,
    **_: Any,
) -> None:
    """Explain now: after this signal Celery clears the frames that hold the facts."""
    if exception is None:
        return
    try:
        if sender is not None and not _allowed(sender):
            return
        explain = _explainer()
        if explain is None:
            return
        started = time.perf_counter()
        explanation = explain(exception)
        if explanation is None:
            return
        data = explanation.to_dict()
        _attach(exception, explanation, data)
        settings = _settings or {}
        if settings.get("log", True):
            _log(sender, task_id, exception, data, time.perf_counter() - started, retrying)
    except Exception:
        pass


def _on_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    """A task retried after an ORM error: explain that error while its frames are alive."""
    exc = getattr(reason, "exc", None)
    if not isinstance(exc, BaseException):
        return
    _on_failure(sender=sender, task_id=getattr(request, "id", None), exception=exc, retrying=True)


def _explainer() -> Callable[[BaseException], Any] | None:
    try:
        import sa_explain

        fn = getattr(sa_explain, "explain", None)
    except Exception:  # pragma: no cover
        return None
    return fn if callable(fn) else None


def _attach(exc: BaseException, explanation: Any, data: Mapping[str, Any]) -> None:
    try:
        if getattr(exc, "__sa_explain__", None) is None:
            exc.__sa_explain__ = explanation  # type: ignore[attr-defined]
    except Exception:
        pass
    try:
        twin = data.get("twin") or {}
        note = f"sa-explain: cause={data.get('cause')}"
        if twin:
            note += f" twin={twin.get('id')} ({twin.get('delta_ms')} ms earlier)"
        notes = getattr(exc, "__notes__", None) or []
        if not any(str(n).startswith("sa-explain:") for n in notes):
            exc.add_note(note)
    except Exception:
        pass


def _log(
    sender: Any,
    task_id: str | None,
    exc: BaseException,
    data: Mapping[str, Any],
    elapsed: float,
    retrying: bool,
) -> None:
    settings = _settings or {}
    level = int(settings.get("level", logging.WARNING))
    if not logger.isEnabledFor(level):
        return
    twin = data.get("twin") or None
    name = getattr(sender, "name", None) or "?"
    if twin:
        msg = "%s in task %s[%s]: %s (twin %s, %s ms earlier, %s)"
        args: tuple[Any, ...] = (
            type(exc).__name__, name, task_id, data.get("cause"),
            twin.get("id"), twin.get("delta_ms"), twin.get("outcome"),
        )
    else:
        msg = "%s in task %s[%s]: %s"
        args = (type(exc).__name__, name, task_id, data.get("cause"))
    if retrying:
        msg += " - retrying"
    logger.log(level, msg, *args, extra={"sa_explain": dict(data), "sa_explain_ms": round(elapsed * 1000, 2)})


def install(
    app: Any = None,
    *,
    key: TaskKey | None = None,
    include_args: bool | None = None,
    log: bool = True,
    level: int = logging.WARNING,
) -> None:
    """Connect the receivers to Celery's signals (idempotent; settings are replaced).

    ``app``: only tasks of this Celery app (default: every task in the process).
    ``key(task_name, args, kwargs)``: what identifies a payload (default: all
    arguments); a task's own ``sa_explain_key`` option wins. ``include_args``: put a
    capped repr of the arguments in the context (default: ``configure(include_params=…)``).
    ``log``/``level``: the record emitted from ``task_failure``.

    Call it in the worker process, after :func:`sa_explain.configure` (for example in
    the module that creates the Celery app, or in a ``worker_process_init`` receiver).
    """
    global _settings
    from celery import signals

    with _lock:
        _settings = {"app": app, "key": key, "include_args": include_args, "log": log, "level": level}
        signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid="sa_explain.prerun")
        signals.task_failure.connect(_on_failure, weak=False, dispatch_uid="sa_explain.failure")
        signals.task_retry.connect(_on_retry, weak=False, dispatch_uid="sa_explain.retry")
        signals.task_postrun.connect(_on_postrun, weak=False, dispatch_uid="sa_explain.postrun")


def uninstall() -> None:
    """Disconnect the receivers (tests, or turning the integration off at run time)."""
    global _settings
    from celery import signals

    with _lock:
        signals.task_prerun.disconnect(dispatch_uid="sa_explain.prerun")
        signals.task_failure.disconnect(dispatch_uid="sa_explain.failure")
        signals.task_retry.disconnect(dispatch_uid="sa_explain.retry")
        signals.task_postrun.disconnect(dispatch_uid="sa_explain.postrun")
        _settings = None
        _tokens.clear()


def installed() -> bool:
    """Whether :func:`install` is in force."""
    return _settings is not None
