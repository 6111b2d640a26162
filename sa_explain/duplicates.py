"""Name the racing twin: another operation with the same payload that overlapped this one.

A client that submits the same request twice produces two tasks (or requests) with
different ids and the same arguments. When one of them then fails with a
``StaleDataError`` or ``ObjectDeletedError``, the useful sentence is "another task
with the same payload (id …) ran 12 ms earlier"; finding it by hand means searching
worker logs. The :class:`Detector` keeps, per ``(operation name, payload digest)``,
the ids with their start/end times and outcome for a short window, in a
:class:`MemoryStore` (one process) or a :class:`RedisStore` (shared by every worker),
and :meth:`Detector.find_twin` answers the question at explain time.

Rules it keeps, because it runs inside every task and request:

* it never raises and never changes what the task does: a store error means "no
  record" and "no twin", nothing else;
* it never blocks for long: Redis calls have short socket timeouts, and after a
  failure the store is skipped for ``backoff`` seconds instead of timing out on every
  task;
* it is bounded: records expire (``max_runtime`` while running, ``window`` after the
  end) and each payload keeps at most ``max_per_key`` ids; the memory store also caps
  the number of payloads;
* it stores digests, never the arguments themselves.

Retries of one Celery task keep its id and bump ``retries`` (see ``docs/celery.md``),
so an earlier attempt is never its own twin. Celery does not de-duplicate task ids:
two deliveries of one id with the same ``retries`` (a client reusing a deterministic
task id, a redelivery) are both executed, and each is the other's twin
(``same_id: true``). Telling them apart needs the private per-run token ``_run``
that :func:`sa_explain.context.bind_context` adds; without it every record with the
same id is skipped.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import hashlib
import json
import math
import os
import re
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

__all__ = [
    "Detector",
    "MemoryStore",
    "RedisStore",
    "Store",
    "digest",
]

KeyFunc = Callable[[Sequence[Any], Mapping[str, Any]], Any]

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_MAX_DEPTH = 32


def _canon(obj: Any, depth: int = 0) -> Any:
    """A JSON value that is equal for equal payloads, whatever the container order.

    Mappings are sorted by key (so kwargs order never matters), sets are sorted,
    tuples and lists are the same thing (a JSON serializer turns one into the other
    on the way to a worker), and objects without a JSON form are tagged with their type
    and a repr stripped of memory addresses.
    """
    if depth > _MAX_DEPTH:
        return "<deep>"
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, enum.Enum):
        return {"__enum__": f"{type(obj).__qualname__}.{obj.name}"}
    if isinstance(obj, bytes | bytearray | memoryview):
        return {"__bytes__": bytes(obj).hex()}
    if isinstance(obj, decimal.Decimal):
        return {"__decimal__": str(obj)}
    if isinstance(obj, _dt.datetime | _dt.date | _dt.time):
        return {"__time__": obj.isoformat()}
    if isinstance(obj, uuid.UUID):
        return {"__uuid__": str(obj)}
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj):
            return {k: _canon(v, depth + 1) for k, v in obj.items()}  # sorted when dumped
        # Mixed keys (1 and "1" both present): encode every key, so none collide.
        items = [[_dumps(_canon(k, depth + 1)), _canon(v, depth + 1)] for k, v in obj.items()]
        return {"__map__": sorted(items, key=_dumps)}
    if isinstance(obj, list | tuple):
        return [_canon(v, depth + 1) for v in obj]
    if isinstance(obj, set | frozenset):
        return {"__set__": sorted((_canon(v, depth + 1) for v in obj), key=_dumps)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return {"__type__": type(obj).__qualname__, "fields": _canon(fields, depth + 1)}
    dump = getattr(obj, "model_dump", None)  # pydantic v2 models
    if callable(dump):
        try:
            return {"__type__": type(obj).__qualname__, "fields": _canon(dump(), depth + 1)}
        except Exception:
            pass
    try:
        text = repr(obj)
    except Exception:
        text = "<unrepresentable>"
    return {"__type__": type(obj).__qualname__, "repr": _ADDRESS.sub("", text)}


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest(
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    key: KeyFunc | None = None,
    size: int = 16,
) -> str:
    """A stable hex digest of a call's arguments: equal payloads, equal digests.

    Independent of keyword order, of tuple-versus-list, and of the process (no
    ``hash()`` randomisation, no memory addresses). ``key(args, kwargs)`` picks what
    identifies the payload (``lambda a, kw: kw["order_id"]``, or a client's
    idempotency key); when it returns ``None`` the whole payload is used. The
    digest is BLAKE2b over a canonical JSON form, ``size`` bytes (hex is twice as
    long), so raw values never appear in it.
    """
    kw = dict(kwargs or {})
    material: Any = None
    if key is not None:
        material = key(tuple(args), kw)
    if material is None:
        material = {"args": list(args), "kwargs": kw}
    data = _dumps(_canon(material)).encode("utf-8")
    return hashlib.blake2b(data, digest_size=size).hexdigest()


def _started(context: Mapping[str, Any], default: float) -> float:
    """The operation's start: the private ``_started``, else the public ``started_at``."""
    started = context.get("_started")
    if isinstance(started, int | float):
        return float(started)
    text = context.get("started_at")
    if isinstance(text, str):
        try:
            return _dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return default


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return (
        _dt.datetime.fromtimestamp(ts, _dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _slot(record: Mapping[str, Any]) -> str:
    """Where a record lives in its group: one slot per run (``slot``), else per id."""
    return str(record.get("slot") or record["id"])


class Store(Protocol):
    """Where the detector keeps records; implementations must never raise."""

    def put(self, name: str, key: str, record: Mapping[str, Any], expires: float) -> None:
        """Insert or replace the record in slot ``record["slot"]`` (else ``record["id"]``)
        of ``(name, key)``, kept until ``expires``."""
        ...

    def get(self, name: str, key: str, now: float) -> list[dict[str, Any]]:
        """The unexpired records of ``(name, key)``; ``[]`` when unknown or unreachable."""
        ...


class MemoryStore:
    """Records in this process only: for a single worker process, a web server, tests.

    Bounded: at most ``max_keys`` payloads (least recently written dropped first) and
    ``max_per_key`` ids per payload (soonest-expiring dropped first). Thread-safe.
    Useless across processes (a prefork Celery pool, several web workers): use
    :class:`RedisStore` there.
    """

    def __init__(self, *, max_keys: int = 10_000, max_per_key: int = 16) -> None:
        if max_keys < 1 or max_per_key < 1:
            raise ValueError("max_keys and max_per_key must be >= 1")
        self.max_keys = max_keys
        self.max_per_key = max_per_key
        self._lock = threading.Lock()
        self._data: OrderedDict[tuple[str, str], dict[str, dict[str, Any]]] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return sum(len(g) for g in self._data.values())

    def put(self, name: str, key: str, record: Mapping[str, Any], expires: float) -> None:
        rec = dict(record)
        rec["exp"] = expires
        now = time.time()
        with self._lock:
            group = self._data.get((name, key))
            if group is None:
                group = self._data[(name, key)] = {}
            else:
                self._data.move_to_end((name, key))
            group[_slot(rec)] = rec
            for rid in [r for r, v in group.items() if v["exp"] < now]:
                del group[rid]
            while len(group) > self.max_per_key:
                del group[min(group, key=lambda r: group[r]["exp"])]
            while len(self._data) > self.max_keys:
                self._data.popitem(last=False)

    def get(self, name: str, key: str, now: float) -> list[dict[str, Any]]:
        with self._lock:
            group = self._data.get((name, key))
            if not group:
                return []
            return [dict(v) for v in group.values() if v["exp"] >= now]

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._data.clear()


# One round trip per write: upsert the record, drop expired ids, cap the group, and set
# the keys' expiry to the latest record's. Both keys share a hash tag (one cluster slot).
_PUT_LUA = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
if #gone > 0 then
  redis.call('HDEL', KEYS[1], unpack(gone))
  redis.call('ZREM', KEYS[2], unpack(gone))
end
local n = redis.call('ZCARD', KEYS[2])
local cap = tonumber(ARGV[5])
if n > cap then
  local old = redis.call('ZRANGE', KEYS[2], 0, n - cap - 1)
  redis.call('HDEL', KEYS[1], unpack(old))
  redis.call('ZREM', KEYS[2], unpack(old))
end
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #last == 2 then
  local at = math.floor(tonumber(last[2]))
  redis.call('PEXPIREAT', KEYS[1], at)
  redis.call('PEXPIREAT', KEYS[2], at)
end
return n
"""


class RedisStore:
    """Records in Redis, shared by every worker and web process that uses the same server.

    Per payload, one hash (id → JSON record) and one sorted set (id → expiry), under
    ``prefix`` and a hash tag so that Redis Cluster keeps them in one slot. Both keys
    expire with their latest record, so Redis memory is bounded by the traffic of the
    last ``window`` seconds plus the running operations.

    Redis trouble never reaches the task: every call catches every error, sockets
    time out after ``socket_timeout`` seconds (50 ms by default, no retries), and the
    store is then skipped for ``backoff`` seconds: at once when the connection fails,
    after two timeouts in a row otherwise (one stall on a busy host should not blind
    the detector for ``backoff`` seconds). ``stats`` counts what happened, for tests
    and dashboards; ``last_error`` says what went wrong last.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "sa_explain:dup:",
        max_per_key: int = 16,
        socket_timeout: float = 0.05,
        backoff: float = 5.0,
    ) -> None:
        if (url is None) == (client is None):
            raise TypeError("RedisStore needs exactly one of url= or client=")
        if max_per_key < 1:
            raise ValueError("max_per_key must be >= 1")
        if not 0 < socket_timeout <= 5:
            raise ValueError("socket_timeout must be in (0, 5] seconds")
        if client is None:
            assert url is not None
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            client = redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                health_check_interval=0,
            )
        self.client = client
        self.prefix = prefix
        self.max_per_key = max_per_key
        self.backoff = backoff
        self._script = client.register_script(_PUT_LUA)
        self._down_until = 0.0
        self._consecutive = 0
        self.stats: dict[str, int] = {"writes": 0, "reads": 0, "errors": 0, "skipped": 0}
        self.last_error: str | None = None

    def _keys(self, name: str, key: str) -> tuple[str, str]:
        tag = hashlib.blake2b(name.encode("utf-8"), digest_size=8).hexdigest()
        base = f"{self.prefix}{{{tag}:{key}}}"
        return f"{base}:h", f"{base}:e"

    def _available(self) -> bool:
        if self._down_until and time.monotonic() < self._down_until:
            self.stats["skipped"] += 1
            return False
        return True

    def _failed(self, exc: BaseException) -> None:
        self.stats["errors"] += 1
        self._consecutive += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:200]
        # A refused connection is a down server: back off at once. A timeout may be a
        # one-off stall (a busy host): back off only when it happens twice in a row.
        if self._consecutive >= 2 or not isinstance(exc, (TimeoutError, *_timeout_types())):
            self._down_until = time.monotonic() + self.backoff

    def _ok(self) -> None:
        self._consecutive = 0
        self._down_until = 0.0

    def put(self, name: str, key: str, record: Mapping[str, Any], expires: float) -> None:
        if not self._available():
            return
        h, e = self._keys(name, key)
        rec = dict(record)
        rec["exp"] = expires
        try:
            self._script(
                keys=[h, e],
                args=[
                    _slot(rec),
                    json.dumps(rec, separators=(",", ":"), default=str),
                    int(expires * 1000),
                    int(time.time() * 1000),
                    self.max_per_key,
                ],
            )
            self.stats["writes"] += 1
            self._ok()
        except Exception as exc:
            self._failed(exc)

    def get(self, name: str, key: str, now: float) -> list[dict[str, Any]]:
        if not self._available():
            return []
        h, _ = self._keys(name, key)
        try:
            raw = self.client.hgetall(h)
            self.stats["reads"] += 1
            self._ok()
        except Exception as exc:
            self._failed(exc)
            return []
        out: list[dict[str, Any]] = []
        for value in raw.values():
            try:
                rec = json.loads(value)
            except (ValueError, TypeError):
                continue
            if isinstance(rec, dict) and float(rec.get("exp", 0)) >= now:
                out.append(rec)
        return out


def _timeout_types() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import TimeoutError as RedisTimeout

        return (RedisTimeout, socket.timeout)
    except ImportError:  # pragma: no cover - RedisStore needs redis anyway
        return (socket.timeout,)


_HOST = f"{socket.gethostname()}:{os.getpid()}"


class Detector:
    """Implements ``config.TwinFinder`` and the recorder that operations and tasks call.

    ``configure(duplicates=Detector(RedisStore("redis://…")))``; the Celery hooks
    (:func:`sa_explain.celery.install`), the middleware and
    :func:`sa_explain.operation` then call :meth:`record_start` / :meth:`record_end`,
    and the explainer calls :meth:`find_twin`.

    ``window``: how long after its end a finished operation can still be named as the
    twin of a later error (seconds). ``max_runtime``: how long a record of an operation
    that never reported its end (a killed worker) is kept.
    """

    def __init__(self, store: Store, *, window: float = 60.0, max_runtime: float = 3600.0) -> None:
        if window <= 0 or max_runtime <= 0:
            raise ValueError("window and max_runtime must be > 0 seconds")
        self.store = store
        self.window = float(window)
        self.max_runtime = float(max_runtime)

    @staticmethod
    def _ident(context: Mapping[str, Any]) -> tuple[str, str, str] | None:
        name, key, rid = context.get("name"), context.get("key"), context.get("id")
        if not name or not key or not rid:
            return None
        return str(name), str(key), str(rid)

    def _record(
        self, context: Mapping[str, Any], ended: float | None, outcome: str
    ) -> dict[str, Any]:
        rid = str(context.get("id"))
        run = context.get("_run")
        return {
            "id": rid,
            "slot": f"{rid}#{run}" if run else rid,
            "kind": context.get("kind"),
            "started": _started(context, time.time()),
            "ended": ended,
            "outcome": outcome,
            "retries": context.get("retries"),
            "host": context.get("_host") or _HOST,
        }

    def record_start(self, context: Mapping[str, Any]) -> None:
        """The operation ``context`` started (a retry replaces the earlier attempt)."""
        try:
            ident = self._ident(context)
            if ident is None:
                return
            rec = self._record(context, None, "running")
            self.store.put(ident[0], ident[1], rec, rec["started"] + self.max_runtime)
        except Exception:
            pass

    def record_end(self, context: Mapping[str, Any], outcome: str) -> None:
        """The operation ended: ``success``, ``failure`` or ``retry`` (Celery will run it again)."""
        try:
            ident = self._ident(context)
            if ident is None:
                return
            now = time.time()
            rec = self._record(context, now, str(outcome))
            self.store.put(ident[0], ident[1], rec, now + self.window)
        except Exception:
            pass

    def find_twin(self, context: Mapping[str, Any], at: float) -> dict[str, Any] | None:
        """The schema's ``twin`` object for the operation ``context`` failing at ``at``.

        Candidates share the name and payload digest, have another id, started no
        later than ``at``, and were still running at ``at`` or ended at most ``window``
        seconds before it. Those that overlapped this operation come first, then the
        one whose decisive event (its end, or its start if it was still running at
        ``at``) is closest to ``at``. Returns None when there is none or the store is
        unavailable; never raises.
        """
        try:
            return self._find(context, at)
        except Exception:
            return None

    def _find(self, context: Mapping[str, Any], at: float) -> dict[str, Any] | None:
        ident = self._ident(context)
        if ident is None:
            return None
        name, key, own_id = ident
        own_start = _started(context, at)
        best: tuple[tuple[bool, float], dict[str, Any]] | None = None
        own_run = context.get("_run")
        own_slot = f"{own_id}#{own_run}" if own_run else own_id
        for rec in self.store.get(name, key, min(at, time.time())):
            same_id = str(rec.get("id")) == own_id
            if same_id and (
                # this run itself, or (without a run token) anything with this id
                own_run is None
                or _slot(rec) == own_slot
                # another attempt of this task: a retry keeps the id, bumps retries
                or rec.get("retries") != context.get("retries")
            ):
                continue
            started = float(rec["started"])
            ended = rec.get("ended")
            ended_f = float(ended) if isinstance(ended, int | float) else None
            if started > at:
                continue
            if ended_f is not None and ended_f < at - self.window:
                continue
            running_at_error = ended_f is None or ended_f > at
            decisive = started if running_at_error else float(ended_f)  # type: ignore[arg-type]
            overlapped = ended_f is None or ended_f >= own_start
            rank = (overlapped, decisive)
            if best is None or rank > best[0]:
                best = (rank, rec)
        if best is None:
            return None
        (overlapped, decisive), rec = best
        ended = rec.get("ended")
        return {
            "id": str(rec["id"]),
            "name": name,
            "key": key,
            "started_at": _iso(float(rec["started"])),
            "ended_at": _iso(float(ended)) if isinstance(ended, int | float) else None,
            "outcome": rec.get("outcome") if ended is not None else "running",
            "delta_ms": round((at - decisive) * 1000.0, 1),
            "overlapped": overlapped,
            "kind": rec.get("kind"),
            "retries": rec.get("retries"),
            "host": rec.get("host"),
            "same_id": str(rec["id"]) == own_id,
        }
