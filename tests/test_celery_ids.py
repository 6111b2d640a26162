"""When does Celery assign a task id, and what do retries keep? (docs/celery.md, question 1)

Proved against real brokers (Redis and RabbitMQ) and a real worker:

* the id is made by the producer, in ``apply_async``/``send_task`` (or earlier, by
  ``signature.freeze()``), and is already in the message headers when
  ``before_task_publish`` runs, while the broker's queue is still empty;
* each submission gets a fresh id, so a client that submits twice makes two tasks;
* a retry is a new message with the same id, ``retries`` + 1 and the same root id;
  the parent id is kept when there was one, and a root task's retries get their own
  id as parent id (Celery fills an empty ``parent_id`` from the running task); a
  child task gets its own id with ``parent_id``/``root_id`` pointing up;
* Celery does not de-duplicate ids: two messages with one ``task_id`` both run.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, signals
from celery.contrib.testing.worker import start_worker
from kombu import Connection

from tests._celery_app import SHUTDOWN_TIMEOUT, Setup, build
from tests._servers import require_url

pytestmark = [pytest.mark.server]


@pytest.fixture(params=["redis", "amqp"])
def broker(request: pytest.FixtureRequest) -> str:
    return require_url("REDIS_URL" if request.param == "redis" else "AMQP_URL")


@pytest.fixture
def setup(broker: str) -> Iterator[Setup]:
    redis_url = require_url("REDIS_URL")
    run = uuid.uuid4().hex[:10]
    s = build(
        broker=broker,
        backend=redis_url,
        queue=f"sa_explain_ids_{run}",
        pg_url=require_url("PG_URL"),
        table=f"t4_ids_{run}",
        redis_url=redis_url,
        prefix=f"sa_explain:ids:{run}",
    )
    yield s
    with s.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {s.table}")
    s.engine.dispose()
    for key in s.redis.scan_iter(match=s.prefix + "*"):
        s.redis.delete(key)
    # leave no queue behind on RabbitMQ
    with Connection(broker) as conn, contextlib.suppress(Exception):
        conn.default_channel.queue_delete(s.app.conf.task_default_queue)


def queued(s: Setup) -> int:
    """Messages waiting in the task queue, asked of the broker itself."""
    name = s.app.conf.task_default_queue
    if s.app.conf.broker_url.startswith("redis"):
        # kombu's Redis transport keeps a queue as a list named after it
        return int(s.redis.llen(name))
    queue = s.app.amqp.queues[name]  # Celery's own declaration
    with Connection(s.app.conf.broker_url) as conn:
        bound = queue(conn.default_channel)
        bound.declare()
        _, count, _ = bound.queue_declare(passive=True)
        return int(count)


def take(s: Setup) -> dict[str, Any]:
    """Read (and ack) the next message's headers straight from the broker."""
    queue = s.app.amqp.queues[s.app.conf.task_default_queue]
    with Connection(s.app.conf.broker_url) as conn:
        bound = queue(conn.default_channel)
        for _ in range(200):
            msg = bound.get(no_ack=False)
            if msg is not None:
                headers = dict(msg.headers)
                msg.ack()
                return headers
            time.sleep(0.05)
    raise AssertionError("no message in the queue")


@pytest.fixture
def published() -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    signals.before_task_publish.connect(
        lambda headers=None, **_: seen.append(dict(headers or {})),
        weak=False,
        dispatch_uid="t4.before_publish",
    )
    yield seen
    signals.before_task_publish.disconnect(dispatch_uid="t4.before_publish")


def test_the_producer_assigns_the_id_before_the_broker_has_the_message(
    setup: Setup, published: list[dict[str, Any]]
) -> None:
    assert queued(setup) == 0
    counts_at_publish: list[int] = []
    signals.before_task_publish.connect(
        lambda **_: counts_at_publish.append(queued(setup)),
        weak=False,
        dispatch_uid="t4.count_at_publish",
    )
    try:
        res = setup.app.tasks["sa_explain_tests.count"].apply_async(("x",))
    finally:
        signals.before_task_publish.disconnect(dispatch_uid="t4.count_at_publish")
    (headers,) = published
    assert headers["id"] == res.id  # the id existed on the producer side...
    assert counts_at_publish == [0]  # ...while the broker had nothing yet
    assert headers["retries"] == 0 and headers["root_id"] == res.id and headers["parent_id"] is None
    assert queued(setup) == 1
    assert take(setup)["id"] == res.id  # and the message carries exactly that id


def test_send_task_assigns_the_id_on_the_producer_too(
    setup: Setup, published: list[dict[str, Any]]
) -> None:
    # A producer that does not have the task's code at all.
    producer = Celery("producer_only", broker=setup.app.conf.broker_url, set_as_current=False)
    producer.conf.task_default_queue = setup.app.conf.task_default_queue
    res = producer.send_task("sa_explain_tests.count", args=("y",))
    (headers,) = published
    assert headers["id"] == res.id
    assert take(setup)["id"] == res.id


def test_freeze_gives_the_id_without_any_broker() -> None:
    offline = Celery("offline", broker="amqp://guest:guest@127.0.0.1:1//", set_as_current=False)

    @offline.task(shared=False, name="offline.add")
    def add(a: int, b: int) -> int:
        return a + b

    sig = add.s(1, 2)
    frozen = sig.freeze()  # no connection is attempted: port 1 has nobody listening
    assert uuid.UUID(frozen.id)
    assert sig.id == frozen.id
    assert add.s(1, 2).freeze().id != frozen.id  # the same payload, a new id


def test_each_submission_of_the_same_payload_gets_a_new_id(
    setup: Setup, published: list[dict[str, Any]]
) -> None:
    task = setup.app.tasks["sa_explain_tests.count"]
    a = task.apply_async(("same",))
    b = task.apply_async(("same",))
    assert a.id != b.id
    assert [h["id"] for h in published] == [a.id, b.id]
    assert {take(setup)["id"], take(setup)["id"]} == {a.id, b.id}


def test_celery_runs_a_reused_task_id_twice(setup: Setup) -> None:
    """A deterministic task id is not a de-duplication: both messages are executed.

    Both messages are queued before the worker starts; the worker has one slot and
    prefetches one message, so they run one after the other and the count is exact.
    """
    task = setup.app.tasks["sa_explain_tests.count"]
    fixed = f"order-42-charge-{uuid.uuid4().hex[:6]}"
    first = task.apply_async(("reused",), task_id=fixed)
    second = task.apply_async(("reused",), task_id=fixed)
    assert first.id == second.id == fixed
    counter = f"{setup.prefix}:count:reused"
    setup.app.conf.worker_prefetch_multiplier = 1
    with start_worker(
        setup.app,
        pool="solo",
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    ):
        for _ in range(600):
            if int(setup.redis.get(counter) or 0) >= 2:
                break
            time.sleep(0.05)
    assert int(setup.redis.get(counter) or 0) == 2


def test_retries_keep_the_id_and_the_lineage(setup: Setup, published: list[dict[str, Any]]) -> None:
    tag = uuid.uuid4().hex[:6]
    trace = setup.app.tasks["sa_explain_tests.trace"]
    with start_worker(
        setup.app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    ):
        res = trace.apply_async((tag,), {"fail_times": 2, "child": True})
        res.get(timeout=30)
        # the child retries once; wait for its second attempt
        for _ in range(300):
            if setup.redis.llen(f"{setup.prefix}:trace:{tag}-child") >= 2:
                break
            time.sleep(0.05)

    attempts = [json.loads(x) for x in setup.redis.lrange(f"{setup.prefix}:trace:{tag}", 0, -1)]
    assert [a["retries"] for a in attempts] == [0, 1, 2]
    assert {a["id"] for a in attempts} == {res.id}
    assert {a["root_id"] for a in attempts} == {res.id}
    # A root task's retry is published from inside its own run, so Celery fills the
    # empty parent_id with the running task's id: the first attempt becomes the parent.
    assert [a["parent_id"] for a in attempts] == [None, res.id, res.id]

    child = [json.loads(x) for x in setup.redis.lrange(f"{setup.prefix}:trace:{tag}-child", 0, -1)]
    assert [a["retries"] for a in child] == [0, 1]
    assert len({a["id"] for a in child}) == 1 and child[0]["id"] != res.id
    assert {a["parent_id"] for a in child} == {res.id}
    assert {a["root_id"] for a in child} == {res.id}

    # Every retry is a new message, published by the worker, carrying the same id.
    retries = [h for h in published if h["id"] == res.id]
    assert [h["retries"] for h in retries] == [0, 1, 2]
