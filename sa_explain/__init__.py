"""sa-explain: explains SQLAlchemy's ObjectDeletedError and StaleDataError.

``explain(exc)`` turns one of these errors into an :class:`Explanation` — which row,
which server, how far behind the replica was, who else wrote the row, the most likely
cause and what to do — and the surfaces (:class:`SAExplain` for Sentry, ``before_send``,
:class:`sa_explain.logging.ExplainFilter`, :func:`sa_explain.structlog.add_orm_explanation`)
attach it where errors are reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sa_explain.config import configure, get_config
from sa_explain.context import current_context, operation
from sa_explain.explanation import CAUSES, SCHEMA, BindInfo, Explanation, Hint
from sa_explain.pipeline import explain
from sa_explain.tracking import install, uninstall

if TYPE_CHECKING:
    from sa_explain.sentry import SAExplain, before_send

__version__ = "0.1.0"

__all__ = [
    "CAUSES",
    "SCHEMA",
    "BindInfo",
    "Explanation",
    "Hint",
    "SAExplain",
    "__version__",
    "before_send",
    "configure",
    "current_context",
    "explain",
    "get_config",
    "install",
    "operation",
    "uninstall",
]


def __getattr__(name: str) -> Any:
    # sentry-sdk is an optional extra: import it only when the Sentry surface is used.
    if name in ("SAExplain", "before_send"):
        from sa_explain import sentry

        return getattr(sentry, name)
    raise AttributeError(f"module 'sa_explain' has no attribute {name!r}")
