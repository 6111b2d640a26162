"""Explain-time checks on the primary: is the row there, at which version; how far behind is the replica.

Each check is one read-only SELECT on a *fresh* connection from the primary engine —
never the failing connection, whose transaction is gone — run on a small worker pool so
that the caller waits at most ``probe_timeout`` whatever the driver does (a server that
accepts and never answers, a lock held on the row). A check that overruns is abandoned
by the caller and reported as timed out; its worker finishes in the background and the
pool refuses new work while both workers are stuck, so a sick database cannot pile up
threads. A token bucket keeps an error storm from turning into a probe storm.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sa_explain import _safe
from sa_explain.backends import for_system
from sa_explain.config import Config

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.sql.schema import Table

T = TypeVar("T")
MAX_WORKERS = 2


@dataclass
class ProbeResult:
    """What the primary-row probe found; ``row`` is None when it could not tell."""

    ran: bool = False
    skipped: str | None = None
    bind: str | None = None
    elapsed_ms: float | None = None
    row: str | None = None  # "present" | "absent"
    error: str | None = None
    present: list[tuple[Any, ...]] = field(default_factory=list)
    absent: list[tuple[Any, ...]] = field(default_factory=list)
    values: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "skipped": self.skipped,
            "bind": self.bind,
            "elapsed_ms": None if self.elapsed_ms is None else round(self.elapsed_ms, 3),
            "row": self.row,
            "error": self.error,
        }


class _Bucket:
    """Token bucket: ``rate`` probes per second, bursts of up to ``max(1, rate)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._stamp = time.monotonic()
        self._rate = -1.0

    def take(self, rate: float) -> bool:
        with self._lock:
            now = time.monotonic()
            burst = max(1.0, rate)
            if rate != self._rate:
                self._rate, self._tokens = rate, burst
            else:
                self._tokens = min(burst, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


_bucket = _Bucket()
_pool_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_in_flight = 0
stats = {"started": 0, "timed_out": 0, "rate_limited": 0, "busy": 0}


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="sa-explain-probe")
        return _pool


def run_bounded(fn: Callable[[float], T], deadline: float) -> tuple[str, T | None, str | None]:
    """Run ``fn(deadline)`` on the probe pool; wait until ``deadline`` at most.

    Returns ``("ok", value, None)``, ``("timeout", None, why)``, ``("busy", None, why)`` or
    ``("error", None, why)``. Never raises.
    """
    global _in_flight
    with _pool_lock:
        if _in_flight >= MAX_WORKERS:
            stats["busy"] += 1
            return "busy", None, "earlier probes are still running (database slow or unreachable)"
        _in_flight += 1

    def task() -> T:
        global _in_flight
        try:
            return fn(deadline)
        finally:
            with _pool_lock:
                _in_flight -= 1

    try:
        future = _executor().submit(task)
    except Exception as exc:  # interpreter shutting down
        with _pool_lock:
            _in_flight -= 1
        return "error", None, _safe.text(exc, 200)
    stats["started"] += 1
    try:
        return "ok", future.result(timeout=max(0.0, deadline - time.monotonic())), None
    except concurrent.futures.TimeoutError:
        stats["timed_out"] += 1
        return "timeout", None, "timed out"
    except Exception as exc:
        return "error", None, _safe.text(f"{type(exc).__name__}: {exc}", 300)


def probe_allowed(cfg: Config, engine: Engine | None) -> str | None:
    """Why a probe on ``engine`` must not run (None when it may)."""
    if not cfg.probes:
        return "probes are disabled (configure(probes=True) enables them)"
    if engine is None:
        return "no primary is known (configure(primary=engine) names it)"
    try:
        if getattr(engine.dialect, "is_async", False):
            return "async engine: probes would block the event loop, skipped"
        if engine.dialect.name == "sqlite" and (engine.url.database in (None, "", ":memory:") or "mode=memory" in str(engine.url)):
            return "in-memory SQLite: a new connection would see another database"
    except Exception:
        return "engine could not be inspected"
    return None


def take_token(cfg: Config) -> bool:
    ok = _bucket.take(cfg.probe_rate)
    if not ok:
        stats["rate_limited"] += 1
    return ok


def probe_rows(
    cfg: Config,
    engine: Engine,
    bind_name: str | None,
    table: Table,
    pk_columns: list[str],
    identities: list[tuple[Any, ...]],
    extra_columns: list[str],
    deadline: float,
) -> ProbeResult:
    """Look the identities up on ``engine`` by primary key; fetch ``extra_columns`` too."""
    result = ProbeResult(bind=bind_name)
    why = probe_allowed(cfg, engine)
    if why is None and (not pk_columns or not identities):
        why = "the primary key of the failing row is not known"
    if why is None and not take_token(cfg):
        why = f"rate limit reached ({cfg.probe_rate:g} probes/s)"
    if why is not None:
        result.skipped = why
        return result
    started = time.perf_counter()
    status, found, err = run_bounded(
        lambda dl: _select(engine, table, pk_columns, identities, extra_columns, dl), deadline
    )
    result.elapsed_ms = (time.perf_counter() - started) * 1000.0
    if status != "ok" or found is None:
        if status == "busy":
            result.skipped = err
        else:
            result.ran = True
            result.error = f"{err} after {result.elapsed_ms:.0f} ms" if status == "timeout" else err
        return result
    result.ran = True
    result.values = found
    result.present = [i for i in identities if i in found]
    result.absent = [i for i in identities if i not in found]
    # In a group, a single missing row is the one that failed the count.
    result.row = "absent" if result.absent else "present"
    return result


def _select(
    engine: Engine,
    table: Table,
    pk_columns: list[str],
    identities: list[tuple[Any, ...]],
    extra_columns: list[str],
    deadline: float,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    from sqlalchemy import and_, or_, select

    backend = for_system(engine.dialect.name)
    pk = [table.c[name] for name in pk_columns]
    extra = [table.c[name] for name in extra_columns if name in table.c and name not in pk_columns]
    where = or_(*[and_(*[c == v for c, v in zip(pk, ident, strict=True)]) for ident in identities])
    stmt = select(*pk, *extra).where(where)
    # A proxy routing comment ("/*NO LOAD BALANCE*/") must stand before SELECT, where
    # prefix_with() cannot put it: compile, prepend, and hand the driver the result.
    prefix = backend.probe_prefix(engine)
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            backend.prepare_probe(conn, max(0.001, deadline - time.monotonic()))
            if prefix:
                compiled = stmt.compile(dialect=engine.dialect)
                positions = getattr(compiled, "positiontup", None)
                params: Any = (
                    tuple(compiled.params[k] for k in positions) if positions else compiled.params
                )
                rows = conn.exec_driver_sql(prefix + str(compiled), params).fetchall()
            else:
                rows = conn.execute(stmt).fetchall()
        finally:
            trans.rollback()
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    n = len(pk)
    for row in rows:
        key = tuple(row[:n])
        out[key] = {c.name: row[n + i] for i, c in enumerate(extra)}
    return out


def measure_lag(
    cfg: Config, replica: Engine, primary: Engine | None, deadline: float
) -> dict[str, Any] | None:
    """Replica lag via the backend of ``replica``'s system, within ``deadline``."""
    if not cfg.lag:
        return None
    try:
        # Backends read lag on connections of their own (built from the URL, on the
        # probe pool), never through the engine's pool, so async engines are fine too.
        backend = for_system(replica.dialect.name)
    except Exception:
        return None
    if type(backend).measure_lag is type(for_system("")).measure_lag:
        return None  # the generic backend cannot measure anything: say nothing
    started = time.perf_counter()
    status, value, err = run_bounded(lambda dl: backend.measure_lag(replica, primary, dl), deadline)
    if status == "ok":
        return value
    return {"error": err, "elapsed_ms": round((time.perf_counter() - started) * 1000.0, 3)}
