"""The demo is the README's first command: it must reproduce and explain both incidents."""

from __future__ import annotations

import json

import pytest

from sa_explain.cli import main


def test_demo_explains_both_incidents(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
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


def test_demo_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--no-color"]) == 0
    out = capsys.readouterr().out
    assert "What you see today" in out and "What sa-explain says" in out
    assert "replica_lag" in out and "duplicate_submission" in out
    assert "\033[" not in out
