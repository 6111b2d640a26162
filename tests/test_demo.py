"""The demo is the README's first command: it must reproduce and explain both incidents."""

from __future__ import annotations

import json
import subprocess
import sys


def demo(*args: str) -> str:
    # A separate process, as a user runs it: the demo initialises sentry-sdk globally.
    proc = subprocess.run(
        [sys.executable, "-m", "sa_explain", "demo", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_demo_explains_both_incidents() -> None:
    lines = [json.loads(line) for line in demo("--json").splitlines() if line.startswith("{")]
    by_incident = {r["incident"]: r for r in lines}
    lag = by_incident["replica_lag"]["explanation"]
    assert lag["error"] == "object_deleted" and lag["cause"] == "replica_lag"
    assert lag["bind"]["role"] == "replica" and lag["primary_row"] == "present" and lag["identity"] == [42]
    dup = by_incident["duplicate_task"]["explanation"]
    assert dup["error"] == "stale_data" and dup["cause"] == "duplicate_submission"
    assert dup["twin"]["id"] != dup["context"]["id"] and dup["twin"]["name"] == "update_firmware"
    for r in lines:
        event = r["sentry_event"]
        assert "0x" not in event["exception.value"]
        assert event["tags"]["sa_explain.cause"] == r["explanation"]["cause"]


def test_demo_text_output() -> None:
    out = demo("--no-color")
    assert "What you see today" in out and "What sa-explain says" in out
    assert "replica_lag" in out and "duplicate_submission" in out
    assert "\033[" not in out
