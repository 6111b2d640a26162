"""A small Celery application for the worker tests: tasks that race on one PostgreSQL row.

Used in-process (``celery.contrib.testing.worker.start_worker``) and by a separate
worker process (``python -m celery -A tests._celery_app:app_from_env worker``), so it
builds everything from arguments or from the environment, never at import time.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import redis
import sqlalchemy as sa
from celery import Celery
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

# An in-process worker on RabbitMQ notices the stop request only when its event loop
# wakes up, which took up to ~10 s in our runs: exactly start_worker's default
# shutdown_timeout, so the default made those tests flaky.
SHUTDOWN_TIMEOUT = 30.0


@dataclass
class Setup:
    app: Celery
    engine: sa.Engine
    order: type[Any]
    table: str
    redis: redis.Redis
    prefix: str


def barrier(client: redis.Redis, key: str, parties: int, timeout: float = 15.0) -> None:
    """Wait until ``parties`` callers reached ``key``: forces both racers to read first."""
    client.incr(key)
    client.expire(key, 60)
    deadline = time.monotonic() + timeout
    while int(client.get(key) or 0) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier {key} not reached by {parties}")
        time.sleep(0.005)


def build(
    *,
    broker: str,
    backend: str,
    queue: str,
    pg_url: str,
    table: str,
    redis_url: str,
    prefix: str,
) -> Setup:
    class Base(DeclarativeBase):
        pass

    class Order(Base):
        __tablename__ = table
        id: Mapped[int] = mapped_column(primary_key=True)
        status: Mapped[str] = mapped_column(sa.String(20))
        paid: Mapped[int] = mapped_column(default=0)
        version: Mapped[int] = mapped_column(nullable=False)
        __mapper_args__ = {"version_id_col": version}  # noqa: RUF012

    engine = sa.create_engine(pg_url, pool_size=5)
    Base.metadata.create_all(engine)
    rclient = redis.Redis.from_url(redis_url)

    app = Celery("sa_explain_tests", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        result_expires=600,
    )

    @app.task(shared=False, bind=True, name="sa_explain_tests.pay")
    def pay(self: Any, order_id: int, amount: int) -> str:
        """Charge an order once... unless the same payload arrives twice at the same time."""
        with Session(engine) as s:
            order = s.get(Order, order_id)
            assert order is not None
            if order.status == "paid":  # the usual, insufficient, idempotency check
                return "already paid"
            barrier(rclient, f"{prefix}:barrier:pay:{order_id}", 2)
            order.status = "paid"
            order.paid += amount
            s.commit()
        return "paid"

    @app.task(shared=False, bind=True, name="sa_explain_tests.ship", max_retries=3)
    def ship(self: Any, order_id: int) -> str:
        """Retries once (same task id), then loses against an admin's edit of the row."""
        with Session(engine) as s:
            order = s.get(Order, order_id)
            assert order is not None
            if self.request.retries == 0:
                order.status = "shipping"
                s.commit()
                raise self.retry(countdown=0.2, exc=RuntimeError("carrier busy"))
            with engine.begin() as conn:  # someone else changes the row meanwhile
                conn.execute(
                    sa.update(Order.__table__)
                    .where(Order.__table__.c.id == order_id)
                    .values(status="on hold", version=Order.__table__.c.version + 1)
                )
            order.status = "shipped"
            s.commit()
        return "shipped"

    @app.task(shared=False, bind=True, name="sa_explain_tests.trace")
    def trace(self: Any, tag: str, fail_times: int = 0, child: bool = False) -> dict[str, Any]:
        """Record what each attempt sees of its own identity (ids, retries)."""
        seen = {
            "id": self.request.id,
            "retries": self.request.retries,
            "root_id": self.request.root_id,
            "parent_id": self.request.parent_id,
            "tag": tag,
        }
        rclient.rpush(f"{prefix}:trace:{tag}", json.dumps(seen))
        rclient.expire(f"{prefix}:trace:{tag}", 600)
        if self.request.retries < fail_times:
            raise self.retry(countdown=0.05)
        if child:
            sub = app.signature(
                "sa_explain_tests.trace", args=(tag + "-child",), kwargs={"fail_times": 1}
            )
            sub.delay()
        return seen

    @app.task(shared=False, name="sa_explain_tests.count")
    def count(tag: str) -> int:
        return int(rclient.incr(f"{prefix}:count:{tag}"))

    return Setup(app=app, engine=engine, order=Order, table=table, redis=rclient, prefix=prefix)


class JSONLines(logging.Handler):
    """Write each record's ``sa_explain`` dict (and the task id) as a JSON line."""

    def __init__(self, path: str) -> None:
        super().__init__(logging.DEBUG)
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        data = getattr(record, "sa_explain", None)
        if data is None:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"message": record.getMessage(), "sa_explain": data}) + "\n")


def app_from_env() -> Celery:
    """Entry point of the subprocess worker: the same setup, configured like an application."""
    import sa_explain.celery
    from sa_explain.config import configure
    from sa_explain.duplicates import Detector, RedisStore

    env = os.environ
    setup = build(
        broker=env["T4_BROKER"],
        backend=env["T4_BACKEND"],
        queue=env["T4_QUEUE"],
        pg_url=env["T4_PG_URL"],
        table=env["T4_TABLE"],
        redis_url=env["T4_REDIS_URL"],
        prefix=env["T4_PREFIX"],
    )
    configure(
        duplicates=Detector(RedisStore(env["T4_REDIS_URL"], prefix=env["T4_PREFIX"] + ":dup:"))
    )

    from celery import signals

    @signals.worker_process_init.connect(weak=False)
    def _fresh_pool(**_: Any) -> None:  # never share the parent's DB connections
        setup.engine.dispose(close=False)

    sa_explain.celery.install(setup.app)
    log = logging.getLogger("sa_explain.celery")
    log.addHandler(JSONLines(env["T4_LOG"]))
    log.setLevel(logging.INFO)
    return setup.app


_worker_app: Celery | None = None


def __getattr__(name: str) -> Any:
    """``celery -A tests._celery_app:worker_app`` builds the app from the environment, once."""
    global _worker_app
    if name == "worker_app":
        if _worker_app is None:
            _worker_app = app_from_env()
        return _worker_app
    raise AttributeError(name)
