"""The payload digest, the detector's twin rules, and both stores (Redis for real)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sa_explain.duplicates import Detector, MemoryStore, RedisStore, Store, digest
from tests._servers import require_url

# ---------------------------------------------------------------- digest


def test_digest_ignores_kwargs_order_and_tuple_vs_list() -> None:
    a = digest((1, "x", (2, 3)), {"b": {"y": 1, "x": 2}, "a": [1, 2]})
    b = digest([1, "x", [2, 3]], {"a": (1, 2), "b": {"x": 2, "y": 1}})
    assert a == b
    assert len(a) == 32 and int(a, 16) >= 0


def test_digest_separates_different_payloads() -> None:
    assert digest((1,)) != digest((2,))
    assert digest((), {"a": 1}) != digest((), {"a": "1"})
    assert digest((1,), {}) != digest((), {"0": 1})
    assert digest((True,)) != digest((1.5,))


def test_digest_is_stable_for_common_python_types() -> None:
    @dataclasses.dataclass
    class Order:
        id: int
        tags: frozenset[str]

    class Opaque:
        pass

    payload = (
        decimal.Decimal("10.50"),
        dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        uuid.UUID(int=7),
        b"\x00\xff",
        {3, 1, 2},
        Order(1, frozenset({"b", "a"})),
        {1: "int key", "1": "str key"},
        Opaque(),  # repr has a memory address: stripped
        float("nan"),
    )
    first = digest(payload)
    again = digest(
        (
            decimal.Decimal("10.50"),
            dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            uuid.UUID(int=7),
            bytearray(b"\x00\xff"),
            {2, 3, 1},
            Order(1, frozenset({"a", "b"})),
            {"1": "str key", 1: "int key"},
            Opaque(),
            float("nan"),
        )
    )
    assert first == again


def test_digest_is_the_same_in_another_process() -> None:
    import subprocess
    import sys

    code = "from sa_explain.duplicates import digest; print(digest((1, 'é'), {'z': {1, 2}, 'a': None}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == digest((1, "é"), {"a": None, "z": {2, 1}})


def test_digest_key_function_chooses_what_identifies_the_payload() -> None:
    def by_order(args: Any, kwargs: Any) -> Any:
        return kwargs["order_id"]

    a = digest((), {"order_id": 42, "requested_at": "12:00:00.1"}, key=by_order)
    b = digest((), {"order_id": 42, "requested_at": "12:00:00.9"}, key=by_order)
    assert a == b
    assert a != digest((), {"order_id": 43}, key=by_order)
    # None from the key function means "use everything"
    assert digest((1,), key=lambda a, kw: None) == digest((1,))


def test_digest_never_contains_the_raw_value() -> None:
    secret = "4111111111111111"
    assert secret not in digest((secret,))
    assert secret not in digest((), {"card": secret}, key=lambda a, kw: kw["card"])


# ---------------------------------------------------------------- detector rules (memory store)


def ctx(id: str, started: float, key: str = "k", name: str = "pay", **extra: Any) -> dict[str, Any]:
    return {"kind": "celery", "name": name, "key": key, "id": id, "_started": started, **extra}


def run(det: Detector, c: dict[str, Any], outcome: str = "success") -> None:
    det.record_start(c)
    det.record_end(c, outcome)


def test_twin_that_just_finished_is_named_with_timing_and_outcome() -> None:
    det = Detector(MemoryStore())
    now = time.time()
    a = ctx("A", now - 0.05)
    run(det, a)
    b = ctx("B", now - 0.04)
    det.record_start(b)
    twin = det.find_twin(b, time.time())
    assert twin is not None
    assert twin["id"] == "A" and twin["name"] == "pay" and twin["key"] == "k"
    assert twin["outcome"] == "success" and twin["ended_at"] is not None
    assert twin["overlapped"] is True  # A ended after B started
    assert 0 <= twin["delta_ms"] < 1000
    assert set(twin) >= {"id", "name", "key", "started_at", "ended_at", "outcome", "delta_ms"}


def test_running_twin_is_named_with_its_start() -> None:
    det = Detector(MemoryStore())
    now = time.time()
    det.record_start(ctx("A", now - 0.2))
    b = ctx("B", now - 0.1)
    det.record_start(b)
    twin = det.find_twin(b, now)
    assert twin is not None and twin["id"] == "A" and twin["outcome"] == "running"
    assert twin["ended_at"] is None
    assert twin["delta_ms"] == pytest.approx(200, abs=1)


def test_a_retry_of_the_same_task_id_is_never_its_own_twin() -> None:
    det = Detector(MemoryStore())
    now = time.time()
    first = ctx("A", now - 1, retries=0)
    run(det, first, "retry")
    second = ctx("A", now - 0.5, retries=1)
    det.record_start(second)
    assert det.find_twin(second, now) is None
    (rec,) = det.store.get("pay", "k", now)
    assert rec["retries"] == 1 and rec["outcome"] == "running"  # replaced, not added


def test_different_payload_or_name_is_not_a_twin() -> None:
    det = Detector(MemoryStore())
    now = time.time()
    det.record_start(ctx("A", now - 0.1, key="other"))
    det.record_start(ctx("C", now - 0.1, name="refund"))
    b = ctx("B", now - 0.05)
    det.record_start(b)
    assert det.find_twin(b, now) is None


def test_operations_that_started_after_the_error_are_not_twins() -> None:
    det = Detector(MemoryStore())
    now = time.time()
    b = ctx("B", now - 1)
    det.record_start(b)
    det.record_start(ctx("A", now + 0.5))
    assert det.find_twin(b, now) is None


def test_twin_ended_longer_than_the_window_ago_is_ignored() -> None:
    det = Detector(MemoryStore(), window=0.05)
    a = ctx("A", time.time())
    run(det, a)
    time.sleep(0.1)
    b = ctx("B", time.time())
    det.record_start(b)
    assert det.find_twin(b, time.time()) is None


def test_overlapping_twin_is_preferred_to_an_earlier_one() -> None:
    det = Detector(MemoryStore())
    now = time.time()
    det.store.put(
        "pay",
        "k",
        {"id": "OLD", "started": now - 5, "ended": now - 2, "outcome": "success"},
        now + 60,
    )
    det.record_start(ctx("RUNNING", now - 3))
    b = ctx("B", now - 1)
    det.record_start(b)
    twin = det.find_twin(b, now)
    assert twin is not None and twin["id"] == "RUNNING" and twin["overlapped"] is True


def test_find_twin_without_key_or_id_is_none() -> None:
    det = Detector(MemoryStore())
    assert det.find_twin({"name": "pay", "id": "A"}, time.time()) is None
    assert det.find_twin({}, time.time()) is None


def test_detector_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        Detector(MemoryStore(), window=0)
    with pytest.raises(ValueError):
        MemoryStore(max_keys=0)


def test_memory_store_is_bounded() -> None:
    store = MemoryStore(max_keys=3, max_per_key=2)
    far = time.time() + 60
    for k in range(5):
        for i in range(4):
            store.put("pay", f"k{k}", {"id": f"{k}-{i}", "started": 0.0}, far + i)
    assert len(store) == 3 * 2
    assert store.get("pay", "k0", 0) == []  # least recently written payload dropped
    assert {r["id"] for r in store.get("pay", "k4", 0)} == {"4-2", "4-3"}  # latest expiry kept


def test_memory_store_expires_records() -> None:
    store = MemoryStore()
    store.put("pay", "k", {"id": "A", "started": 0.0}, time.time() + 0.05)
    assert len(store.get("pay", "k", time.time())) == 1
    time.sleep(0.08)
    assert store.get("pay", "k", time.time()) == []


# ---------------------------------------------------------------- Redis (real server)


@pytest.fixture
def redis_url() -> str:
    return require_url("REDIS_URL")


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[RedisStore]:
    prefix = f"sa_explain:test:{uuid.uuid4().hex}:"
    store = RedisStore(redis_url, prefix=prefix, max_per_key=4)
    yield store
    for key in store.client.scan_iter(match=prefix + "*"):
        store.client.delete(key)


@pytest.mark.server
def test_redis_store_names_the_twin_across_detectors(
    redis_store: RedisStore, redis_url: str
) -> None:
    # Two detectors (as in two worker processes) sharing one Redis.
    other = RedisStore(redis_url, prefix=redis_store.prefix)
    det_a, det_b = Detector(other), Detector(redis_store)
    now = time.time()
    a = ctx("A", now - 0.03)
    det_a.record_start(a)
    det_a.record_end(a, "success")
    b = ctx("B", now - 0.02)
    det_b.record_start(b)
    twin = det_b.find_twin(b, time.time())
    assert twin is not None and twin["id"] == "A" and twin["outcome"] == "success"
    assert redis_store.stats["errors"] == 0 and other.stats["errors"] == 0


@pytest.mark.server
def test_redis_retry_of_the_same_id_is_not_a_twin(redis_store: RedisStore) -> None:
    det = Detector(redis_store)
    now = time.time()
    run(det, ctx("A", now - 1, retries=0), "retry")
    second = ctx("A", now - 0.5, retries=1)
    det.record_start(second)
    assert det.find_twin(second, now) is None
    (rec,) = redis_store.get("pay", "k", now)
    assert rec["retries"] == 1


@pytest.mark.server
def test_redis_keys_expire_with_their_latest_record(redis_store: RedisStore) -> None:
    det = Detector(redis_store, window=2, max_runtime=30)
    a = ctx("A", time.time())
    det.record_start(a)
    h, e = redis_store._keys("pay", "k")
    client = redis_store.client
    assert 25_000 < client.pttl(h) <= 30_000 and 25_000 < client.pttl(e) <= 30_000
    det.record_end(a, "success")
    assert 0 < client.pttl(h) <= 2_000  # ended: kept only for the window
    det.record_start(ctx("B", time.time()))
    assert client.pttl(h) > 25_000  # a running record keeps the group alive


@pytest.mark.server
def test_redis_records_really_disappear(redis_store: RedisStore) -> None:
    det = Detector(redis_store, window=0.2)
    run(det, ctx("A", time.time()))
    h, e = redis_store._keys("pay", "k")
    assert redis_store.client.exists(h, e) == 2
    time.sleep(0.35)
    assert redis_store.client.exists(h, e) == 0
    assert redis_store.get("pay", "k", time.time()) == []


@pytest.mark.server
def test_redis_group_is_capped(redis_store: RedisStore) -> None:
    det = Detector(redis_store)
    for i in range(10):
        det.record_start(ctx(f"T{i}", time.time()))
    h, e = redis_store._keys("pay", "k")
    assert redis_store.client.hlen(h) == 4 and redis_store.client.zcard(e) == 4


def _timed(fn: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def test_redis_down_has_no_effect_and_costs_little() -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0", backoff=30)
    det = Detector(store)
    c = ctx("A", time.time())
    _, t_start = _timed(lambda: det.record_start(c))
    twin, t_find = _timed(lambda: det.find_twin(c, time.time()))
    _, t_end = _timed(lambda: det.record_end(c, "success"))
    assert twin is None
    assert store.stats["errors"] == 1 and store.stats["skipped"] == 2  # backoff after one error
    assert t_start < 0.5 and t_find < 0.01 and t_end < 0.01
    assert store.last_error and "Connection" in store.last_error


def test_redis_that_never_answers_is_cut_by_the_socket_timeout() -> None:
    with socket.socket() as server:  # accepts (backlog) but never replies
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        store = RedisStore(f"redis://127.0.0.1:{port}/0", socket_timeout=0.05, backoff=30)
        det = Detector(store)
        c = ctx("A", time.time())
        _, t_start = _timed(lambda: det.record_start(c))
        twin, t_find = _timed(lambda: det.find_twin(c, time.time()))
        _, t_end = _timed(lambda: det.record_end(c, "success"))
        assert twin is None
        assert t_start < 0.5 and t_find < 0.5, (t_start, t_find)
        assert t_end < 0.01  # two timeouts in a row: skipped without waiting
        assert store.stats["errors"] == 2 and store.stats["skipped"] == 1
        assert store.last_error is not None and "Timeout" in store.last_error


def test_redis_store_needs_exactly_one_of_url_or_client() -> None:
    with pytest.raises(TypeError):
        RedisStore()
    with pytest.raises(ValueError):
        RedisStore("redis://127.0.0.1:6379/0", socket_timeout=0)


def test_stores_satisfy_the_store_protocol() -> None:
    stores: list[Store] = [MemoryStore(), RedisStore("redis://127.0.0.1:1/0")]
    assert all(hasattr(s, "put") and hasattr(s, "get") for s in stores)


def test_public_context_without_private_start_still_orders_twins() -> None:
    # The explainer may pass the schema's context (no ``_started``): started_at is used.
    det = Detector(MemoryStore())
    now = time.time()
    a = ctx("A", now - 0.5)
    run(det, a)
    from sa_explain.context import _iso

    b = {"kind": "celery", "name": "pay", "key": "k", "id": "B", "started_at": _iso(now - 1)}
    twin = det.find_twin(b, now)
    assert twin is not None and twin["id"] == "A" and twin["overlapped"] is True


def test_two_deliveries_of_one_task_id_are_twins_but_its_retries_are_not() -> None:
    # Celery runs a reused task id twice (see test_celery_ids); retries bump ``retries``.
    det = Detector(MemoryStore())
    now = time.time()
    first = ctx("A", now - 1.0, retries=0, _run="r1")
    run(det, first, "retry")
    retry = ctx("A", now - 0.5, retries=1, _run="r2")
    det.record_start(retry)
    assert det.find_twin(retry, now) is None  # its earlier attempt is not a twin
    dup = ctx("A", now - 0.4, retries=1, _run="r3")  # the same id delivered again
    det.record_start(dup)
    twin = det.find_twin(dup, now)
    assert twin is not None and twin["id"] == "A" and twin["same_id"] is True
    assert twin["retries"] == 1 and twin["outcome"] == "running"
    assert len(det.store.get("pay", "k", now)) == 3  # one slot per run
