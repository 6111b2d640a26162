"""Latency of ``sa_explain.explain()`` per raise site, with and without the primary-row probe.

Each raise site is provoked for real once (two sessions on a SQLite *file*, one deletes or
updates behind the other's back, exactly like ``tests/test_explain_sites.py``), the
exception is kept, and ``explain()`` is timed on it many times: without probes (the pure
in-process cost: frames → facts → evidence from tracking → diagnosis → to_dict()) and with
probes (plus one SELECT by primary key on a fresh connection of the primary, on the probe
pool). The probe rate limit is lifted for the measurement; the default limit (5/s) is what
protects production. ``to_dict()`` is included because every surface calls it.

Optionally the same on PostgreSQL (``--pg-url``): the probe then pays a real round trip
and the ``SET LOCAL statement_timeout/lock_timeout`` of the backend.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

import sa_explain
from sa_explain import probes as sa_probes
from sa_explain import tracking


class Base(DeclarativeBase):
    pass


post_tags = sa.Table(
    "sa_explain_bench_post_tags",
    Base.metadata,
    sa.Column("post_id", sa.ForeignKey("sa_explain_bench_post.id"), primary_key=True),
    sa.Column("tag_id", sa.ForeignKey("sa_explain_bench_tag.id"), primary_key=True),
)


class Device(Base):
    __tablename__ = "sa_explain_bench_device"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(sa.String(50))


class Doc(Base):
    __tablename__ = "sa_explain_bench_doc"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(sa.String(50))
    version_id: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    __mapper_args__ = {"version_id_col": version_id}  # noqa: RUF012


class Post(Base):
    __tablename__ = "sa_explain_bench_post"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    tags: Mapped[list[Tag]] = relationship(secondary=post_tags)


class Tag(Base):
    __tablename__ = "sa_explain_bench_tag"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(sa.String(20))


def _capture(fn: Callable[[], Any]) -> BaseException:
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


def _delete_elsewhere(engine: sa.engine.Engine, cls: Any, pk: Any) -> None:
    with Session(engine) as s2:
        s2.delete(s2.get(cls, pk))
        s2.commit()


def site_refresh(engine: sa.engine.Engine) -> tuple[Session, BaseException]:
    s1 = Session(engine)
    dev = Device(id=42, name="sensor")
    s1.add(dev)
    s1.commit()
    _delete_elsewhere(engine, Device, 42)
    return s1, _capture(lambda: dev.name)


def site_session_refresh(engine: sa.engine.Engine) -> tuple[Session, BaseException]:
    s1 = Session(engine)
    dev = Device(id=7, name="x")
    s1.add(dev)
    s1.commit()
    _delete_elsewhere(engine, Device, 7)
    return s1, _capture(lambda: s1.refresh(dev))


def site_update(engine: sa.engine.Engine) -> tuple[Session, BaseException]:
    s1 = Session(engine)
    s1.add(Device(id=5, name="a"))
    s1.commit()
    dev = s1.get(Device, 5)
    assert dev is not None and dev.name == "a"
    _delete_elsewhere(engine, Device, 5)
    dev.name = "b"
    return s1, _capture(s1.flush)


def site_versioned_update(engine: sa.engine.Engine) -> tuple[Session, BaseException]:
    s1 = Session(engine)
    s1.add(Doc(id=1, title="t1"))
    s1.commit()
    doc = s1.get(Doc, 1)
    assert doc is not None and doc.title == "t1"
    with Session(engine) as s2:
        other = s2.get(Doc, 1)
        assert other is not None
        other.title = "B wins"
        s2.commit()
    doc.title = "A loses"
    return s1, _capture(s1.commit)


def site_versioned_delete(engine: sa.engine.Engine) -> tuple[Session, BaseException]:
    s1 = Session(engine)
    s1.add(Doc(id=2, title="x"))
    s1.commit()
    doc = s1.get(Doc, 2)
    assert doc is not None and doc.title == "x"
    _delete_elsewhere(engine, Doc, 2)
    s1.delete(doc)
    return s1, _capture(s1.flush)


def site_bulk_update(engine: sa.engine.Engine) -> tuple[Session, BaseException]:
    with Session(engine) as s:
        s.add_all([Device(id=101, name="a"), Device(id=102, name="b")])
        s.commit()
    s1 = Session(engine)
    rows = [{"id": 101, "name": "x"}, {"id": 199, "name": "y"}]
    return s1, _capture(lambda: s1.execute(sa.update(Device), rows))


def site_m2m_delete(engine: sa.engine.Engine) -> tuple[Session, BaseException]:
    s1 = Session(engine)
    post = Post(id=1, tags=[Tag(id=1, name="a")])
    s1.add(post)
    s1.commit()
    tag = post.tags[0]
    with engine.begin() as conn:
        conn.execute(post_tags.delete())
    post.tags.remove(tag)
    return s1, _capture(s1.flush)


SITES: dict[str, Callable[[sa.engine.Engine], tuple[Session, BaseException]]] = {
    "refresh": site_refresh,
    "session_refresh": site_session_refresh,
    "update": site_update,
    "versioned_update": site_versioned_update,
    "versioned_delete": site_versioned_delete,
    "bulk_update_by_pk": site_bulk_update,
    "m2m_delete": site_m2m_delete,
}


def _percentile(sorted_values: list[float], q: float) -> float:
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


def _time(exc: BaseException, n: int, probes: bool) -> dict[str, Any]:
    samples = []
    result = None
    for _ in range(n):
        t0 = time.perf_counter()
        result = sa_explain.explain(exc, probes=probes)
        if result is not None:
            result.to_dict()
        samples.append(time.perf_counter() - t0)
    samples.sort()
    assert result is not None, "explain() returned None for a real raise site"
    return {
        "n": n,
        "median_ms": statistics.median(samples) * 1000.0,
        "p99_ms": _percentile(samples, 0.99) * 1000.0,
        "max_ms": samples[-1] * 1000.0,
        "cause": result.cause,
        "probe": result.probe,
    }


def bench_db(url: str, n: int, label: str) -> dict[str, Any]:
    engine = sa.create_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    tracking.clear_writes()
    tracking.clear_statements()
    # probe_rate: lifted so every timed call really probes (production default is 5/s).
    sa_explain.configure(primary=engine, probes=True, probe_rate=1e9, probe_timeout=1.0)
    out: dict[str, Any] = {}
    try:
        for name, make in SITES.items():
            with engine.begin() as conn:
                for table in reversed(Base.metadata.sorted_tables):
                    conn.execute(table.delete())
            session, exc = make(engine)
            session.rollback()
            sa_explain.explain(exc, probes=True)  # warm-up: imports, compiled SELECT caches
            started = dict(sa_probes.stats)
            without = _time(exc, n, probes=False)
            with_probe = _time(exc, max(10, n // 4), probes=True)
            probes_started = sa_probes.stats["started"] - started["started"]
            out[name] = {
                "without_probes": without,
                "with_probes": with_probe,
                "probe_cost_ms": with_probe["median_ms"] - without["median_ms"],
                "probes_started": probes_started,
            }
            session.close()
            del exc
        return {"db": label, "sites": out}
    finally:
        sa_explain.configure(probes=False)
        Base.metadata.drop_all(engine)
        engine.dispose()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description="explain() latency per raise site")
    p.add_argument("--n", type=int, default=2000, help="explain() calls per site without probes")
    p.add_argument("--pg-url", default=os.environ.get("PG_URL"))
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    args = p.parse_args(argv)
    results: dict[str, Any] = {"runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        results["runs"].append(bench_db(f"sqlite:///{Path(tmp) / 'bench.db'}", args.n, "sqlite-file"))
    if args.pg_url:
        results["runs"].append(bench_db(args.pg_url, max(10, args.n // 2), "postgresql"))
    if args.json:
        json.dump(results, sys.stdout)
        sys.stdout.write("\n")
    return results


if __name__ == "__main__":
    main()
