"""Real ObjectDeletedError / StaleDataError situations on a SQLite file database.

Shared by the surface tests (Sentry, logging, structlog). Each helper sets the stage and
leaves the failing statement to the test, so the test catches the error in its own
``except`` block — where loggers, structlog and ``capture_exception`` really run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Integer, String, create_engine, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, declarative_base

Base = declarative_base()


class Device(Base):  # type: ignore[valid-type,misc]
    __tablename__ = "device"
    id = Column(Integer, primary_key=True)
    name = Column(String(200))


def make_engine(directory: Path) -> Engine:
    """A file database (separate connections, like two processes would have) with device 42."""
    engine = create_engine(f"sqlite:///{directory / 'app.db'}")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(Device(id=42, name="router"))
        s.commit()
    return engine


def delete_elsewhere(engine: Engine) -> None:
    """Another session deletes device 42 and commits."""
    with Session(engine) as other:
        other.delete(other.get(Device, 42))
        other.commit()


@contextmanager
def deleted_after_commit(engine: Engine) -> Iterator[Device]:
    """A Device expired by commit whose row another session deleted since.

    Touching any attribute of it raises ObjectDeletedError (the attribute refresh).
    """
    session = Session(engine)
    try:
        device = session.get(Device, 42)
        assert device is not None
        session.commit()  # expire_on_commit: the next attribute access refreshes
        delete_elsewhere(engine)
        yield device
    finally:
        session.close()


@contextmanager
def stale_update(engine: Engine, new_name: str = "renamed") -> Iterator[Session]:
    """A session holding a modified Device whose row is gone: ``flush()`` raises StaleDataError."""
    session = Session(engine)
    try:
        device = session.get(Device, 42)
        assert device is not None
        delete_elsewhere(engine)
        device.name = new_name
        yield session
    finally:
        session.close()


def detached_state(engine: Engine) -> Any:
    """The InstanceState of a detached Device 42, to build an ObjectDeletedError by hand."""
    with Session(engine) as s:
        device = s.get(Device, 42)
        assert device is not None
        s.expunge(device)
    return inspect(device)
