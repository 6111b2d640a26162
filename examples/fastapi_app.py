"""FastAPI + sa-explain: every request is an operation, and a duplicate submission is named.

    uvicorn examples.fastapi_app:app            # serve (needs uvicorn)
    python examples/fastapi_app.py demo         # POST the same payment twice at once, print the explanation

Clients may send an ``Idempotency-Key`` header; without one the key is a digest of the
method, path, Authorization header and body. Set ``REDIS_URL`` to share the detector
between server processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

import sa_explain
from sa_explain.duplicates import Detector, MemoryStore, RedisStore
from sa_explain.logging import ExplainFilter
from sa_explain.middleware import ASGIMiddleware

log = logging.getLogger("fastapi_example")


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(20))
    paid: Mapped[int] = mapped_column(default=0)
    version: Mapped[int] = mapped_column(nullable=False)
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Payment(BaseModel):
    amount: int


def create_app(db_url: str, *, redis_url: str | None = None, gap: float = 0.0) -> FastAPI:
    """The application; ``gap`` widens the read-then-write window (for the demo)."""
    engine = sa.create_engine(db_url)
    Base.metadata.create_all(engine)
    store = RedisStore(redis_url) if redis_url else MemoryStore()
    sa_explain.configure(duplicates=Detector(store))

    app = FastAPI()
    app.add_middleware(ASGIMiddleware)
    app.state.engine = engine

    @app.exception_handler(StaleDataError)
    @app.exception_handler(ObjectDeletedError)
    async def conflict(request: Request, exc: Exception) -> JSONResponse:
        # Runs inside the middleware: the request context is still bound here.
        log.error("conflict on %s", request.url.path, exc_info=exc)
        return JSONResponse({"error": "conflict, please reload"}, status_code=409)

    @app.post("/orders/{order_id}/pay")
    def pay(order_id: int, payment: Payment) -> dict[str, str]:
        # A sync endpoint runs in Starlette's thread pool with a copy of the context.
        with Session(engine) as s:
            order = s.get(Order, order_id)
            if order is None:
                return {"error": "no such order"}
            if order.status == "paid":
                return {"status": "already paid"}
            time.sleep(gap)
            order.status = "paid"
            order.paid += payment.amount
            s.commit()
        return {"status": "paid"}

    return app


def demo() -> dict[str, Any] | None:
    """Two identical POSTs at the same time; returns the explanation of the loser."""
    import httpx

    path = os.path.join(tempfile.mkdtemp(), "fastapi_example.db")
    app = create_app(f"sqlite:///{path}", redis_url=os.environ.get("REDIS_URL"), gap=0.2)
    with Session(app.state.engine) as s:
        s.add(Order(id=1, status="pending", paid=0, version=1))
        s.commit()

    explained: list[dict[str, Any]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            data = getattr(record, "sa_explain", None)
            if data:
                explained.append(data)

    keep = Keep()
    keep.addFilter(ExplainFilter())
    log.addHandler(keep)

    async def both() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://example") as client:
            responses = await asyncio.gather(
                *(client.post("/orders/1/pay", json={"amount": 10}) for _ in range(2))
            )
        return sorted(r.status_code for r in responses)

    print("statuses:", asyncio.run(both()))
    log.removeHandler(keep)
    if explained:
        print(
            json.dumps(
                {k: explained[0][k] for k in ("cause", "evidence", "context", "twin")}, indent=2
            )
        )
        return explained[0]
    return None


if __name__ == "__main__" and sys.argv[1:] == ["demo"]:
    demo()
elif __name__ != "__main__":
    app = create_app(
        # a temp file by default: importing the module (uvicorn, tests) must not litter the cwd
        os.environ.get(
            "DATABASE_URL", "sqlite:///" + os.path.join(tempfile.gettempdir(), "sa_explain_fastapi_example.db")
        ),
        redis_url=os.environ.get("REDIS_URL"),
    )
