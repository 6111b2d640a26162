"""Shared pieces of the real-replica tests: models, the routing Session, waits, URL helpers.

The routing Session is the pattern from SQLAlchemy's documentation ("Custom Vertical
Partitioning" / read-write split) that the post-mortem's application used: flushes and
DML go to the primary, everything else — including the refresh SELECT after a commit —
to the replica.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, declarative_base

Base: Any = declarative_base()


class Widget(Base):
    __tablename__ = "sae_widget"
    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    name = sa.Column(sa.String(50), nullable=False)


class VersionedDoc(Base):
    __tablename__ = "sae_vdoc"
    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    title = sa.Column(sa.String(50), nullable=False)
    version_id = sa.Column(sa.Integer, nullable=False)
    __mapper_args__ = {"version_id_col": version_id}  # noqa: RUF012


def routing_session(primary: Engine, replica: Engine, **kw: Any) -> Session:
    """A Session that sends flushes/DML to ``primary`` and reads to ``replica``."""

    class RoutingSession(Session):
        def get_bind(self, mapper: Any = None, clause: Any = None, **kwargs: Any) -> Any:
            if self._flushing or isinstance(clause, sa.Insert | sa.Update | sa.Delete):
                return primary
            return replica

    return RoutingSession(**kw)


def with_driver(url: str, driver: str, **changes: Any) -> str:
    """``url`` with another DBAPI driver (``postgresql+psycopg2``, ``mysql+mysqldb``…)."""
    u = make_url(url)
    u = u.set(drivername=f"{u.get_backend_name()}+{driver}", **changes)
    return u.render_as_string(hide_password=False)


def reset_tables(primary: Engine) -> None:
    Base.metadata.drop_all(primary)
    Base.metadata.create_all(primary)


def wait_pg_replayed(primary: Engine, standby: Engine, timeout: float = 15.0) -> float:
    """Wait until the standby replayed the primary's current WAL position; seconds waited."""
    with primary.connect() as c:
        lsn = c.execute(sa.text("SELECT pg_current_wal_lsn()::text")).scalar_one()
    started = time.monotonic()
    with standby.connect() as c:
        while time.monotonic() - started < timeout:
            done = c.execute(
                sa.text("SELECT pg_last_wal_replay_lsn() >= CAST(:l AS pg_lsn)"), {"l": lsn}
            ).scalar()
            c.rollback()
            if done:
                return time.monotonic() - started
            time.sleep(0.02)
    raise TimeoutError(f"standby did not replay {lsn} in {timeout}s")


def wait_mariadb_applied(primary: Engine, replica: Engine, timeout: float = 15.0) -> float:
    with primary.connect() as c:
        pos = c.execute(sa.text("SELECT @@gtid_binlog_pos")).scalar_one()
    started = time.monotonic()
    with replica.connect() as c:
        r = c.execute(sa.text("SELECT MASTER_GTID_WAIT(:p, :t)"), {"p": pos, "t": timeout}).scalar()
    if r != 0:
        raise TimeoutError(f"replica did not apply {pos} in {timeout}s")
    return time.monotonic() - started


def no_password(record: dict[str, Any], *passwords: str) -> None:
    """Assert that no password appears anywhere in the explanation record."""
    text = json.dumps(record, default=str)
    for pw in passwords:
        assert f":{pw}@" not in text, f"password leaked: {text[:500]}"


@contextmanager
def silent_server() -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that accepts connections and never says a word.

    A real socket, not a mock: a database that hangs after accept is what the deadline
    tests need, and neither PostgreSQL nor MariaDB can be told to behave that way.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        t.join(1)
        for c in held:
            c.close()
        sock.close()
