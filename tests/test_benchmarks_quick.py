"""The benchmarks run (tiny sizes): CI checks they work; the numbers live in docs/performance*.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._servers import require_url

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


def test_orm_and_explain_benchmarks_quick(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["benchmarks/run.py", "--quick", "--out", str(out)]
    if os.environ.get("PG_URL"):
        args += ["--pg-url", os.environ["PG_URL"]]
    run(*args)
    data = json.loads(out.read_text())
    assert data, "no results written"


def test_analyze_benchmark_quick(tmp_path: Path) -> None:
    out = tmp_path / "analyze.json"
    run("benchmarks/bench_analyze.py", "--events", "5000", "--repeat", "1", "--json", str(out), "--goal", "60")
    data = json.loads(out.read_text())
    assert all(data["same_answers"].values()), data["same_answers"]


def test_duplicates_benchmark_quick(tmp_path: Path) -> None:
    require_url("REDIS_URL")
    out = tmp_path / "dup.json"
    run("benchmarks/bench_duplicates.py", "--n", "200", "--worker-n", "20", "--out", str(out))
    assert json.loads(out.read_text())


def test_probe_benchmark_quick(tmp_path: Path) -> None:
    require_url("PG_PRIMARY_URL")
    out = tmp_path / "probes.json"
    run("benchmarks/bench_probes.py", "-n", "5", "-o", str(out))
    assert json.loads(out.read_text())
