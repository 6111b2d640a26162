"""Benchmark: ``sa-explain analyze`` on 1 M generated events vs a plain-Python baseline.

Both sides compute the same five reports (by cause × table × role, top identities,
replica lag p50/p95/max, duplicate clusters, hourly timeline) from the same file in the
same run; the baseline is what a script would do without DuckDB: ``json.loads`` per
line and ``collections``. The script checks that both agree on the counts, then prints
and writes JSON.

    .venv/bin/python benchmarks/bench_analyze.py --events 1000000 --repeat 3 --json benchmarks/results/analyze.json

The generated file is cached under /tmp (it takes ~45 s to write 1 M events, 2.2 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sa_explain.analyze import generate  # noqa: E402
from sa_explain.analyze.reader import find_record  # noqa: E402


def _epoch_ms(ts: str) -> int:
    from datetime import datetime

    return round(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def _quantile_cont(values: list[float], q: float) -> float:
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def baseline(path: str, window_ms: int = 60_000, bucket_ms: int = 3_600_000) -> dict[str, Any]:
    """The same reports with json + collections, one line at a time."""
    by_cause: Counter[tuple[Any, Any, Any]] = Counter()
    idents: Counter[tuple[Any, str]] = Counter()
    lags: dict[Any, list[float]] = defaultdict(list)
    lag_errors: Counter[Any] = Counter()
    keys: dict[str, list[tuple[int, str]]] = defaultdict(list)
    timeline: Counter[tuple[int, Any]] = Counter()
    records = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            rec, _ = find_record(json.loads(line))
            if rec is None:
                continue
            records += 1
            bind = rec["bind"] or {}
            by_cause[(rec["cause"], rec["table"], bind.get("role"))] += 1
            if rec["identity"] is not None:
                idents[(rec["table"], json.dumps(rec["identity"]))] += 1
            if rec["replica"] is not None:
                lag_errors[bind.get("name")] += 1
                v = rec["replica"].get("lag_seconds")
                if v is not None:
                    lags[bind.get("name")].append(float(v))
            ms = _epoch_ms(rec["timestamp"])
            ctx = rec["context"]
            if ctx and ctx.get("key"):
                keys[ctx["key"]].append((ms, ctx["id"]))
            timeline[(ms // bucket_ms, rec["cause"])] += 1
    clusters = 0
    for items in keys.values():
        if len(items) < 2:
            continue
        items.sort()
        ids: set[str] = set()
        prev = None
        for ms, cid in items:
            if prev is not None and ms - prev > window_ms:
                clusters += len(ids) >= 2
                ids = set()
            ids.add(cid)
            prev = ms
        clusters += len(ids) >= 2
    lag = {
        name: (lag_errors[name], len(v), _quantile_cont(v, 0.5), _quantile_cont(v, 0.95), max(v))
        for name, v in lags.items()
    }
    return {
        "records": records,
        "by_cause": dict(by_cause),
        "top_identities": sorted(idents.values(), reverse=True)[:10],
        "lag": lag,
        "duplicate_clusters": clusters,
        "timeline_cells": len(timeline),
    }


def analyze(path: str) -> tuple[float, float, dict[str, Any]]:
    """Run the real command line (a fresh process, as a user would) and read its JSON.

    Returns wall seconds, CPU seconds (user + system of the child: less sensitive to other
    work on a shared machine) and the report.
    """
    out = path + ".report.json"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sa_explain", "analyze", path, "--format", "json", "--bucket", "1h",
         "--no-progress", "-q", "-o", out],
        check=True, cwd=ROOT,
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(out, encoding="utf-8") as fh:
        doc = json.load(fh)
    os.unlink(out)
    return seconds, cpu, doc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="runs of analyze (the median is reported)")
    ap.add_argument("--json", metavar="FILE", help="also write the results here")
    ap.add_argument("--goal", type=float, default=5.0, help="seconds analyze may take (default 5)")
    args = ap.parse_args()

    path = f"/tmp/sa_explain_bench_{args.events}_{args.seed}.jsonl"
    gen_seconds = None
    if not os.path.exists(path):
        start = time.perf_counter()
        with open(path + ".part", "w", encoding="utf-8") as fh:
            generate.write(fh, args.events, args.seed, "structlog")
        os.replace(path + ".part", path)
        gen_seconds = time.perf_counter() - start
    size = os.path.getsize(path)

    load_before = os.getloadavg()[0]
    runs: list[float] = []
    cpus: list[float] = []
    doc: dict[str, Any] = {}
    for _ in range(args.repeat):
        seconds, cpu, doc = analyze(path)
        runs.append(seconds)
        cpus.append(cpu)
    start = time.perf_counter()
    cpu_start = time.process_time()
    base = baseline(path)
    base_seconds = time.perf_counter() - start
    base_cpu = time.process_time() - cpu_start

    reports = doc["reports"]
    got_by_cause = {(r["cause"], r["table"], r["bind_role"]): r["errors"] for r in reports["by_cause"]}
    agree = {
        "records": doc["input"]["records"] == base["records"],
        "by_cause": got_by_cause == base["by_cause"],
        "top_identities": [r["errors"] for r in reports["identities"]] == base["top_identities"],
        "duplicate_clusters": len(reports["duplicates"]) == base["duplicate_clusters"],
        "timeline_cells": len(reports["timeline"]) == base["timeline_cells"],
        "lag_max": all(
            abs(r["max_s"] - base["lag"][r["bind_name"]][4]) < 1e-6
            for r in reports["lag"] if r["bind_name"] != "(all)"
        ),
    }
    median = statistics.median(runs)
    result = {
        "benchmark": "analyze",
        "events": args.events,
        "file_bytes": size,
        "generate_seconds": None if gen_seconds is None else round(gen_seconds, 2),
        "analyze_seconds": [round(r, 3) for r in runs],
        "analyze_median_seconds": round(median, 3),
        "analyze_cpu_seconds": [round(c, 3) for c in cpus],
        "baseline_seconds": round(base_seconds, 3),
        "baseline_cpu_seconds": round(base_cpu, 3),
        "speedup": round(base_seconds / median, 2),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "goal_seconds": args.goal,
        "meets_goal": median <= args.goal,
        "same_answers": agree,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "command": " ".join(["python", "benchmarks/bench_analyze.py", *sys.argv[1:]]),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
    return 0 if all(agree.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
