"""A structlog processor that adds the explanation to the event dict.

Place it **before** anything that turns ``exc_info`` into text or drops it
(``format_exc_info``, ``dict_tracebacks``, ``ExceptionRenderer``, ``ConsoleRenderer``)
and before ``structlog_sentry.SentryProcessor``: those consume ``exc_info``, and after
them the exception object is gone::

    structlog.configure(processors=[
        structlog.processors.add_log_level,
        sa_explain.structlog.add_orm_explanation,
        structlog.processors.dict_tracebacks,
        structlog.processors.JSONRenderer(),
    ])

The processor only reads ``exc_info`` and adds one key; it never removes ``exc_info``,
never drops the event and never raises, so a failing explanation cannot lose a log line.
Importing this module does not import structlog.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from sa_explain.logging import (
    DEFAULT_ATTRIBUTE,
    _inside,
    _log,
    exception_from_exc_info,
    explain_dict,
    is_explanation,
)

__all__ = ["AddORMExplanation", "add_orm_explanation"]


class AddORMExplanation:
    """The configurable form of :func:`add_orm_explanation`.

    ``include_params`` and ``probes`` are passed to :func:`sa_explain.explain` (None
    follows :func:`sa_explain.configure`); ``key`` is the event-dict key to set. An
    existing explanation under ``key`` is kept (so two instances in one chain, or a
    value bound by the caller, cost nothing).
    """

    def __init__(
        self,
        *,
        include_params: bool | None = None,
        probes: bool | None = None,
        key: str = DEFAULT_ATTRIBUTE,
    ) -> None:
        if include_params is not None and not isinstance(include_params, bool):
            raise TypeError(f"include_params must be a bool or None, got {include_params!r}")
        if probes is not None and not isinstance(probes, bool):
            raise TypeError(f"probes must be a bool or None, got {probes!r}")
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        self.include_params = include_params
        self.probes = probes
        self.key = key

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if _inside.get():
            return event_dict
        try:
            if is_explanation(event_dict.get(self.key)):
                return event_dict
            exc = exception_from_exc_info(event_dict.get("exc_info"))
            if exc is None:
                return event_dict
            data = explain_dict(exc, include_params=self.include_params, probes=self.probes)
            if data is not None:
                event_dict[self.key] = data
        except Exception:
            token = _inside.set(True)
            try:
                _log.debug("sa-explain: structlog processor could not explain", exc_info=True)
            except Exception:
                pass
            finally:
                _inside.reset(token)
        return event_dict

    def __repr__(self) -> str:
        return (
            f"AddORMExplanation(include_params={self.include_params!r}, "
            f"probes={self.probes!r}, key={self.key!r})"
        )


_default = AddORMExplanation()


def add_orm_explanation(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: set ``event_dict["sa_explain"]`` from ``exc_info``.

    ``exc_info`` may be ``True`` (the exception being handled), a ``(type, value,
    traceback)`` tuple, or an exception instance — the forms structlog accepts. Events
    without one of the two ORM errors (anywhere in the exception chain) pass unchanged.
    """
    return _default(logger, method_name, event_dict)
