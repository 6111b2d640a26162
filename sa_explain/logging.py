"""A stdlib ``logging.Filter`` that attaches the explanation to log records.

Why a filter: it is the one hook every logging setup already has (dictConfig, Django's
``LOGGING``, gunicorn's ``--log-config``), it runs while the exception and its
traceback are still alive, and whatever it sets on the record reaches every handler and
formatter — JSON formatters print ``sa_explain`` as a field, Sentry's
LoggingIntegration sees it (and :class:`sa_explain.sentry.SAExplain` moves it into the
event's contexts).

The filter never drops a record and never raises: a logging call must not fail, or be
silenced, because the explainer could not make sense of it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

__all__ = ["ExplainFilter", "exception_from_exc_info"]

_log = logging.getLogger("sa_explain.logging")

DEFAULT_ATTRIBUTE = "sa_explain"

_inside: ContextVar[bool] = ContextVar("sa_explain_logging_inside", default=False)
"""Set while a hook explains, so a record logged from inside explain() is not explained."""


def exception_from_exc_info(exc_info: object) -> BaseException | None:
    """The exception in any of the forms loggers and hints carry, else None.

    Accepts an exception instance, a ``(type, value, traceback)`` tuple (or list), or
    ``True`` meaning "the exception being handled now" (``sys.exc_info()``). Anything
    else — ``None``, ``False``, a malformed tuple — gives None. Never raises.
    """
    try:
        if exc_info is True:
            exc_info = sys.exc_info()
        if isinstance(exc_info, BaseException):
            return exc_info
        if isinstance(exc_info, tuple | list) and len(exc_info) >= 2:
            value = exc_info[1]
            if isinstance(value, BaseException):
                return value
    except Exception:
        return None
    return None


def explain_dict(
    exc: BaseException, *, include_params: bool | None, probes: bool | None
) -> dict[str, Any] | None:
    """``explain(exc).to_dict()``, or None when it is not one of our errors. Never raises."""
    if _inside.get():
        return None  # a record logged by explain() itself: never recurse
    token = _inside.set(True)
    try:
        from sa_explain import explain

        explanation = explain(exc, include_params=include_params, probes=probes)
        if explanation is None:
            return None
        data = explanation.to_dict()
        return data if isinstance(data, dict) else None
    except Exception:
        with contextlib.suppress(Exception):
            _log.debug("sa-explain: explain() failed in a logging/structlog hook", exc_info=True)
        return None
    finally:
        _inside.reset(token)


def is_explanation(value: object) -> bool:
    """Whether ``value`` looks like an ``Explanation.to_dict()`` result (any schema version)."""
    if not isinstance(value, Mapping):
        return False
    schema = value.get("schema")
    return isinstance(schema, str) and schema.startswith("sa_explain/")


class ExplainFilter(logging.Filter):
    """Sets ``record.sa_explain`` to the explanation when ``record.exc_info`` holds one.

    Attach it to the **handlers** that should carry the field (a logger's own filters
    only see records logged on that exact logger, not those propagated from children),
    or to a logger you log on directly. From dictConfig::

        "filters": {"sa_explain": {"()": "sa_explain.logging.ExplainFilter"}},
        "handlers": {"console": {..., "filters": ["sa_explain"]}},

    ``include_params`` and ``probes`` are passed to :func:`sa_explain.explain` (None
    follows :func:`sa_explain.configure`). ``attribute`` names the record attribute.
    ``name`` works as in :class:`logging.Filter`, but only limits which records are
    *explained*: every record is let through.

    The explanation is computed once per record: a second ExplainFilter (on another
    handler) finds the attribute already set and does nothing.
    """

    def __init__(
        self,
        name: str = "",
        *,
        include_params: bool | None = None,
        probes: bool | None = None,
        attribute: str = DEFAULT_ATTRIBUTE,
    ) -> None:
        super().__init__(name)
        if include_params is not None and not isinstance(include_params, bool):
            raise TypeError(f"include_params must be a bool or None, got {include_params!r}")
        if probes is not None and not isinstance(probes, bool):
            raise TypeError(f"probes must be a bool or None, got {probes!r}")
        if not isinstance(attribute, str) or not attribute.isidentifier():
            raise ValueError(f"attribute must be a Python identifier, got {attribute!r}")
        if attribute in _RESERVED:
            raise ValueError(f"attribute {attribute!r} is a standard LogRecord attribute")
        self.include_params = include_params
        self.probes = probes
        self.attribute = attribute

    def filter(self, record: logging.LogRecord) -> bool:
        if _inside.get():
            return True  # logged from inside an explanation: leave it alone
        try:
            if self.name and not super().filter(record):
                return True
            if is_explanation(record.__dict__.get(self.attribute)):
                return True
            exc = exception_from_exc_info(record.__dict__.get("exc_info"))
            if exc is None:
                return True
            data = explain_dict(exc, include_params=self.include_params, probes=self.probes)
            if data is not None:
                setattr(record, self.attribute, data)
        except Exception:
            token = _inside.set(True)
            try:
                _log.debug("sa-explain: ExplainFilter could not explain a record", exc_info=True)
            except Exception:
                pass
            finally:
                _inside.reset(token)
        return True


_RESERVED = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
"""Attributes a LogRecord already has: ``makeRecord`` refuses ``extra`` keys among them."""
