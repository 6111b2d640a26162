"""Remedies for duplicate client submissions without random ids (docs/celery.md, question 2).

One harness: two submissions of the same payload ("charge order 1 with 10") start at
the same instant in two threads, each with its own Session on a real database, and
wait ``GAP`` seconds between reading the order and writing the charge, which is the
window a real duplicate hits. The baseline tests show the race is real (a double
charge without a version column, a ``StaleDataError`` with one); each remedy test runs
the same race and ends with exactly one charge and no exception.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from sa_explain.duplicates import digest
from tests._servers import require_url

pytestmark = [pytest.mark.server]

GAP = 0.3
PAYLOAD: dict[str, Any] = {"order_id": 1, "amount": 10}


@dataclass
class DB:
    engine: sa.Engine
    order: Any
    charge: Any


def make_db(url: str, *, versioned: bool) -> DB:
    run = uuid.uuid4().hex[:8]

    class Base(DeclarativeBase):
        pass

    class Order(Base):
        __tablename__ = f"t4_rem_order_{run}"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        status: Mapped[str] = mapped_column(sa.String(20))
        version: Mapped[int] = mapped_column(default=1)
        if versioned:
            __mapper_args__ = {"version_id_col": version}

    class Charge(Base):
        __tablename__ = f"t4_rem_charge_{run}"
        id: Mapped[int] = mapped_column(primary_key=True)
        order_id: Mapped[int]
        amount: Mapped[int]
        # The deterministic key of the submission: unique, so the database arbitrates.
        idempotency_key: Mapped[str | None] = mapped_column(sa.String(64), unique=True)

    engine = sa.create_engine(url, pool_size=4)
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(Order(id=1, status="pending", version=1))
        s.commit()
    return DB(engine, Order, Charge)


@pytest.fixture
def pg() -> Iterator[Callable[..., DB]]:
    yield from _dbs(require_url("PG_URL"))


@pytest.fixture
def mariadb() -> Iterator[Callable[..., DB]]:
    yield from _dbs(require_url("MARIADB_URL"))


def _dbs(url: str) -> Iterator[Callable[..., DB]]:
    made: list[DB] = []

    def factory(*, versioned: bool = False) -> DB:
        db = make_db(url, versioned=versioned)
        made.append(db)
        return db

    yield factory
    for db in made:
        db.order.metadata.drop_all(db.engine)
        db.engine.dispose()


def race(submit: Callable[[dict[str, Any]], Any], n: int = 2) -> list[Any]:
    """Run ``submit(payload)`` ``n`` times at once; exceptions are returned, not raised."""
    barrier = threading.Barrier(n)

    def one(i: int) -> Any:
        payload = dict(reversed(list(PAYLOAD.items()))) if i % 2 else dict(PAYLOAD)
        barrier.wait()
        try:
            return submit(payload)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def charges(db: DB) -> list[tuple[int, int, str | None]]:
    with db.engine.connect() as conn:
        t = db.charge.__table__
        return [
            tuple(r) for r in conn.execute(sa.select(t.c.order_id, t.c.amount, t.c.idempotency_key))
        ]


def order_status(db: DB) -> str:
    with db.engine.connect() as conn:
        return str(conn.execute(sa.select(db.order.__table__.c.status)).scalar_one())


def naive(db: DB) -> Callable[[dict[str, Any]], str]:
    """Check-then-act without protection: what the post-mortem's task did."""

    def submit(payload: dict[str, Any]) -> str:
        with Session(db.engine) as s:
            order = s.get(db.order, payload["order_id"])
            if order.status == "paid":
                return "already paid"
            time.sleep(GAP)
            s.add(db.charge(order_id=order.id, amount=payload["amount"]))
            order.status = "paid"
            s.commit()
            return "charged"

    return submit


# ---------------------------------------------------------------- the race is real


def test_baseline_without_version_column_charges_twice(pg: Callable[..., DB]) -> None:
    db = pg(versioned=False)
    assert race(naive(db)) == ["charged", "charged"]
    assert len(charges(db)) == 2  # corrupted: the customer paid twice


def test_baseline_with_version_column_raises_stale_data(pg: Callable[..., DB]) -> None:
    db = pg(versioned=True)
    results = race(naive(db))
    assert sorted(map(type, results), key=str) == sorted([str, StaleDataError], key=str)
    assert len(charges(db)) == 1  # not corrupted, but one submission failed loudly


# ---------------------------------------------------------------- 1. deterministic key + ON CONFLICT (PostgreSQL)


def test_idempotency_key_from_content_with_on_conflict_pg(pg: Callable[..., DB]) -> None:
    db = pg(versioned=True)

    def submit(payload: dict[str, Any]) -> int:
        key = digest((), payload)  # same content, same key: no random id involved
        with Session(db.engine) as s:
            time.sleep(GAP)
            inserted = s.execute(
                pg_insert(db.charge)
                .values(order_id=payload["order_id"], amount=payload["amount"], idempotency_key=key)
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
                .returning(db.charge.id)
            ).scalar_one_or_none()
            if inserted is not None:  # the first submission does the work
                s.get(db.order, payload["order_id"]).status = "paid"
            s.commit()
            # both submissions answer with the same charge
            return int(
                s.execute(
                    sa.select(db.charge.id).where(db.charge.idempotency_key == key)
                ).scalar_one()
            )

    results = race(submit)
    assert all(isinstance(r, int) for r in results), results
    assert results[0] == results[1]
    assert [(o, a) for o, a, _ in charges(db)] == [(1, 10)]
    assert order_status(db) == "paid"


# ---------------------------------------------------------------- 2. unique constraint + INSERT IGNORE (MariaDB)


def test_unique_constraint_with_insert_ignore_mariadb(mariadb: Callable[..., DB]) -> None:
    db = mariadb(versioned=False)

    def submit(payload: dict[str, Any]) -> str:
        key = digest((), payload)
        with Session(db.engine) as s:
            time.sleep(GAP)
            result = s.execute(
                mysql_insert(db.charge)
                .prefix_with("IGNORE")
                .values(order_id=payload["order_id"], amount=payload["amount"], idempotency_key=key)
            )
            if result.rowcount == 1:
                s.get(db.order, payload["order_id"]).status = "paid"
                s.commit()
                return "charged"
            s.commit()
            return "duplicate ignored"

    assert sorted(race(submit)) == ["charged", "duplicate ignored"]
    assert len(charges(db)) == 1 and order_status(db) == "paid"


def test_unique_constraint_with_on_duplicate_key_update_mariadb(mariadb: Callable[..., DB]) -> None:
    db = mariadb(versioned=False)

    def submit(payload: dict[str, Any]) -> int:
        key = digest((), payload)
        with Session(db.engine) as s:
            time.sleep(GAP)
            stmt = mysql_insert(db.charge).values(
                order_id=payload["order_id"], amount=payload["amount"], idempotency_key=key
            )
            # a no-op update on conflict: the second submission changes nothing
            s.execute(stmt.on_duplicate_key_update(amount=stmt.inserted.amount))
            s.commit()
            return int(
                s.execute(
                    sa.select(db.charge.id).where(db.charge.idempotency_key == key)
                ).scalar_one()
            )

    results = race(submit)
    assert all(isinstance(r, int) for r in results) and results[0] == results[1], results
    assert len(charges(db)) == 1


# ---------------------------------------------------------------- 3. SELECT … FOR UPDATE


@pytest.mark.parametrize("server", ["pg", "mariadb"])
def test_select_for_update_serialises_the_duplicates(
    server: str, request: pytest.FixtureRequest
) -> None:
    db = request.getfixturevalue(server)(versioned=True)

    def submit(payload: dict[str, Any]) -> str:
        with Session(db.engine) as s:
            # the second submission waits here until the first commits, then sees "paid"
            order = s.get(db.order, payload["order_id"], with_for_update=True)
            if order.status == "paid":
                return "already paid"
            time.sleep(GAP)
            s.add(db.charge(order_id=order.id, amount=payload["amount"]))
            order.status = "paid"
            s.commit()
            return "charged"

    assert sorted(race(submit)) == ["already paid", "charged"]
    assert len(charges(db)) == 1


# ---------------------------------------------------------------- 4. version counter + retry


def test_version_counter_with_retry_absorbs_the_duplicate(pg: Callable[..., DB]) -> None:
    db = pg(versioned=True)
    attempts: list[str] = []
    inner = naive(db)

    def submit(payload: dict[str, Any]) -> str:
        for _ in range(3):
            try:
                return inner(payload)  # re-reads the order on every attempt
            except StaleDataError:
                attempts.append("stale")  # lost the race: the other one committed first
        raise AssertionError("still conflicting after 3 attempts")

    assert sorted(race(submit)) == ["already paid", "charged"]
    assert attempts == ["stale"]  # the race did happen, and was absorbed
    assert len(charges(db)) == 1


# ---------------------------------------------------------------- 5. Redis lock keyed by the digest, with expiry

_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def test_redis_lock_keyed_by_the_digest(pg: Callable[..., DB]) -> None:
    import redis

    client = redis.Redis.from_url(require_url("REDIS_URL"))
    db = pg(versioned=False)  # the lock alone protects the row here
    prefix = f"sa_explain:t4:lock:{uuid.uuid4().hex}:"
    inner = naive(db)
    ttls: list[int] = []

    def submit(payload: dict[str, Any]) -> str:
        lock = prefix + digest((), payload)
        token = uuid.uuid4().hex
        if not client.set(lock, token, nx=True, px=30_000):  # expiry: a crash cannot block forever
            return "duplicate in progress"
        try:
            ttls.append(int(client.pttl(lock)))
            return inner(payload)  # re-checks the order under the lock
        finally:
            client.eval(_RELEASE, 1, lock, token)  # only our own lock

    assert sorted(race(submit)) == ["charged", "duplicate in progress"]
    assert len(charges(db)) == 1
    assert ttls and 0 < ttls[0] <= 30_000
    assert list(client.scan_iter(match=prefix + "*")) == []  # released

    # A late duplicate (after the release) is stopped by the re-check under the lock.
    assert submit(dict(PAYLOAD)) == "already paid"
    assert len(charges(db)) == 1


def test_redis_lock_expires_when_its_holder_dies() -> None:
    import redis

    client = redis.Redis.from_url(require_url("REDIS_URL"))
    lock = f"sa_explain:t4:lock:{uuid.uuid4().hex}:" + digest((), PAYLOAD)
    assert client.set(lock, "crashed-holder", nx=True, px=200)
    assert not client.set(lock, "second", nx=True, px=200)  # held
    time.sleep(0.3)
    assert client.set(lock, "second", nx=True, px=200)  # expired: work can proceed
    client.delete(lock)
