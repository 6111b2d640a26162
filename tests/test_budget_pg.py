"""The explain-time budget is shared: lag first, then the probe, never past probe_timeout."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm.exc import ObjectDeletedError

import sa_explain
from tests._replicas import Widget, reset_tables, routing_session, wait_pg_replayed
from tests._servers import require_url

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def pg() -> Iterator[tuple[Engine, Engine]]:
    primary = sa.create_engine(require_url("PG_PRIMARY_URL"))
    standby = sa.create_engine(require_url("PG_STANDBY_URL"))
    reset_tables(primary)
    wait_pg_replayed(primary, standby)
    yield primary, standby
    primary.dispose()
    standby.dispose()


def test_probe_is_skipped_when_lag_spent_the_budget(pg: tuple[Engine, Engine]) -> None:
    primary, standby = pg
    wait_pg_replayed(primary, standby)
    budget = 0.005  # lag readings open fresh backend connections: several ms
    sa_explain.configure(primary=primary, replicas=[standby], probe_rate=1000, probe_timeout=budget)
    session = routing_session(primary, standby)
    widget = Widget(name="budget")
    session.add(widget)
    session.commit()
    with pytest.raises(ObjectDeletedError) as info:
        _ = widget.name
    started = time.perf_counter()
    explanation = sa_explain.explain(info.value)
    elapsed = time.perf_counter() - started
    session.close()
    assert explanation is not None
    d = explanation.to_dict()
    assert elapsed < budget + 0.05, f"explain() took {elapsed * 1000:.1f} ms for a {budget * 1000:.0f} ms budget"
    assert d["probe"]["ran"] is False and "budget" in d["probe"]["skipped"], d["probe"]
    assert any("budget" in e for e in d["evidence"]), d["evidence"]
    assert d["replica"]["error"], d["replica"]  # the lag reading itself was cut off
    assert d["cause"] == "replica_lag"  # still: the refresh read a replica
