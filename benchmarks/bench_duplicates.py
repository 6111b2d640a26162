"""What the duplicate detector costs per task, measured against a baseline in the same run.

    REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/bench_duplicates.py [--n 5000] [--out FILE]

Measures, each as median and p99 of single calls (``time.perf_counter_ns``):

* ``record_start + record_end`` (what every task or request pays) and ``find_twin``
  (paid only when an error is explained), on ``MemoryStore`` and on a real Redis;
* a Celery task run through Celery's real tracer (``task.apply()``: the same
  ``build_tracer`` path a worker uses, signals included, without the broker round
  trip) without sa-explain, with the hooks and no detector, with the hooks and each
  store; the difference to the baseline is the overhead per task;
* the same task through a real worker (Redis broker, solo pool): wall time per task
  for a batch, without and with the hooks + RedisStore, alternated over 3 rounds
  (median), because a shared host's load moves these numbers more than the hooks do.

Writes the numbers as JSON (default ``benchmarks/bench_duplicates.json``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sa_explain.celery as sa_celery
from sa_explain import config
from sa_explain.duplicates import Detector, MemoryStore, RedisStore, digest


def stats(samples_ns: list[int]) -> dict[str, float]:
    s = sorted(samples_ns)
    return {
        "median_us": round(statistics.median(s) / 1000, 2),
        "p99_us": round(s[min(len(s) - 1, int(len(s) * 0.99))] / 1000, 2),
        "mean_us": round(statistics.fmean(s) / 1000, 2),
        "n": len(s),
    }


def timed(fn: Callable[[int], Any], n: int, warmup: int = 200) -> list[int]:
    for i in range(warmup):
        fn(-i - 1)
    out = []
    for i in range(n):
        t = time.perf_counter_ns()
        fn(i)
        out.append(time.perf_counter_ns() - t)
    return out


def bench_detector(name: str, det: Detector, n: int) -> dict[str, Any]:
    key = digest((), {"order_id": 1, "amount": 10})
    run = uuid.uuid4().hex[:6]

    def ctx(i: int) -> dict[str, Any]:
        return {
            "kind": "celery",
            "name": f"bench.pay.{run}",
            "key": key,
            "id": f"{run}-{i}",
            "_started": time.time(),
            "_run": f"r{i}",
            "retries": 0,
        }

    lifecycle = timed(
        lambda i: (lambda c: (det.record_start(c), det.record_end(c, "success")))(ctx(i)), n
    )
    probe = ctx(10**9)
    det.record_start(probe)
    find = timed(lambda i: det.find_twin(probe, time.time()), n)
    return {"store": name, "start_end": stats(lifecycle), "find_twin": stats(find)}


def bench_digest(n: int) -> dict[str, Any]:
    payload = {"order_id": 123, "amount": 10, "currency": "EUR", "items": [{"sku": "A1", "qty": 2}]}
    return stats(timed(lambda i: digest((), payload), n))


def bench_celery_eager(n: int, redis_url: str | None) -> dict[str, Any]:
    from celery import Celery

    app = Celery("bench", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.task_store_eager_result = False

    @app.task(shared=False, name="bench.pay")
    def pay(order_id: int, amount: int) -> int:
        return order_id + amount

    def once(i: int) -> None:
        pay.apply(kwargs={"order_id": 1, "amount": 10})

    out: dict[str, Any] = {}
    sa_celery.uninstall()
    config.reset()
    out["baseline"] = stats(timed(once, n))
    sa_celery.install(app)
    out["hooks_no_detector"] = stats(timed(once, n))
    config.update(duplicates=Detector(MemoryStore()))
    out["hooks_memory"] = stats(timed(once, n))
    if redis_url:
        store = RedisStore(
            redis_url, prefix=f"sa_explain:bench:{uuid.uuid4().hex}:", socket_timeout=1.0
        )
        config.update(duplicates=Detector(store))
        out["hooks_redis"] = stats(timed(once, n))
        _cleanup(store)
    sa_celery.uninstall()
    config.reset()
    base = out["baseline"]["median_us"]
    for v in out.values():
        v["overhead_median_us"] = round(v["median_us"] - base, 2)
    return out


def bench_celery_worker(n: int, redis_url: str, rounds: int = 3) -> dict[str, Any]:
    """Alternate baseline and hooked batches ``rounds`` times; report each one's median."""
    from celery import Celery
    from celery.contrib.testing.worker import start_worker

    per_task: dict[str, list[float]] = {"baseline": [], "hooks_redis": []}
    for _ in range(rounds):
        for label in ("baseline", "hooks_redis"):
            queue = f"sa_explain_bench_{uuid.uuid4().hex[:8]}"
            app = Celery("bench_w", broker=redis_url, backend=redis_url, set_as_current=False)
            app.conf.update(task_default_queue=queue, worker_hijack_root_logger=False)

            @app.task(shared=False, name="bench.pay_w")
            def pay_w(order_id: int, amount: int) -> int:
                return order_id + amount

            store = None
            if label == "hooks_redis":
                store = RedisStore(
                    redis_url, prefix=f"sa_explain:bench:{uuid.uuid4().hex}:", socket_timeout=1.0
                )
                config.update(duplicates=Detector(store))
                sa_celery.install(app)
            with start_worker(app, pool="solo", perform_ping_check=False, loglevel="ERROR"):
                pay_w.delay(1, 1).get(timeout=30)  # warm up
                t = time.perf_counter()
                results = [pay_w.delay(1, 10) for _ in range(n)]
                for r in results:
                    r.get(timeout=60)
                wall = time.perf_counter() - t
            per_task[label].append(wall / n * 1e6)
            sa_celery.uninstall()
            config.reset()
            if store is not None:
                _cleanup(store)
    out: dict[str, Any] = {
        label: {
            "n": n,
            "rounds": rounds,
            "per_task_us": round(statistics.median(v), 1),
            "all_rounds_us": [round(x, 1) for x in v],
        }
        for label, v in per_task.items()
    }
    out["overhead_per_task_us"] = round(
        out["hooks_redis"]["per_task_us"] - out["baseline"]["per_task_us"], 1
    )
    return out


def _cleanup(store: RedisStore) -> None:
    for key in store.client.scan_iter(match=store.prefix + "*"):
        store.client.delete(key)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=5000, help="calls per measurement (default 5000)")
    p.add_argument(
        "--worker-n", type=int, default=300, help="tasks per real-worker batch (default 300)"
    )
    p.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = p.parse_args()
    redis_url = os.environ.get("REDIS_URL")

    result: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "redis": redis_url is not None,
        "digest": bench_digest(args.n),
        "detector": [bench_detector("memory", Detector(MemoryStore()), args.n)],
    }
    if redis_url:
        # A generous timeout here: on a loaded host a stall should show up as latency
        # (p99), not as skipped calls. The library default is 50 ms.
        store = RedisStore(
            redis_url, prefix=f"sa_explain:bench:{uuid.uuid4().hex}:", socket_timeout=1.0
        )
        result["detector"].append(bench_detector("redis", Detector(store), args.n))
        result["redis_stats"] = dict(store.stats, last_error=store.last_error)
        _cleanup(store)
    result["celery_apply"] = bench_celery_eager(args.n, redis_url)
    if redis_url and args.worker_n > 0:
        result["celery_worker"] = bench_celery_worker(args.worker_n, redis_url)

    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"python {result['python']} on {result['cpus']} CPUs; n={args.n}; written to {args.out}\n"
    )
    print(f"{'what':44} {'median µs':>10} {'p99 µs':>10}")
    d = result["digest"]
    print(f"{'digest() of a 4-key payload':44} {d['median_us']:>10} {d['p99_us']:>10}")
    for row in result["detector"]:
        for part in ("start_end", "find_twin"):
            s = row[part]
            label = f"{row['store']}: " + (
                "record_start+record_end" if part == "start_end" else "find_twin"
            )
            print(f"{label:44} {s['median_us']:>10} {s['p99_us']:>10}")
    if "redis_stats" in result:
        print(f"redis store stats: {result['redis_stats']}")
    print(
        f"\n{'celery task.apply() (real tracer)':44} {'median µs':>10} {'p99 µs':>10} {'+median':>10}"
    )
    for k, s in result["celery_apply"].items():
        print(f"{k:44} {s['median_us']:>10} {s['p99_us']:>10} {s['overhead_median_us']:>10}")
    if "celery_worker" in result:
        w = result["celery_worker"]
        print(
            f"\nreal worker (Redis broker, solo pool), {w['baseline']['n']} tasks x {w['baseline']['rounds']} rounds: "
            f"baseline {w['baseline']['per_task_us']} µs/task, with hooks+RedisStore "
            f"{w['hooks_redis']['per_task_us']} µs/task ({w['overhead_per_task_us']:+} µs)"
        )


if __name__ == "__main__":
    main()
