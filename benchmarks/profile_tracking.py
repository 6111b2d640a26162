"""Which tracking listener costs what: each one alone, paired against no listener, in one process.

    .venv/bin/python benchmarks/profile_tracking.py [--pairs 15] [--db sqlite|pg]

For every listener group of :func:`sa_explain.tracking.install` (engine
``after_cursor_execute``, engine ``commit``, ``engine_connect``, the three mapper write
events, the two Session events) the ORM workloads of ``bench_orm.py`` run with only that
group registered, alternating with no listener at all (ABBA), and the script prints the
added microseconds per operation. ``--cprofile`` additionally writes a cProfile of the
insert workload with everything installed.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapper, Session

from benchmarks.bench_orm import RUNNERS, make_engine, ops_for
from sa_explain import tracking

GROUPS: dict[str, list[tuple[Any, str, Callable[..., Any]]]] = {
    "engine after_cursor_execute": [(Engine, "after_cursor_execute", tracking._after_cursor_execute)],
    "engine commit": [(Engine, "commit", tracking._on_commit)],
    "engine_connect (role detection)": [(Engine, "engine_connect", tracking._engine_connect_2x)],
    "mapper after_insert/update/delete": [
        (Mapper, "after_insert", tracking._after_insert),
        (Mapper, "after_update", tracking._after_update),
        (Mapper, "after_delete", tracking._after_delete),
    ],
    "session after_commit/after_rollback": [
        (Session, "after_commit", tracking._after_commit),
        (Session, "after_rollback", tracking._after_rollback),
    ],
}


def _on(group: str) -> None:
    for target, name, fn in GROUPS[group]:
        event.listen(target, name, fn)


def _off(group: str) -> None:
    for target, name, fn in GROUPS[group]:
        event.remove(target, name, fn)


def measure(engine: sa.engine.Engine, workload: str, group: str, pairs: int, scale: float) -> dict[str, float]:
    import contextlib

    tx = contextlib.nullcontext
    n = ops_for(workload, scale)
    run = RUNNERS[workload]
    base: list[float] = []
    with_group: list[float] = []
    for k in range(pairs):
        for on in ((False, True) if k % 2 == 0 else (True, False)):
            if on:
                _on(group)
            gc.collect()
            t = run(engine, n, tx) / n
            if on:
                _off(group)
            (with_group if on else base).append(t)
    ratios = [b / a for a, b in zip(base, with_group, strict=True)]
    return {
        "none_us": statistics.median(base) * 1e6,
        "with_us": statistics.median(with_group) * 1e6,
        "added_us": (statistics.median(with_group) - statistics.median(base)) * 1e6,
        "ratio": statistics.median(ratios),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=15)
    p.add_argument("--scale", type=float, default=0.5)
    p.add_argument("--db", choices=("sqlite", "pg"), default="sqlite")
    p.add_argument("--pg-url", default=os.environ.get("PG_URL"))
    p.add_argument("--workloads", nargs="+", default=["insert", "get", "bulk_update"])
    p.add_argument("--cprofile", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    tracking.uninstall()
    engine = make_engine(args.db, args.pg_url)
    out: dict[str, Any] = {}
    for workload in args.workloads:
        RUNNERS[workload](engine, 200 if workload != "bulk_update" else 20, __import__("contextlib").nullcontext)
        out[workload] = {}
        for group in GROUPS:
            r = measure(engine, workload, group, args.pairs, args.scale)
            out[workload][group] = r
            print(f"{workload:12s} {group:38s} +{r['added_us']:7.2f} µs/op  ×{r['ratio']:.3f}  (base {r['none_us']:.1f} µs)", flush=True)
    if args.cprofile:
        tracking.install()
        prof = cProfile.Profile()
        prof.enable()
        RUNNERS["insert"](engine, 3000, __import__("contextlib").nullcontext)
        prof.disable()
        tracking.uninstall()
        prof.dump_stats(str(args.cprofile))
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime")
        stats.print_stats("sa_explain", 15)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    from benchmarks.bench_orm import Base

    Base.metadata.drop_all(engine)
    engine.dispose()


if __name__ == "__main__":
    main()
