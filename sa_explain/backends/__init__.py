"""Per-database knowledge: how to tell a primary from a replica, read lag, and probe a row.

Each database system gets a :class:`Backend`; :func:`for_system` picks it from the
dialect name. The generic backend knows nothing and says so ("unknown"), which is the
right answer for SQLite and for systems nobody has taught us yet.

Contract for every method: never raise (return None / an ``error`` entry instead),
never take longer than the deadline handed in (a ``time.monotonic()`` value), and
never run on the connection or transaction that failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Dialect, Engine


@dataclass(frozen=True, slots=True)
class Detected:
    """What one cheap query at connect time said about the server."""

    role: str  # "primary" | "replica" | "proxy" | "unknown"
    server: str | None = None  # cluster_name, "@@server_id=2", "pgpool-II 4.3.5"
    system: str | None = None  # refines the dialect ("mariadb" vs "mysql")
    details: dict[str, Any] = field(default_factory=dict)


class Backend:
    """The generic backend: knows nothing, costs nothing."""

    systems: tuple[str, ...] = ()

    def detect_role(self, dbapi_connection: Any, dialect: Dialect) -> Detected | None:
        """One cheap query on a new DBAPI connection. None when nothing can be said."""
        return None

    def measure_lag(self, replica: Engine, primary: Engine | None, deadline: float) -> dict[str, Any] | None:
        """The schema's ``replica`` object for ``replica`` (or a proxy), or None."""
        return None

    def prepare_probe(self, connection: Connection, timeout: float) -> None:
        """Make the probe's own connection give up within ``timeout`` seconds server-side."""

    def probe_prefix(self, engine: Engine) -> str:
        """SQL comment that routes the probe to the primary through a proxy ('' for none)."""
        return ""


_GENERIC = Backend()
_registry: dict[str, Backend] = {}


def register(backend: Backend) -> None:
    for name in backend.systems:
        _registry[name] = backend


def for_system(name: str | None) -> Backend:
    """The backend for a dialect name (``postgresql``, ``mysql``, ``mariadb``, ``sqlite``)."""
    if not _registry:
        _load()
    return _registry.get(name or "", _GENERIC)


def _load() -> None:
    # Imported lazily: a backend module may import driver-specific code.
    for modname in ("postgresql", "mysql"):
        try:
            mod = __import__(f"sa_explain.backends.{modname}", fromlist=["BACKEND"])
        except ImportError:  # pragma: no cover - module not shipped
            continue
        backend = getattr(mod, "BACKEND", None)
        if isinstance(backend, Backend):
            register(backend)
    _registry.setdefault("__loaded__", _GENERIC)


def remaining(deadline: float) -> float:
    """Seconds left before ``deadline`` (never negative)."""
    return max(0.0, deadline - time.monotonic())
