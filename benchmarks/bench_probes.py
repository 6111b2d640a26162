"""What sa-explain's database probes cost, measured on the real test servers.

For each system (PostgreSQL direct, PostgreSQL through pgpool-II, MariaDB) this times,
over N runs each:

* ``detect_role`` on an open DBAPI connection (the per-connection cost an application pays);
* ``measure_lag`` with the replica caught up and with a commit in flight (explain-time cost);
* the primary-row probe: a fresh connection from the primary engine's pool, the backend's
  ``prepare_probe`` and ``probe_prefix``, one SELECT by primary key (what ``probes.py`` does);
* a plain ``SELECT 1`` on an open connection, as the baseline round trip of the same run.

Usage (servers from ``eval "$(bash tests/servers/up.sh)"``)::

    .venv/bin/python benchmarks/bench_probes.py [-n 200] [-o benchmarks/results/probes.json]

Writes JSON: per system and operation, median / p90 / p99 / max in milliseconds, and the
median as a multiple of the baseline round trip.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sa_explain.backends import for_system


def timings(fn: Callable[[], Any], n: int) -> list[float]:
    fn()  # warm-up: imports, first connection
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def summary(ms: list[float], baseline: float | None = None) -> dict[str, Any]:
    ms = sorted(ms)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(p * len(ms)))], 3)

    med = statistics.median(ms)
    out = {
        "n": len(ms),
        "median_ms": round(med, 3),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(ms[-1], 3),
    }
    if baseline:
        out["x_select1"] = round(med / baseline, 1)
    return out


def bench_system(
    system: str, replica_url: str, primary_url: str | None, n: int, write_sql: str
) -> dict[str, Any]:
    backend = for_system(system)
    replica = sa.create_engine(replica_url)
    primary = sa.create_engine(primary_url) if primary_url else None
    probe_engine = primary or replica
    meta = sa.MetaData()
    table = sa.Table(
        "sae_bench", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Integer)
    )
    with probe_engine.begin() as c:
        meta.drop_all(c)
        meta.create_all(c)
        c.execute(table.insert().values(id=1_000_000, v=1))  # the probed row
    time.sleep(1.5)  # let the replica apply the DDL (1 s apply delay)
    results: dict[str, Any] = {}

    with replica.connect() as conn:
        dbapi = conn.connection.dbapi_connection

        def select1() -> None:
            cur = dbapi.cursor()
            cur.execute("SELECT 1")
            cur.fetchall()
            cur.close()
            dbapi.rollback()

        base = timings(select1, n)
        baseline = statistics.median(base)
        results["select1_baseline"] = summary(base)
        det = backend.detect_role(dbapi, replica.dialect)
        results["detected_role"] = det.role if det else None
        results["detect_role"] = summary(
            timings(lambda: backend.detect_role(dbapi, replica.dialect), n), baseline
        )

    def lag() -> None:
        r = backend.measure_lag(replica, primary, time.monotonic() + 1.0)
        assert r is not None and not r.get("error"), r

    results["measure_lag_caught_up"] = summary(timings(lag, n), baseline)

    # With a commit in flight: one write, then readings during the apply delay.
    inflight: list[float] = []
    seen_behind = 0
    with probe_engine.connect() as w:
        for i in range(max(5, n // 20)):
            w.execute(sa.text(write_sql), {"v": i})
            w.commit()
            for _ in range(10):
                t = time.perf_counter()
                r = backend.measure_lag(replica, primary, time.monotonic() + 1.0)
                inflight.append((time.perf_counter() - t) * 1000.0)
                if r and r.get("caught_up") is False:
                    seen_behind += 1
    results["measure_lag_in_flight"] = summary(inflight, baseline)
    results["measure_lag_in_flight"]["readings_behind"] = seen_behind

    prefix = backend.probe_prefix(probe_engine)
    stmt = sa.select(table.c.id, table.c.v).where(table.c.id == 1_000_000)

    def probe() -> None:
        with probe_engine.connect() as conn:
            trans = conn.begin()
            backend.prepare_probe(conn, 0.25)
            if prefix:
                compiled = stmt.compile(dialect=probe_engine.dialect)
                positions = getattr(compiled, "positiontup", None)
                params: Any = (
                    tuple(compiled.params[k] for k in positions) if positions else compiled.params
                )
                rows = conn.exec_driver_sql(prefix + str(compiled), params).fetchall()
            else:
                rows = conn.execute(stmt).fetchall()
            trans.rollback()
        assert rows, "probe found no row"

    results["primary_row_probe_pooled"] = summary(timings(probe, n), baseline)
    results["probe_prefix"] = prefix
    replica.dispose()
    if primary is not None:
        primary.dispose()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("-o", "--output", default="benchmarks/results/probes.json")
    args = ap.parse_args()
    env = os.environ
    missing = [
        k
        for k in (
            "PG_PRIMARY_URL",
            "PG_STANDBY_URL",
            "PGPOOL_URL",
            "MARIADB_PRIMARY_URL",
            "MARIADB_REPLICA_URL",
        )
        if not env.get(k)
    ]
    if missing:
        print(f'missing {missing}: run  eval "$(bash tests/servers/up.sh)"  first', file=sys.stderr)
        return 2
    import sqlalchemy

    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "sqlalchemy": sqlalchemy.__version__,
        "runs": args.n,
        "systems": {},
    }
    write = "INSERT INTO sae_bench (v) VALUES (:v)"
    report["systems"]["postgresql (psycopg, direct standby)"] = bench_system(
        "postgresql",
        env["PG_STANDBY_URL"],
        env["PG_PRIMARY_URL"],
        args.n,
        write,
    )
    report["systems"]["postgresql via pgpool-II (psycopg)"] = bench_system(
        "postgresql",
        env["PGPOOL_URL"],
        None,
        args.n,
        write,
    )
    report["systems"]["mariadb (pymysql engine; lag via mysqlclient)"] = bench_system(
        "mariadb",
        env["MARIADB_REPLICA_URL"],
        env["MARIADB_PRIMARY_URL"],
        args.n,
        write,
    )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
