"""AsyncSession: the sync-side frames survive the greenlet boundary, so explain() works the same."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

pytest.importorskip("aiosqlite")
pytest.importorskip("greenlet")

from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import sa_explain
from tests.models import Base, Device


def test_async_stale_data_and_refresh(tmp_path: Path) -> None:
    async def scenario() -> tuple[BaseException, BaseException]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        sa_explain.configure(primary=engine, probe_rate=10_000)
        s1 = AsyncSession(engine)
        s1.add(Device(id=1, name="a"))
        await s1.commit()
        dev = await s1.get(Device, 1)
        assert dev is not None and dev.name == "a"
        async with AsyncSession(engine) as s2:
            await s2.delete(await s2.get(Device, 1))
            await s2.commit()
        dev.name = "b"
        try:
            await s1.commit()
        except Exception as e:
            stale = e
        await s1.rollback()
        s1.add(Device(id=2, name="x"))
        await s1.commit()
        dev2 = await s1.get(Device, 2)
        async with engine.begin() as conn:
            await conn.execute(sa.text("DELETE FROM device WHERE id = 2"))
        try:
            await s1.refresh(dev2)
        except Exception as e:
            deleted = e
        await s1.close()
        await engine.dispose()
        return stale, deleted

    stale, deleted = asyncio.run(scenario())
    ex = sa_explain.explain(stale)
    assert ex is not None
    d = ex.to_dict()
    assert d["error"] == "stale_data" and d["identity"] == [1] and d["table"] == "device"
    assert d["bind"]["driver"] == "aiosqlite"
    assert d["probe"]["ran"] is False and "async" in d["probe"]["skipped"]
    assert any("async" in e for e in d["evidence"])
    ex2 = sa_explain.explain(deleted)
    assert ex2 is not None and ex2.identity == [2] and ex2.error == "object_deleted"
