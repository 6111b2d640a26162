"""``sa-explain demo``: the post-mortem's two incidents, reproduced on embedded SQLite and explained.

1. Read/write splitting with a lagging replica: a routing Session writes to the primary,
   commits (``expire_on_commit``), then the attribute refresh SELECT goes to a replica
   that applies writes one second late → ``ObjectDeletedError``.
2. The duplicate task: two workers run the same payload under different task ids; both
   update the same versioned row → ``StaleDataError`` for the slower one.

For each, the demo prints what teams see today (the bare exception), the explanation,
and the Sentry event sa-explain would send — captured in-process by a transport that
never touches the network.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, declarative_base
from sqlalchemy.sql import dml

import sa_explain
from sa_explain.render import render

Base: Any = declarative_base()


class Device(Base):  # type: ignore[misc]  # declarative_base() is untyped on 1.4
    __tablename__ = "device"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(50))
    firmware = sa.Column(sa.String(20))
    version_id = sa.Column(sa.Integer, nullable=False)
    __mapper_args__ = {"version_id_col": version_id}  # noqa: RUF012


class _Printer:
    def __init__(self, color: bool, json_output: bool) -> None:
        self.color, self.json = color, json_output

    def title(self, text: str) -> None:
        if not self.json:
            bar = "═" * min(100, len(text) + 4)
            print(f"\n{bar}\n  {text}\n{bar}")

    def section(self, text: str) -> None:
        if not self.json:
            print(f"\n── {text}")

    def line(self, text: str = "") -> None:
        if not self.json:
            print(text)


class _CapturedEvents:
    """A sentry-sdk transport that keeps events in memory: the demo sends nothing."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def install(self) -> bool:
        try:
            import sentry_sdk
            from sentry_sdk.transport import Transport
        except ImportError:
            return False
        outer = self

        class _Keep(Transport):
            def capture_envelope(self, envelope: Any) -> None:
                for item in envelope.items:
                    if item.type == "event":
                        outer.events.append(item.payload.json)

        sentry_sdk.init(
            dsn="http://public@127.0.0.1:9/1",
            transport=_Keep,
            integrations=[sa_explain.SAExplain()],
            default_integrations=False,
        )
        return True

    def capture(self, exc: BaseException) -> dict[str, Any] | None:
        import sentry_sdk

        before = len(self.events)
        sentry_sdk.capture_exception(exc)
        sentry_sdk.flush(timeout=2)
        return self.events[-1] if len(self.events) > before else None


def _event_summary(event: dict[str, Any]) -> dict[str, Any]:
    ctx = event.get("contexts", {}).get("sa_explain", {})
    values = event.get("exception", {}).get("values", [])
    return {
        "exception.value": values[-1].get("value") if values else None,
        "fingerprint": event.get("fingerprint"),
        "tags": event.get("tags"),
        "contexts.sa_explain": {k: ctx.get(k) for k in ("cause", "confidence", "table", "identity", "bind", "primary_row")},
        "breadcrumbs": [
            f"{b.get('category')}: {b.get('message')}" for b in (event.get("breadcrumbs", {}) or {}).get("values", [])
        ][-4:],
    }


def _replica_lag_incident(tmp: Path, out: _Printer, sentry: _CapturedEvents | None) -> dict[str, Any]:
    primary = sa.create_engine(f"sqlite:///{tmp / 'primary.db'}", logging_name="primary")
    Base.metadata.create_all(primary)
    primary.dispose()
    shutil.copy(tmp / "primary.db", tmp / "replica.db")
    replica = sa.create_engine(f"sqlite:///{tmp / 'replica.db'}", logging_name="replica")
    sa_explain.configure(primary=primary, replicas=[replica])

    def replicate_later() -> None:
        # The "replica" applies each commit one second after the primary did.
        def apply() -> None:
            with primary.connect() as src, replica.begin() as dst:
                rows = src.execute(sa.select(Device.__table__)).mappings().all()
                dst.execute(sa.delete(Device.__table__))
                if rows:
                    dst.execute(sa.insert(Device.__table__), [dict(r) for r in rows])

        timer = threading.Timer(1.0, apply)
        timer.daemon = True
        timer.start()

    class RoutingSession(Session):
        """The SQLAlchemy docs' read/write split: writes to the primary, reads to the replica."""

        def get_bind(self, mapper: Any = None, clause: Any = None, **kw: Any) -> Any:
            if self._flushing or isinstance(clause, dml.UpdateBase):
                return primary
            return replica

    out.title("Incident 1 — read/write split: the refresh after commit reads a lagging replica")
    out.line("session.add(Device(id=42, ...)); session.commit()   # INSERT on the primary")
    out.line("print(device.name)                                  # expired by the commit → SELECT on the replica")
    session = RoutingSession()
    device = Device(id=42, name="thermostat", firmware="1.0")
    session.add(device)
    session.commit()
    replicate_later()
    error: BaseException | None = None
    try:
        _ = device.name
    except Exception as exc:
        error = exc
    assert error is not None, "the demo expected an ObjectDeletedError"
    out.section("What you see today")
    out.line(f"{type(error).__module__}.{type(error).__name__}: {error}")
    explanation = sa_explain.explain(error)
    assert explanation is not None
    out.section("What sa-explain says")
    out.line(render(explanation, color=out.color))
    result = {"incident": "replica_lag", "explanation": explanation.to_dict()}
    if sentry is not None:
        event = sentry.capture(error)
        if event is not None:
            out.section("The Sentry event that would be sent (captured locally, no network)")
            out.line(json.dumps(_event_summary(event), indent=2, default=str))
            result["sentry_event"] = _event_summary(event)
    session.close()
    time.sleep(1.1)
    with Session(replica) as check:
        out.line(f"\n(one second later the replica has the row: {check.get(Device, 42) is not None})")
    primary.dispose()
    replica.dispose()
    return result


def _duplicate_task_incident(tmp: Path, out: _Printer, sentry: _CapturedEvents | None) -> dict[str, Any]:
    from sa_explain.duplicates import Detector, MemoryStore, digest

    engine = sa.create_engine(f"sqlite:///{tmp / 'tasks.db'}", logging_name="primary")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(Device(id=7, name="gateway", firmware="1.0"))
        s.commit()
    sa_explain.configure(primary=engine, duplicates=Detector(MemoryStore()))

    out.title("Incident 2 — the same task submitted twice races on one row")
    payload: dict[str, Any] = {"device_id": 7, "firmware": "2.1"}
    key = digest((), payload)
    out.line(f"update_firmware({payload})  sent twice by the client → task ids A and B, payload digest {key[:12]}…")
    loaded = threading.Event()
    b_done = threading.Event()
    errors: dict[str, BaseException] = {}
    explanations: dict[str, Any] = {}
    events: dict[str, dict[str, Any] | None] = {}
    ids = {"A": f"task-{uuid.UUID(int=0xA).hex[-6:]}", "B": f"task-{uuid.UUID(int=0xB).hex[-6:]}"}

    def worker(label: str) -> None:
        with sa_explain.operation("update_firmware", key=key, id=ids[label]):
            with Session(engine) as s:
                device = s.get(Device, payload["device_id"])
                assert device is not None and device.firmware  # loaded: version 1 in memory
                if label == "A":
                    loaded.set()
                    b_done.wait(5)  # B overtakes A here
                device.firmware = payload["firmware"]
                try:
                    s.commit()
                except Exception as exc:
                    errors[label] = exc
                    # what a Celery task_failure hook, a logging filter or Sentry's capture in
                    # the task does: explain while the frames and the task context are alive
                    explanations[label] = sa_explain.explain(exc)
                    if sentry is not None:
                        events[label] = sentry.capture(exc)
            if label == "B":
                b_done.set()

    a = threading.Thread(target=worker, args=("A",))
    a.start()
    loaded.wait(5)
    b = threading.Thread(target=worker, args=("B",))
    b.start()
    b.join()
    a.join()
    error = errors.get("A")
    explanation = explanations.get("A")
    assert error is not None and explanation is not None, "the demo expected a StaleDataError in task A"
    out.section("What you see today")
    out.line(f"{type(error).__module__}.{type(error).__name__}: {error}")
    out.section("What sa-explain says")
    out.line(render(explanation, color=out.color))
    result = {"incident": "duplicate_task", "explanation": explanation.to_dict()}
    if sentry is not None:
        event = events.get("A")
        if event is not None:
            out.section("The Sentry event that would be sent (captured locally, no network)")
            out.line(json.dumps(_event_summary(event), indent=2, default=str))
            result["sentry_event"] = _event_summary(event)
    engine.dispose()
    return result


def run(*, json_output: bool = False, color: bool = False) -> int:
    """Run both incidents; print them (or JSON lines with ``json_output``). Returns 0."""
    out = _Printer(color, json_output)
    sentry: _CapturedEvents | None = _CapturedEvents()
    assert sentry is not None
    if not sentry.install():
        out.line("(sentry-sdk is not installed: the Sentry part of the demo is skipped; pip install 'sa-explain[sentry]')")
        sentry = None
    tmp = Path(tempfile.mkdtemp(prefix="sa-explain-demo-"))
    try:
        results = [_replica_lag_incident(tmp, out, sentry), _duplicate_task_incident(tmp, out, sentry)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if sentry is not None:
            import sentry_sdk

            sentry_sdk.get_client().close(timeout=1)
    if json_output:
        for r in results:
            print(json.dumps(r, default=str))
    else:
        out.line("\nBoth explanations use one schema (docs/schema.md) for Sentry, logging, structlog and `sa-explain analyze`.")
    return 0
