"""Flask + sa-explain: every request is an operation, and a duplicate submission is named.

    python examples/flask_app.py           # serve on http://127.0.0.1:5000
    python examples/flask_app.py demo      # POST the same payment twice at once, print the explanation

Set ``REDIS_URL`` to share the duplicate detector between several server processes
(gunicorn workers); without it an in-process store is used.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
import time
from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, request
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import sa_explain
from sa_explain.duplicates import Detector, MemoryStore, RedisStore
from sa_explain.logging import ExplainFilter
from sa_explain.middleware import WSGIMiddleware


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(20))
    paid: Mapped[int] = mapped_column(default=0)
    version: Mapped[int] = mapped_column(nullable=False)
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


def create_app(db_url: str, *, redis_url: str | None = None, gap: float = 0.0) -> Flask:
    """The application; ``gap`` widens the read-then-write window (for the demo)."""
    engine = sa.create_engine(db_url)
    Base.metadata.create_all(engine)
    store = RedisStore(redis_url) if redis_url else MemoryStore()
    sa_explain.configure(duplicates=Detector(store))

    app = Flask(__name__)
    app.wsgi_app = WSGIMiddleware(app.wsgi_app)  # type: ignore[method-assign]

    # Flask logs an unhandled exception inside the request, so the operation context is
    # still bound when the filter explains it.
    handler = logging.StreamHandler()
    handler.addFilter(ExplainFilter())
    app.logger.addHandler(handler)

    @app.post("/orders/<int:order_id>/pay")
    def pay(order_id: int) -> Any:
        amount = int((request.get_json(silent=True) or {}).get("amount", 0))
        with Session(engine) as s:
            order = s.get(Order, order_id)
            if order is None:
                return jsonify(error="no such order"), 404
            if order.status == "paid":
                return jsonify(status="already paid")
            time.sleep(gap)
            order.status = "paid"
            order.paid += amount
            s.commit()
        return jsonify(status="paid")

    app.extensions["engine"] = engine
    return app


def demo() -> dict[str, Any] | None:
    """Two identical POSTs at the same time; returns the explanation of the loser."""
    path = os.path.join(tempfile.mkdtemp(), "flask_example.db")
    app = create_app(f"sqlite:///{path}", redis_url=os.environ.get("REDIS_URL"), gap=0.2)
    with Session(app.extensions["engine"]) as s:
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
    app.logger.addHandler(keep)
    statuses: list[int] = []

    def post() -> None:
        with app.test_client() as client:
            statuses.append(client.post("/orders/1/pay", json={"amount": 10}).status_code)

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("statuses:", sorted(statuses))
    if explained:
        print(
            json.dumps(
                {k: explained[0][k] for k in ("cause", "evidence", "context", "twin")}, indent=2
            )
        )
        return explained[0]
    return None


if __name__ == "__main__":
    if sys.argv[1:] == ["demo"]:
        demo()
    else:
        create_app("sqlite:///flask_example.db", redis_url=os.environ.get("REDIS_URL")).run()
