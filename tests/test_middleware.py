"""The WSGI/ASGI middleware with real Flask and FastAPI apps, and the two examples."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from flask import Flask, request

import sa_explain.config as config
from sa_explain.context import context_of, current_context
from sa_explain.duplicates import Detector, MemoryStore
from sa_explain.middleware import ASGIMiddleware, WSGIMiddleware, request_key

ROOT = Path(__file__).resolve().parent.parent


def flask_app(store: MemoryStore) -> Flask:
    config.update(duplicates=Detector(store))
    app = Flask("t")
    app.wsgi_app = WSGIMiddleware(app.wsgi_app)  # type: ignore[method-assign]

    @app.post("/echo")
    def echo() -> Any:
        return {"ctx": current_context(), "body": request.get_data(as_text=True)}

    @app.post("/boom")
    def boom() -> Any:
        return "no", 503

    @app.get("/read")
    def read() -> Any:
        return {"ctx": current_context()}

    return app


def test_wsgi_binds_a_request_context_with_a_body_digest() -> None:
    store = MemoryStore()
    client = flask_app(store).test_client()
    a = client.post("/echo", data=b'{"x": 1}').get_json()
    b = client.post("/echo", data=b'{"x": 1}').get_json()
    c = client.post("/echo", data=b'{"x": 2}').get_json()
    d = client.post("/echo", data=b'{"x": 1}', headers={"Authorization": "Bearer other"}).get_json()
    assert a["body"] == '{"x": 1}'  # the application still reads the whole body
    assert a["ctx"]["kind"] == "request" and a["ctx"]["name"] == "POST /echo"
    assert a["ctx"]["key"] == b["ctx"]["key"]
    assert a["ctx"]["id"] != b["ctx"]["id"]
    assert c["ctx"]["key"] != a["ctx"]["key"]  # another body
    assert d["ctx"]["key"] != a["ctx"]["key"]  # another user
    assert len(store.get("POST /echo", a["ctx"]["key"], time.time())) == 2


def test_wsgi_uses_the_idempotency_key_and_request_id() -> None:
    client = flask_app(MemoryStore()).test_client()
    h = {"Idempotency-Key": "client-key-1", "X-Request-Id": "req-7"}
    a = client.post("/echo", data=b"one", headers=h).get_json()
    b = client.post("/echo", data=b"two", headers={"Idempotency-Key": "client-key-1"}).get_json()
    assert a["ctx"]["key"] == b["ctx"]["key"]
    assert "client-key-1" not in a["ctx"]["key"]  # digested, never the raw header
    assert a["ctx"]["id"] == "req-7"


def test_wsgi_records_5xx_as_failure() -> None:
    store = MemoryStore()
    client = flask_app(store).test_client()
    assert client.post("/boom", data=b"p").status_code == 503
    (rec,) = [r for g in store._data.values() for r in g.values()]
    assert rec["outcome"] == "failure"
    # a GET has a context but no key: nothing recorded
    got = client.get("/read").get_json()
    assert got["ctx"]["kind"] == "request" and got["ctx"]["key"] is None
    assert len(store) == 1
    assert request_key("GET", "/read", "", {}, None) is None


def test_wsgi_large_body_gets_no_key_and_is_untouched() -> None:
    store = MemoryStore()
    config.update(duplicates=Detector(store))
    app = Flask("t")
    app.wsgi_app = WSGIMiddleware(app.wsgi_app, max_body=10)  # type: ignore[method-assign]

    @app.post("/big")
    def big() -> Any:
        return {"ctx": current_context(), "n": len(request.get_data())}

    out = app.test_client().post("/big", data=b"x" * 100).get_json()
    assert out["n"] == 100 and out["ctx"]["key"] is None


def asgi_app(store: MemoryStore) -> FastAPI:
    config.update(duplicates=Detector(store))
    app = FastAPI()
    app.add_middleware(ASGIMiddleware)

    @app.post("/echo")
    async def echo(req: Request) -> dict[str, Any]:
        return {"ctx": current_context(), "body": (await req.body()).decode()}

    @app.post("/sync")
    def sync() -> dict[str, Any]:  # runs in the thread pool
        return {"ctx": current_context()}

    @app.post("/fail")
    def fail() -> None:
        raise RuntimeError("boom")

    return app


def call(app: FastAPI, method: str, path: str, **kw: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path, **kw)

    return asyncio.run(go())


def test_asgi_binds_a_request_context_with_a_body_digest() -> None:
    store = MemoryStore()
    app = asgi_app(store)
    a = call(app, "POST", "/echo", content=b'{"x": 1}').json()
    b = call(app, "POST", "/echo", content=b'{"x": 1}').json()
    c = call(app, "POST", "/echo", content=b'{"x": 2}').json()
    s = call(app, "POST", "/sync", content=b'{"x": 1}').json()
    assert a["body"] == '{"x": 1}'
    assert a["ctx"]["kind"] == "request" and a["ctx"]["key"] == b["ctx"]["key"] != c["ctx"]["key"]
    assert s["ctx"]["name"] == "POST /sync"  # the thread pool inherits the context
    k = call(app, "POST", "/echo", content=b"z", headers={"Idempotency-Key": "k1"}).json()
    assert k["body"] == "z" and k["ctx"]["key"] and "k1" not in k["ctx"]["key"]


def test_asgi_failure_is_recorded_and_the_context_rides_on_the_exception() -> None:
    store = MemoryStore()
    app = asgi_app(store)
    caught: list[BaseException] = []
    inner = app.build_middleware_stack

    async def run() -> None:
        stack = inner()

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"p", "more_body": False}

        async def send(message: Any) -> None:
            pass

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/fail",
            "headers": [],
            "query_string": b"",
            "app": app,
        }
        try:
            await stack(scope, receive, send)
        except RuntimeError as exc:
            caught.append(exc)

    asyncio.run(run())
    (exc,) = caught
    ctx = context_of(exc)
    assert ctx is not None and ctx["name"] == "POST /fail"
    (rec,) = store.get("POST /fail", ctx["key"], time.time())
    assert rec["outcome"] == "failure"


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", ROOT / "examples" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["flask_app", "fastapi_app"])
def test_examples_name_the_twin(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)  # in-process store
    data = _load(name).demo()
    assert data is not None
    assert data["cause"] == "duplicate_submission"
    assert data["context"]["kind"] == "request"
    assert data["twin"]["key"] == data["context"]["key"]
    assert data["twin"]["id"] != data["context"]["id"]
