"""Real Celery workers (Redis and RabbitMQ brokers) racing two identical tasks on one PG row.

The client "sent the same request twice": two tasks with the same payload and
different ids both read the order as unpaid, then both write it. The version counter
turns the second write into a ``StaleDataError``; the explanation, made inside Celery's
``task_failure`` signal before ``traceback_clear``, must name the other task as the
twin. A task that retries (same id) and then fails for another reason must not be
given its own earlier attempt as a twin.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from celery import signals
from celery.contrib.testing.worker import start_worker
from kombu import Connection

import sa_explain.celery as sa_celery
from sa_explain.config import configure
from sa_explain.context import current_context
from sa_explain.duplicates import Detector, RedisStore, digest
from tests._celery_app import SHUTDOWN_TIMEOUT, Setup, build
from tests._servers import require_url

pytestmark = [pytest.mark.server, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


class Records(logging.Handler):
    """Collects the ``sa_explain.celery`` records (the real logging path, no mock)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def for_task(self, task_id: str) -> list[dict[str, Any]]:
        out = []
        for r in self.records:
            data = getattr(r, "sa_explain", None)
            if data and (data.get("context") or {}).get("id") == task_id:
                out.append(data)
        return out


@pytest.fixture(params=["redis", "amqp"])
def broker(request: pytest.FixtureRequest) -> str:
    return require_url("REDIS_URL" if request.param == "redis" else "AMQP_URL")


@pytest.fixture
def setup(broker: str) -> Iterator[Setup]:
    pg_url = require_url("PG_URL")
    redis_url = require_url("REDIS_URL")
    run = uuid.uuid4().hex[:10]
    s = build(
        broker=broker,
        backend=redis_url,
        queue=f"sa_explain_t4_{run}",
        pg_url=pg_url,
        table=f"t4_orders_{run}",
        redis_url=redis_url,
        prefix=f"sa_explain:t4:{run}",
    )
    yield s
    with s.engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {s.table}"))
    s.engine.dispose()
    for key in s.redis.scan_iter(match=s.prefix + "*"):
        s.redis.delete(key)
    # leave no queue behind on RabbitMQ
    with Connection(broker) as conn, contextlib.suppress(Exception):
        conn.default_channel.queue_delete(s.app.conf.task_default_queue)


@pytest.fixture
def detector(setup: Setup) -> Detector:
    det = Detector(RedisStore(require_url("REDIS_URL"), prefix=setup.prefix + ":dup:"))
    configure(duplicates=det)
    return det


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    log = logging.getLogger("sa_explain.celery")
    log.addHandler(handler)
    old = log.level
    log.setLevel(logging.INFO)
    yield handler
    log.removeHandler(handler)
    log.setLevel(old)


@pytest.fixture
def at_failure() -> Iterator[list[dict[str, Any]]]:
    """What the context and the detector say inside task_failure, independent of explain()."""
    seen: list[dict[str, Any]] = []

    def receiver(
        sender: Any = None, task_id: str | None = None, exception: Any = None, **_: Any
    ) -> None:
        from sa_explain.config import get_config

        ctx = current_context()
        finder = get_config().duplicates
        twin = finder.find_twin(ctx, time.time()) if ctx and finder else None
        seen.append(
            {"task_id": task_id, "exc": type(exception).__name__, "context": ctx, "twin": twin}
        )

    signals.task_failure.connect(receiver, weak=False, dispatch_uid="t4.at_failure")
    yield seen
    signals.task_failure.disconnect(dispatch_uid="t4.at_failure")


@pytest.fixture
def installed(setup: Setup, detector: Detector) -> Iterator[None]:
    sa_celery.install(setup.app)
    yield
    sa_celery.uninstall()


def seed(setup: Setup, **values: Any) -> None:
    with setup.engine.begin() as conn:
        conn.execute(sa.insert(setup.order.__table__).values(**values))


def row(setup: Setup, order_id: int) -> dict[str, Any]:
    with setup.engine.connect() as conn:
        got = conn.execute(
            sa.select(setup.order.__table__).where(setup.order.__table__.c.id == order_id)
        ).one()
        return dict(got._mapping)


def test_racing_duplicates_name_each_other(
    setup: Setup,
    installed: None,
    records: Records,
    at_failure: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    seed(setup, id=1, status="pending", paid=0, version=1)
    pay = setup.app.tasks["sa_explain_tests.pay"]
    with start_worker(
        setup.app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    ):
        # The same submission twice; keyword order differs, the payload does not.
        first = pay.apply_async(kwargs={"order_id": 1, "amount": 10})
        second = pay.apply_async(kwargs={"amount": 10, "order_id": 1})
        outcomes = {r.id: (r.get(timeout=30, propagate=False), r.state) for r in (first, second)}

    states = sorted(state for _, state in outcomes.values())
    assert states == ["FAILURE", "SUCCESS"], outcomes
    loser = next(i for i, (_, st) in outcomes.items() if st == "FAILURE")
    winner = next(i for i in outcomes if i != loser)
    assert "StaleDataError" in repr(outcomes[loser][0])
    # the race was lost loudly, not silently: the row was charged once
    assert row(setup, 1) == {"id": 1, "status": "paid", "paid": 10, "version": 2}

    # Inside task_failure the hooks had bound the task and the detector found the twin.
    (seen,) = [s for s in at_failure if s["task_id"] == loser]
    ctx = seen["context"]
    assert ctx["kind"] == "celery" and ctx["id"] == loser and ctx["name"] == "sa_explain_tests.pay"
    assert ctx["retries"] == 0 and ctx["root_id"] == loser and ctx["parent_id"] is None
    assert ctx["key"] == digest((), {"order_id": 1, "amount": 10})
    assert "payload" not in ctx  # raw arguments only when allowed
    assert seen["twin"]["id"] == winner
    assert seen["twin"]["outcome"] in ("running", "success")

    # The explanation logged from task_failure names the twin.
    (data,) = records.for_task(loser)
    (tmp_path / "explanation.json").write_text(json.dumps(data, indent=2))
    print(json.dumps(data, indent=2))
    assert data["error"] == "stale_data"
    assert data["context"]["id"] == loser and data["context"]["kind"] == "celery"
    assert data["twin"] is not None and data["twin"]["id"] == winner
    assert data["cause"] == "duplicate_submission"
    assert records.for_task(winner) == []


def test_a_retry_is_not_mistaken_for_a_duplicate(
    setup: Setup,
    installed: None,
    records: Records,
    at_failure: list[dict[str, Any]],
) -> None:
    seed(setup, id=2, status="new", paid=0, version=1)
    ship = setup.app.tasks["sa_explain_tests.ship"]
    with start_worker(
        setup.app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    ):
        res = ship.delay(2)
        res.get(timeout=30, propagate=False)
    assert res.state == "FAILURE" and "StaleDataError" in repr(res.result)

    (seen,) = [s for s in at_failure if s["task_id"] == res.id]
    assert seen["context"]["retries"] == 1 and seen["context"]["id"] == res.id
    assert seen["twin"] is None  # its own first attempt has the same id

    (data,) = records.for_task(res.id)
    assert data["twin"] is None
    assert data["cause"] != "duplicate_submission"
    assert data["context"]["retries"] == 1


def test_prefork_worker_process_names_the_twin_through_redis(tmp_path: Path) -> None:
    """A separate worker process with a prefork pool: the twins ran in different processes."""
    pg_url = require_url("PG_URL")
    redis_url = require_url("REDIS_URL")
    run = uuid.uuid4().hex[:10]
    env = dict(
        os.environ,
        T4_BROKER=redis_url,
        T4_BACKEND=redis_url,
        T4_QUEUE=f"sa_explain_t4_{run}",
        T4_PG_URL=pg_url,
        T4_TABLE=f"t4_orders_{run}",
        T4_REDIS_URL=redis_url,
        T4_PREFIX=f"sa_explain:t4:{run}",
        T4_LOG=str(tmp_path / "explanations.jsonl"),
        PYTHONPATH=str(ROOT),
    )
    setup = build(
        broker=redis_url,
        backend=redis_url,
        queue=env["T4_QUEUE"],
        pg_url=pg_url,
        table=env["T4_TABLE"],
        redis_url=redis_url,
        prefix=env["T4_PREFIX"],
    )
    seed(setup, id=3, status="pending", paid=0, version=1)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests._celery_app:worker_app",
            "worker",
            "-P",
            "prefork",
            "-c",
            "2",
            "-l",
            "WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"t4-{run}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        pay = setup.app.signature("sa_explain_tests.pay")
        first = pay.clone(kwargs={"order_id": 3, "amount": 5}).apply_async()
        second = pay.clone(kwargs={"amount": 5, "order_id": 3}).apply_async()
        results = {r.id: (r.get(timeout=60, propagate=False), r.state) for r in (first, second)}
    finally:
        worker.terminate()
        try:
            out, _ = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            out, _ = worker.communicate()
        with setup.engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {setup.table}"))
        setup.engine.dispose()
        for key in setup.redis.scan_iter(match=setup.prefix + "*"):
            setup.redis.delete(key)

    assert sorted(st for _, st in results.values()) == ["FAILURE", "SUCCESS"], (
        results,
        out[-3000:],
    )
    loser = next(i for i, (_, st) in results.items() if st == "FAILURE")
    winner = next(i for i in results if i != loser)
    lines = [json.loads(x) for x in Path(env["T4_LOG"]).read_text().splitlines()]
    (data,) = [x["sa_explain"] for x in lines if x["sa_explain"]["context"]["id"] == loser]
    assert data["twin"]["id"] == winner, (data, out[-3000:])
    assert data["cause"] == "duplicate_submission"
