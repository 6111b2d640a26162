"""ORM hot-path cost of sa-explain's statement tracking, next to stock sentry-sdk.

One *worker* process runs the four ORM workloads under ONE configuration and prints
JSON (seconds per operation, median of the repeats). ``benchmarks/run.py`` starts the
workers, interleaving the configurations round after round, so that every ratio is taken
against the no-instrumentation baseline of the same run. Separate processes are needed
because sentry-sdk's SqlalchemyIntegration registers its listeners on the Engine class
for good: once initialised in a process, even the "no Sentry" numbers would pay for its
``ensure_integration_enabled`` checks.

The ``paired`` configuration is the precise one for tracking alone: in one process, with
no Sentry, blocks with and without ``sa_explain.install()`` alternate many times, so slow
drifts of a shared 2-core machine hit both sides equally.

Workloads (each op is what an application request does):

* ``insert``: ``session.add(User(...))`` + ``session.commit()`` — one INSERT, one COMMIT,
  three ORM events (after_insert, after_commit, the engine ``commit``).
* ``get``: ``session.get(User, pk)`` then ``session.expire(obj)`` — one SELECT by key.
* ``bulk_update``: ORM bulk UPDATE by primary key of 100 rows (one executemany) + commit.
* ``query_1000``: ``select(User).limit(1000)`` fetched as ORM objects — one statement,
  a lot of row processing.

Sentry configurations wrap every 100 operations in ``sentry_sdk.start_transaction()``
(what a web framework integration does per request); the others use a no-op context.
The DSN points at a local count-only HTTP stub, so the transport is real.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

CONFIGS = (
    "none",
    "tracking",
    "sentry_t0",
    "sentry_t1",
    "sentry_t0+tracking",
    "sentry_t1+tracking",
)
WORKLOADS = ("insert", "get", "bulk_update", "query_1000")
ROWS = 2000
BULK = 100
PER_TRANSACTION = 100


class Base(DeclarativeBase):
    pass


class User(Base):
    # One table per worker process: quick mode runs workers side by side on one database.
    __tablename__ = f"sa_explain_bench_user_{os.getpid()}"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(sa.String(50))


def make_engine(db: str, pg_url: str | None) -> sa.engine.Engine:
    if db == "sqlite":
        engine = sa.create_engine("sqlite://")
    elif db == "pg":
        if not pg_url:
            raise SystemExit("--pg-url is required for --db pg")
        engine = sa.create_engine(pg_url)
    else:
        raise SystemExit(f"unknown db {db!r}")
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.execute(sa.insert(User), [{"id": i, "name": f"user{i}"} for i in range(1, ROWS + 1)])
        s.commit()
    return engine


class Counter:
    next_id = 10_000_000


def _requests(n: int, tx: Callable[[], contextlib.AbstractContextManager[Any]]) -> Iterator[int]:
    """Yield 0..n-1, entering a new "request" context every PER_TRANSACTION items."""
    i = 0
    while i < n:
        with tx():
            for _ in range(min(PER_TRANSACTION, n - i)):
                yield i
                i += 1


def w_insert(engine: sa.engine.Engine, n: int, tx: Callable[[], Any]) -> float:
    with Session(engine) as s:
        t0 = time.perf_counter()
        for _ in _requests(n, tx):
            Counter.next_id += 1
            s.add(User(id=Counter.next_id, name="new"))
            s.commit()
        return time.perf_counter() - t0


def w_get(engine: sa.engine.Engine, n: int, tx: Callable[[], Any]) -> float:
    with Session(engine) as s:
        t0 = time.perf_counter()
        for i in _requests(n, tx):
            obj = s.get(User, (i % ROWS) + 1)
            s.expire(obj)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - t0
        s.rollback()
        return elapsed


def w_bulk_update(engine: sa.engine.Engine, n: int, tx: Callable[[], Any]) -> float:
    with Session(engine) as s:
        t0 = time.perf_counter()
        for i in _requests(n, tx):
            start = (i * BULK) % (ROWS - BULK) + 1
            s.execute(sa.update(User), [{"id": k, "name": f"u{i}"} for k in range(start, start + BULK)])
            s.commit()
        return time.perf_counter() - t0


def w_query_1000(engine: sa.engine.Engine, n: int, tx: Callable[[], Any]) -> float:
    stmt = sa.select(User).order_by(User.id).limit(1000)
    t0 = time.perf_counter()
    for _ in _requests(n, tx):
        with Session(engine) as s:
            rows = s.scalars(stmt).all()
            assert len(rows) == 1000
    return time.perf_counter() - t0


RUNNERS: dict[str, Callable[[sa.engine.Engine, int, Callable[[], Any]], float]] = {
    "insert": w_insert,
    "get": w_get,
    "bulk_update": w_bulk_update,
    "query_1000": w_query_1000,
}
# Operations per repeat at scale 1.0 (about 0.2-0.5 s per repeat on SQLite here).
OPS = {"insert": 1500, "get": 3000, "bulk_update": 200, "query_1000": 40}


def ops_for(workload: str, scale: float) -> int:
    return max(5, int(OPS[workload] * scale))


def setup_config(config: str, dsn: str | None) -> Callable[[], Any]:
    """Apply ``config`` to this process; return the per-request context factory."""
    tracking = config.endswith("tracking")
    if config.startswith("sentry"):
        import sentry_sdk
        from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration

        integrations: list[Any] = [SqlalchemyIntegration()]
        if tracking:
            from sa_explain import SAExplain

            integrations.append(SAExplain())  # setup_once installs the tracking listeners
        sentry_sdk.init(
            dsn=dsn,
            traces_sample_rate=1.0 if "_t1" in config else 0.0,
            integrations=integrations,
        )
        return lambda: sentry_sdk.start_transaction(op="bench", name="bench")
    if tracking:
        import sa_explain

        sa_explain.install()
    return contextlib.nullcontext


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    engine = make_engine(args.db, args.pg_url)
    try:
        return _run(engine, args)
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


def _run(engine: sa.engine.Engine, args: argparse.Namespace) -> dict[str, Any]:
    if args.config == "paired":
        return run_paired(engine, args)
    tx = setup_config(args.config, args.dsn)
    out: dict[str, Any] = {"config": args.config, "db": args.db, "workloads": {}}
    for name in args.workloads:
        n = ops_for(name, args.scale)
        RUNNERS[name](engine, max(5, n // 10), tx)  # warm-up: caches, statement compilation
        times = []
        for _ in range(args.repeats):
            gc.collect()
            times.append(RUNNERS[name](engine, n, tx) / n)
        out["workloads"][name] = {"ops": n, "per_op_s": statistics.median(times), "repeats": times}
    if args.config.startswith("sentry"):
        import sentry_sdk

        sentry_sdk.flush(timeout=5)
    return out


def run_paired(engine: sa.engine.Engine, args: argparse.Namespace) -> dict[str, Any]:
    """Alternate uninstrumented / tracked blocks in one process (ABBA order, no Sentry)."""
    import sa_explain

    tx = contextlib.nullcontext
    out: dict[str, Any] = {"config": "paired", "db": args.db, "workloads": {}}
    for name in args.workloads:
        n = max(5, ops_for(name, args.scale) // 2)
        RUNNERS[name](engine, max(5, n // 5), tx)
        sa_explain.install()
        RUNNERS[name](engine, max(5, n // 5), tx)
        sa_explain.uninstall()
        samples: dict[str, list[float]] = {"none": [], "tracking": []}
        for k in range(args.pairs):
            order = ("none", "tracking") if k % 2 == 0 else ("tracking", "none")
            for cfg in order:
                if cfg == "tracking":
                    sa_explain.install()
                gc.collect()
                samples[cfg].append(RUNNERS[name](engine, n, tx) / n)
                if cfg == "tracking":
                    sa_explain.uninstall()
        # The per-pair ratio cancels drift between pairs; its median is the estimate.
        ratios = [t / b for t, b in zip(samples["tracking"], samples["none"], strict=True)]
        out["workloads"][name] = {
            "ops": n,
            "none_per_op_s": statistics.median(samples["none"]),
            "tracking_per_op_s": statistics.median(samples["tracking"]),
            "pair_ratios": ratios,
            "ratio_median": statistics.median(ratios),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--config", choices=(*CONFIGS, "paired"), required=True)
    p.add_argument("--db", choices=("sqlite", "pg"), default="sqlite")
    p.add_argument("--pg-url", default=os.environ.get("PG_URL"))
    p.add_argument("--dsn", default=None, help="Sentry DSN (the local count-only stub)")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    args = p.parse_args(argv)
    result = run_worker(args)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
