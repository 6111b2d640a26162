"""Run the sa-explain benchmarks and write one JSON file plus Markdown tables.

    .venv/bin/python benchmarks/run.py                    # full run (≈ 10 min on 2 cores)
    .venv/bin/python benchmarks/run.py --quick            # CI: checks that everything runs (seconds)
    PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/run.py

Method (see docs/performance.md): every configuration runs in its own fresh worker
process (``bench_orm.py --config ...``); the configurations are interleaved within each
round, in a rotated order, for several rounds; the result is, per workload, the median
over rounds of each worker's median time per operation, divided by the median of the
no-instrumentation baseline *of the same run*. A second, finer measurement of tracking
alone alternates tracked and untracked blocks inside one process (``paired``). Sentry
configurations send to a count-only HTTP stub on 127.0.0.1 started here.

Absolute times depend on the machine; only the ratios are meant to be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks import bench_explain  # noqa: E402
from benchmarks.bench_orm import CONFIGS, WORKLOADS  # noqa: E402


class _Stub(BaseHTTPRequestHandler):
    """Sentry ingest stand-in: reads the body, counts it, answers 200."""

    count = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with _Stub.lock:
            _Stub.count += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_stub() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    return server, f"http://public@127.0.0.1:{port}/1"


def worker(config: str, db: str, args: argparse.Namespace, dsn: str, scale: float) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(HERE / "bench_orm.py"),
        "--config", config,
        "--db", db,
        "--dsn", dsn,
        "--scale", str(scale),
        "--repeats", str(args.repeats),
        "--pairs", str(args.pairs),
    ]
    if args.pg_url:
        cmd += ["--pg-url", args.pg_url]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"worker {config}/{db} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def summarize(raw: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """raw[config][workload] = per-round per-op seconds → medians and ratios vs 'none'."""
    out: dict[str, Any] = {}
    for config, per_w in raw.items():
        out[config] = {}
        for w, values in per_w.items():
            base = statistics.median(raw["none"][w])
            med = statistics.median(values)
            out[config][w] = {
                "median_us": med * 1e6,
                "min_us": min(values) * 1e6,
                "max_us": max(values) * 1e6,
                "ratio": med / base,
                "added_us": (med - base) * 1e6,
                "rounds": len(values),
            }
    return out


def orm_tables(summary: dict[str, Any], paired: dict[str, Any], db: str) -> str:
    lines = [f"#### {db}: median per operation (µs) and ratio vs no instrumentation", ""]
    head = "| configuration | " + " | ".join(WORKLOADS) + " |"
    lines += [head, "|---|" + "---|" * len(WORKLOADS)]
    for config in CONFIGS:
        cells = []
        for w in WORKLOADS:
            c = summary[config][w]
            cells.append(f"{c['median_us']:.1f} (×{c['ratio']:.3f})")
        lines.append(f"| {config} | " + " | ".join(cells) + " |")
    lines += ["", f"#### {db}: tracking alone, paired in one process (median of per-pair ratios)", ""]
    lines += ["| workload | none µs | tracking µs | ratio | added µs/op | pairs |", "|---|---|---|---|---|---|"]
    for w in WORKLOADS:
        p = paired[w]
        lines.append(
            f"| {w} | {p['none_per_op_s'] * 1e6:.1f} | {p['tracking_per_op_s'] * 1e6:.1f} | "
            f"×{p['ratio_median']:.3f} | {(p['tracking_per_op_s'] - p['none_per_op_s']) * 1e6:+.2f} | "
            f"{len(p['pair_ratios'])} |"
        )
    return "\n".join(lines)


def explain_table(results: dict[str, Any]) -> str:
    lines = []
    for run in results["runs"]:
        lines += [f"#### explain() latency, primary = {run['db']} (ms)", ""]
        lines += [
            "| raise site | cause | no probes median | no probes p99 | probes median | probes p99 | probe cost (median) |",
            "|---|---|---|---|---|---|---|",
        ]
        for site, r in run["sites"].items():
            a, b = r["without_probes"], r["with_probes"]
            lines.append(
                f"| {site} | {a['cause']} | {a['median_ms']:.3f} | {a['p99_ms']:.3f} | "
                f"{b['median_ms']:.3f} | {b['p99_ms']:.3f} | {r['probe_cost_ms']:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="sa-explain benchmarks")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one round: CI checks that it runs")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--pairs", type=int, default=12)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--explain-n", type=int, default=2000)
    p.add_argument("--pg-url", default=os.environ.get("PG_URL"))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.json")
    p.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    p.add_argument("--skip-orm", action="store_true")
    p.add_argument("--skip-explain", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.repeats, args.pairs, args.scale, args.explain_n = 1, 1, 2, 0.02, 20

    server, dsn = start_stub()
    dbs = ["sqlite"] + (["pg"] if args.pg_url else [])
    started = time.time()
    result: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
        "rounds": args.rounds,
        "quick": args.quick,
        "orm": {},
    }
    try:
        import sentry_sdk
        import sqlalchemy

        result["versions"] = {"sqlalchemy": sqlalchemy.__version__, "sentry_sdk": sentry_sdk.VERSION}
    except ImportError:
        pass
    tables = []
    if not args.skip_orm:
        for db in dbs:
            # PostgreSQL operations are 3-10x slower: fewer of them keep rounds short.
            scale = args.scale * (0.4 if db == "pg" else 1.0)
            raw: dict[str, dict[str, list[float]]] = {c: {w: [] for w in WORKLOADS} for c in CONFIGS}
            pair_rounds: list[dict[str, Any]] = []
            for r in range(args.rounds):
                k = r % len(CONFIGS)
                order = list(CONFIGS[k:] + CONFIGS[:k])  # rotate: no configuration always first
                if args.quick:
                    # Timings do not matter in quick mode: run the workers side by side.
                    with ThreadPoolExecutor(4) as pool:
                        futures = {c: pool.submit(worker, c, db, args, dsn, scale) for c in [*order, "paired"]}
                        done = {c: f.result() for c, f in futures.items()}
                else:
                    done = {}
                    for config in order:
                        done[config] = worker(config, db, args, dsn, scale)
                        print(f"[{time.time() - started:6.1f}s] {db} round {r + 1} {config}", file=sys.stderr)
                    done["paired"] = worker("paired", db, args, dsn, scale)
                for config in order:
                    for w in WORKLOADS:
                        raw[config][w].append(done[config]["workloads"][w]["per_op_s"])
                pair_rounds.append(done["paired"]["workloads"])
            paired: dict[str, Any] = {}
            for w in WORKLOADS:
                ratios = [x for pr in pair_rounds for x in pr[w]["pair_ratios"]]
                paired[w] = {
                    "none_per_op_s": statistics.median(pr[w]["none_per_op_s"] for pr in pair_rounds),
                    "tracking_per_op_s": statistics.median(pr[w]["tracking_per_op_s"] for pr in pair_rounds),
                    "pair_ratios": ratios,
                    "ratio_median": statistics.median(ratios),
                }
            summary = summarize(raw)
            result["orm"][db] = {"raw_per_op_s": raw, "summary": summary, "paired": paired}
            tables.append(orm_tables(summary, paired, db))
    if not args.skip_explain:
        explain_results = bench_explain.main(
            ["--n", str(args.explain_n)] + (["--pg-url", args.pg_url] if args.pg_url else [])
        )
        result["explain"] = explain_results
        tables.append(explain_table(explain_results))
    result["sentry_envelopes_received"] = _Stub.count
    result["elapsed_s"] = round(time.time() - started, 1)
    server.shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    text = "\n\n".join(tables)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    print(text)
    print(f"\nwrote {args.out} in {result['elapsed_s']} s; stub received {_Stub.count} envelopes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
