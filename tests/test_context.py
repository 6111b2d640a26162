"""The operation context: binding, nesting, async propagation, surviving the exception."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import sa_explain.config as config
from sa_explain import context as c
from sa_explain.duplicates import Detector, MemoryStore


def test_outside_any_operation_there_is_no_context() -> None:
    assert c.current_context() is None
    assert c.context_of(None) is None


def test_operation_binds_schema_keys_and_unbinds() -> None:
    with c.operation("import-prices", key="k1", id="op-1") as live:
        ctx = c.current_context()
        assert ctx is not None
        assert ctx["kind"] == "operation"
        assert (ctx["name"], ctx["key"], ctx["id"]) == ("import-prices", "k1", "op-1")
        assert ctx["started_at"].endswith("Z")
        assert live["id"] == "op-1"
        public = c.public_context(ctx)
        assert public is not None
        assert list(public)[: len(c.PUBLIC_KEYS)] == list(c.PUBLIC_KEYS)
        assert not any(k.startswith("_") for k in public)
    assert c.current_context() is None


def test_operation_id_defaults_to_a_fresh_uuid() -> None:
    with c.operation("a") as one:
        pass
    with c.operation("a") as two:
        pass
    assert one["id"] and two["id"] and one["id"] != two["id"]


def test_nested_operations_restore_the_outer_one() -> None:
    with c.operation("outer", id="o"):
        with c.operation("inner", id="i", kind="request", values={"retries": 2}):
            ctx = c.current_context()
            assert ctx is not None and ctx["id"] == "i" and ctx["kind"] == "request"
            assert ctx["retries"] == 2
        ctx = c.current_context()
        assert ctx is not None and ctx["id"] == "o"


def test_current_context_is_a_copy() -> None:
    with c.operation("a", id="x"):
        ctx = c.current_context()
        assert ctx is not None
        ctx["id"] = "changed"
        again = c.current_context()
        assert again is not None and again["id"] == "x"


def test_bind_and_unbind_keep_their_signatures() -> None:
    token = c.bind_context({"name": "script", "id": "s1", "key": None})
    try:
        ctx = c.current_context()
        assert ctx is not None and ctx["name"] == "script" and ctx["kind"] == "operation"
    finally:
        c.unbind_context(token)
    assert c.current_context() is None


def test_unbinding_a_foreign_token_never_raises() -> None:
    tokens: list[object] = []
    t = threading.Thread(target=lambda: tokens.append(c.bind_context({"id": "t"})))
    t.start()
    t.join()
    c.bind_context({"id": "main"})
    c.unbind_context(tokens[0])  # created in another thread's context
    assert c.current_context() is None


def test_asyncio_tasks_inherit_the_context() -> None:
    async def child() -> Any:
        await asyncio.sleep(0)
        return c.current_context()

    async def main() -> Any:
        with c.operation("req", id="r1"):
            return await asyncio.gather(asyncio.create_task(child()), child())

    results = asyncio.run(main())
    assert [r["id"] for r in results] == ["r1", "r1"]


def test_exception_leaving_operation_carries_the_context() -> None:
    with pytest.raises(ValueError) as info, c.operation("pay", key="k", id="op-9"):
        raise ValueError("boom")
    assert c.current_context() is None
    found = c.context_of(info.value)
    assert found is not None and found["id"] == "op-9" and found["key"] == "k"
    assert isinstance(found["_started"], float)


def test_context_is_found_through_cause_and_context_chains() -> None:
    try:
        with c.operation("inner", id="in"):
            raise KeyError("x")
    except KeyError as inner:
        wrapped = RuntimeError("wrapped")
        wrapped.__cause__ = inner
    found = c.context_of(wrapped)
    assert found is not None and found["id"] == "in"


def test_innermost_operation_wins_on_the_exception() -> None:
    with (
        pytest.raises(ValueError) as info,
        c.operation("outer", id="o"),
        c.operation("inner", id="i"),
    ):
        raise ValueError
    found = c.context_of(info.value)
    assert found is not None and found["id"] == "i"


def test_running_context_wins_over_the_remembered_one() -> None:
    exc = ValueError()
    c.remember(exc, {"id": "old"})
    with c.operation("now", id="new"):
        found = c.context_of(exc)
    assert found is not None and found["id"] == "new"


def test_operation_records_start_and_end_in_the_detector() -> None:
    store = MemoryStore()
    config.update(duplicates=Detector(store))
    with c.operation("pay", key="k", id="A"):
        (rec,) = store.get("pay", "k", time.time())
        assert rec["outcome"] == "running" and rec["ended"] is None
    (rec,) = store.get("pay", "k", time.time())
    assert rec["outcome"] == "success" and rec["ended"] >= rec["started"]

    with pytest.raises(RuntimeError), c.operation("pay", key="k", id="B"):
        raise RuntimeError
    with c.operation("pay", key="k", id="C") as ctx:
        ctx["_outcome"] = "failure"  # e.g. a 500 response without an exception
    outcomes = {r["id"]: r["outcome"] for r in store.get("pay", "k", time.time())}
    assert outcomes == {"A": "success", "B": "failure", "C": "failure"}


def test_operation_without_key_records_nothing() -> None:
    store = MemoryStore()
    config.update(duplicates=Detector(store))
    with c.operation("pay", id="A"):
        pass
    assert len(store) == 0


def test_a_broken_detector_never_breaks_the_operation() -> None:
    class Broken:
        def record_start(self, context: Any) -> None:
            raise OSError("down")

        def record_end(self, context: Any, outcome: str) -> None:
            raise OSError("down")

        def find_twin(self, context: Any, at: float) -> None:
            raise OSError("down")

    config.update(duplicates=Broken())
    with c.operation("pay", key="k", id="A") as ctx:
        assert ctx["id"] == "A"
