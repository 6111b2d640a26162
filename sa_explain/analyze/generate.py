"""Seeded synthetic logs of explained errors, for tests, benchmarks and trying the queries.

Real incident logs cannot ship with the project, and hand-written fixtures never have
the shapes that break analyses: a hot row failing thousands of times, a replica-lag
incident that makes one cause dominate for twenty minutes, a task retried under the
same id (not a duplicate), a payload submitted three times within a second (a
duplicate). The generator makes all of those, deterministically from a seed, and every
record is a complete ``sa_explain/1`` dict (docs/schema.md: every key present).

Speed matters (the benchmark needs a million events): the constant parts of a record
(bind, hints, evidence templates) are built once, and each record is one ``json.dumps``.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any

FORMATS = ("structlog", "jsonlogger", "string", "sentry", "sentry-array", "raw")
"""Output shapes: structlog JSONRenderer lines, python-json-logger lines, lines carrying the
record as a JSON string, Sentry events as JSON lines or as one JSON array, bare records."""

BASE_TIME = datetime(2026, 11, 2, tzinfo=UTC)
"""Where generated time starts (a Monday, so the diurnal pattern reads naturally)."""

_CAUSE_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("replica_lag", 0.30),
    ("row_deleted", 0.22),
    ("concurrent_update", 0.19),
    ("duplicate_submission", 0.03),
    ("rowcount_unreliable", 0.06),
    ("primary_key_changed", 0.04),
    ("unknown", 0.16),
)
_INCIDENT_CAUSE_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("replica_lag", 0.80),
    ("row_deleted", 0.08),
    ("concurrent_update", 0.06),
    ("duplicate_submission", 0.02),
    ("unknown", 0.04),
)

# (table, mapper, primary-key shape, weight): composite keys and schema-qualified names on purpose.
_TABLES: tuple[tuple[str, str, str, float], ...] = (
    ("device", "app.models.Device", "int", 0.22),
    ("public.order", "app.models.Order", "int", 0.18),
    ("order_line", "app.models.OrderLine", "int", 0.12),
    ("tenant_42.invoice", "billing.models.Invoice", "int", 0.10),
    ("user_account", "app.models.User", "uuid", 0.10),
    ("payment", "billing.models.Payment", "int", 0.08),
    ("flight_leg", "ops.models.FlightLeg", "composite", 0.08),
    ("shipment", "app.models.Shipment", "int", 0.07),
    ("session_token", "auth.models.SessionToken", "str", 0.05),
)


def _bind(
    name: str, role: str, system: str, driver: str, address: str, port: int, server: str | None,
    role_source: str = "configured",
) -> dict[str, Any]:
    scheme = {"postgresql": "postgresql", "mariadb": "mysql", "mysql": "mysql"}.get(system, system)
    return {
        "name": name,
        "role": role,
        "role_source": role_source,
        "system": system,
        "driver": driver,
        "address": address,
        "port": port,
        "database": "app",
        "url": f"{scheme}+{driver}://app:***@{address}:{port}/app",
        "server": server,
    }


_PRIMARY = _bind("primary", "primary", "postgresql", "psycopg", "10.0.0.10", 5432, "pg_main")
_REPLICAS = (
    _bind("replica-1", "replica", "postgresql", "psycopg", "10.0.0.11", 5432, "pg_standby_1"),
    _bind("replica-2", "replica", "postgresql", "psycopg", "10.0.0.12", 5432, "pg_standby_2", "detected"),
    _bind("pgpool", "proxy", "postgresql", "psycopg", "10.0.0.20", 9999, "pgpool backend 1", "detected"),
    _bind("orders-replica", "replica", "mariadb", "pymysql", "10.0.1.11", 3306, "server_id=12"),
)
_MARIA_PRIMARY = _bind("orders-primary", "primary", "mariadb", "mysqldb", "10.0.1.10", 3306, "server_id=1")
_UNKNOWN_BIND = _bind("10.0.0.30:5432/app", "unknown", "postgresql", "psycopg2", "10.0.0.30", 5432, None, "unknown")

_HINTS: dict[str, list[dict[str, str]]] = {
    "replica_lag": [
        {"id": "read_your_writes", "title": "Route reads after a write to the primary",
         "detail": "A read that must see the caller's own write has to go to the primary, or wait until the replica has replayed it (a read-your-writes token).",
         "docs": "docs/hints.md#read_your_writes"},
    ],
    "row_deleted": [
        {"id": "expect_deletion", "title": "Treat a vanished row as a normal outcome",
         "detail": "Another transaction deleted the row; catch ObjectDeletedError where the instance is refreshed and decide what the caller should see.",
         "docs": "docs/hints.md#expect_deletion"},
    ],
    "concurrent_update": [
        {"id": "retry_on_version_conflict", "title": "Retry the unit of work on a version conflict",
         "detail": "Another writer committed first; reload the row and re-apply the change, or surface the conflict to the user.",
         "docs": "docs/hints.md#retry_on_version_conflict"},
    ],
    "primary_key_changed": [
        {"id": "immutable_keys", "title": "Do not change primary keys in place",
         "detail": "The row's key changed under the session; use a surrogate key or ON UPDATE CASCADE and expire the instance.",
         "docs": "docs/hints.md#immutable_keys"},
    ],
    "rowcount_unreliable": [
        {"id": "found_rows", "title": "Make the driver report matched rows",
         "detail": "With MySQL/MariaDB an UPDATE that changes nothing reports 0 rows unless the client sets CLIENT.FOUND_ROWS.",
         "docs": "docs/hints.md#found_rows"},
    ],
    "duplicate_submission": [
        {"id": "idempotency_key", "title": "Make the operation idempotent",
         "detail": "The same payload ran twice at once; deduplicate on an idempotency key before touching the rows.",
         "docs": "docs/hints.md#idempotency_key"},
    ],
    "unknown": [],
}

_TASKS = ("app.tasks.sync_device", "billing.tasks.charge_invoice", "app.tasks.fulfil_order", "ops.tasks.update_leg")
_REQUESTS = ("POST /orders", "PATCH /devices/{id}", "POST /payments", "DELETE /sessions/{id}")


def _weighted(pairs: tuple[tuple[str, float], ...]) -> tuple[list[str], list[float]]:
    names = [n for n, _ in pairs]
    cum: list[float] = []
    total = 0.0
    for _, w in pairs:
        total += w
        cum.append(total)
    return names, cum


def _iso(t: float) -> str:
    dt = BASE_TIME + timedelta(seconds=t)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class Generator:
    """Deterministic stream of ``(epoch_offset_seconds, sa_explain dict)`` pairs.

    ``days`` is the time span the events cover; about one replica-lag incident per day
    (twenty minutes of lag measured in seconds to minutes) is placed at seeded times.
    """

    def __init__(self, seed: int = 0, events: int = 10_000, days: float = 7.0) -> None:
        self.rng = random.Random(seed)
        self.events = events
        self.span = days * 86_400.0
        self._causes = _weighted(_CAUSE_WEIGHTS)
        self._incident_causes = _weighted(_INCIDENT_CAUSE_WEIGHTS)
        self._tables = _weighted(tuple((str(i), w) for i, (_, _, _, w) in enumerate(_TABLES)))
        n_incidents = max(1, round(days))
        self.incidents = sorted(
            (s, s + 1200.0) for s in (self.rng.uniform(0, self.span - 1200) for _ in range(n_incidents))
        )
        self._hot_ids = [[self.rng.randint(1, 50_000) for _ in range(25)] for _ in _TABLES]
        self._counter = 0

    # -- small random helpers -------------------------------------------------
    def _hex(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def _pick(self, weighted: tuple[list[str], list[float]]) -> str:
        names, cum = weighted
        x = self.rng.random() * cum[-1]
        for name, c in zip(names, cum, strict=True):
            if x < c:
                return name
        return names[-1]

    def _in_incident(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.incidents)

    def _identity(self, ti: int) -> list[Any]:
        rng = self.rng
        shape = _TABLES[ti][2]
        hot = rng.random() < 0.35
        n = self._hot_ids[ti][int(25 * rng.random() ** 3)] if hot else rng.randint(1, 200_000)
        if shape == "int":
            return [n]
        if shape == "uuid":
            return [f"{n:08x}-4a1b-8c2d-9e3f-{n * 7919 % 16**12:012x}"]
        if shape == "str":
            return [f"tok_{n:06d}"]
        return [f"LH{400 + n % 97}", n % 31 + 1]

    # -- the stream -------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[float, dict[str, Any]]]:
        rng = self.rng
        mean_gap = self.span / max(self.events, 1)
        t = 0.0
        emitted = 0
        while emitted < self.events:
            # Diurnal load: busier in the (UTC) afternoon, quiet at night.
            rate = 1.0 + 0.6 * math.sin(2 * math.pi * (t / 86_400.0 - 0.25))
            t += rng.expovariate(1.0) * mean_gap / rate
            incident = self._in_incident(t)
            cause = self._pick(self._incident_causes if incident else self._causes)
            if cause == "duplicate_submission":
                for tb, rec in self._burst(t):
                    if emitted >= self.events:
                        break
                    t = max(t, tb)
                    yield t, rec
                    emitted += 1
                continue
            if cause in ("row_deleted", "concurrent_update") and rng.random() < 0.06:
                # A Celery task retried under the same id: several errors, one operation.
                for tr, rec in self._retries(t, cause):
                    if emitted >= self.events:
                        break
                    t = max(t, tr)
                    yield t, rec
                    emitted += 1
                continue
            yield t, self.record(t, cause, incident)
            emitted += 1

    def _burst(self, t: float) -> Iterator[tuple[float, dict[str, Any]]]:
        """A payload submitted 2-4 times within seconds: distinct ids, one key."""
        rng = self.rng
        key = self._hex(64)
        name = rng.choice(_TASKS)
        ti = self._pick(self._tables)
        identity = self._identity(int(ti))
        first_id = self._hex(128)
        prev_id = first_id
        for _ in range(rng.randint(2, 4)):
            t += rng.uniform(0.05, 3.0)
            ctx = self._context(t, kind="celery", name=name, key=key)
            rec = self.record(t, "duplicate_submission", False, context=ctx, table_index=int(ti), identity=identity)
            rec["twin"] = {
                "id": prev_id,
                "name": name,
                "key": key,
                "started_at": _iso(t - rng.uniform(0.1, 2.0)),
                "ended_at": _iso(t - rng.uniform(0.0, 0.1)),
                "outcome": "success",
                "delta_ms": round(rng.uniform(1, 100), 1),
            }
            prev_id = ctx["id"]
            yield t, rec

    def _retries(self, t: float, cause: str) -> Iterator[tuple[float, dict[str, Any]]]:
        rng = self.rng
        ctx = self._context(t, kind="celery", name=rng.choice(_TASKS), key=self._hex(64))
        ti = int(self._pick(self._tables))
        identity = self._identity(ti)
        for attempt in range(rng.randint(2, 3)):
            t += rng.uniform(1.0, 4.0)
            c = dict(ctx, retries=attempt)
            yield t, self.record(t, cause, False, context=c, table_index=ti, identity=identity)

    def _context(self, t: float, kind: str | None = None, name: str | None = None, key: str | None = None) -> dict[str, Any]:
        rng = self.rng
        if kind is None:
            kind = "celery" if rng.random() < 0.5 else "request"
        if name is None:
            name = rng.choice(_TASKS if kind == "celery" else _REQUESTS)
        if key is None and (kind == "celery" or rng.random() < 0.4):
            key = self._hex(64)
        cid = self._hex(128)
        return {
            "kind": kind,
            "name": name,
            "id": cid,
            "key": key,
            "retries": 0 if kind == "celery" else None,
            "root_id": cid,
            "parent_id": None,
            "started_at": _iso(max(0.0, t - rng.uniform(0.01, 5.0))),
        }

    def _lag(self, incident: bool) -> float:
        rng = self.rng
        if incident:
            return round(rng.lognormvariate(math.log(8.0), 0.9), 3)
        return round(rng.lognormvariate(math.log(0.35), 0.8), 3)

    def record(
        self,
        t: float,
        cause: str,
        incident: bool,
        *,
        context: dict[str, Any] | None = None,
        table_index: int | None = None,
        identity: list[Any] | None = None,
    ) -> dict[str, Any]:
        """One complete ``sa_explain/1`` dict for ``cause`` at time offset ``t``."""
        rng = self.rng
        ti = int(self._pick(self._tables)) if table_index is None else table_index
        table, mapper, _, _ = _TABLES[ti]
        if identity is None:
            identity = self._identity(ti)
        cls = mapper.rsplit(".", 1)[1]
        error = "object_deleted"
        operation, site = "refresh", "refresh"
        bind: dict[str, Any] | None = _PRIMARY
        replica: dict[str, Any] | None = None
        rows: dict[str, Any] | None = None
        version: dict[str, Any] | None = None
        primary_row = "present"
        source = "traceback"
        identities: list[list[Any]] = [identity]
        confidence = round(rng.uniform(0.8, 0.97), 2)
        evidence: list[str]
        probe: dict[str, Any] = {
            "ran": True, "skipped": None, "bind": "primary",
            "elapsed_ms": round(rng.uniform(0.5, 6.0), 2), "row": "present", "error": None,
        }
        if cause == "replica_lag":
            if rng.random() < 0.2:
                site = "session_refresh"
            x = rng.random()
            bind = _REPLICAS[0 if x < 0.5 else 1 if x < 0.75 else 2 if x < 0.9 else 3]
            lag: float | None = self._lag(incident)
            err = None
            if rng.random() < 0.07:
                lag, err = None, "permission denied for function pg_last_wal_replay_lsn"
                confidence = round(rng.uniform(0.55, 0.75), 2)
            maria = bind["system"] == "mariadb"
            replica = {
                "lag_seconds": lag,
                "lag_bytes": None if maria or lag is None else int(lag * rng.uniform(2e4, 2e6)),
                "gtid": {"primary": f"0-1-{self._counter + 1000}", "replica": f"0-1-{self._counter + 990}", "received": f"0-1-{self._counter + 999}"} if maria else None,
                "caught_up": False if lag is not None else None,
                "measured_by": "SHOW SLAVE STATUS" if maria else "pg_wal_lsn_diff(primary current, replica replay)",
                "node": f"{bind['address']}:{bind['port']}",
                "elapsed_ms": round(rng.uniform(0.4, 4.0), 2),
                "error": err,
            }
            evidence = [
                f"The refresh SELECT ran on '{bind['name']}' (role {bind['role']}) {rng.randint(1, 40)} ms after the INSERT of {table} {json.dumps(identity)} was committed on 'primary'.",
                f"The row exists on the primary (probe, {probe['elapsed_ms']} ms).",
            ]
        elif cause == "row_deleted":
            primary_row = "absent"
            probe["row"] = "absent"
            if rng.random() < 0.3:
                error, operation, site = "stale_data", "delete", "delete"
                rows = {"expected": 1, "matched": 0, "executemany": False, "sane_rowcount": True, "sane_multi_rowcount": True}
            evidence = [
                f"The row {table} {json.dumps(identity)} is absent on the primary (probe).",
                "A DELETE of this row was committed by another connection.",
            ]
        elif cause == "concurrent_update":
            error, operation, site = "stale_data", "update", "update"
            v = rng.randint(1, 40)
            rows = {"expected": 1, "matched": 0, "executemany": False, "sane_rowcount": True, "sane_multi_rowcount": True}
            version = {"column": "version_id", "expected": v, "new": v + 1, "actual": v + rng.randint(1, 3)}
            evidence = [
                f"The UPDATE looked for version {v}; the primary holds version {version['actual']}.",
                "Another writer committed between this session's load and its flush.",
            ]
        elif cause == "primary_key_changed":
            error, operation, site = "stale_data", "update", "update"
            primary_row = "absent"
            probe["row"] = "absent"
            rows = {"expected": 1, "matched": 0, "executemany": False, "sane_rowcount": True, "sane_multi_rowcount": True}
            evidence = [f"No row has the key {json.dumps(identity)} any more, but this session's write log shows an UPDATE of the key."]
        elif cause == "rowcount_unreliable":
            error, operation, site = "stale_data", "update", "update"
            bind = _MARIA_PRIMARY
            n = rng.randint(2, 6)
            identities = [self._identity(ti) for _ in range(n)]
            identity = None  # type: ignore[assignment]  # executemany: the failing row is unknown
            rows = {"expected": n, "matched": n - rng.randint(1, n - 1), "executemany": True, "sane_rowcount": True, "sane_multi_rowcount": False}
            probe = {"ran": False, "skipped": "executemany", "bind": "orders-primary", "elapsed_ms": None, "row": None, "error": None}
            primary_row = "unknown"
            evidence = ["The driver reports changed rows, not matched rows (no CLIENT.FOUND_ROWS); the rows exist."]
        elif cause == "duplicate_submission":
            if rng.random() < 0.5:
                error, operation, site = "stale_data", "update", "update"
                rows = {"expected": 1, "matched": 0, "executemany": False, "sane_rowcount": True, "sane_multi_rowcount": True}
            primary_row = "absent" if error == "object_deleted" else "present"
            probe["row"] = primary_row
            evidence = ["Another operation with the same payload key finished just before this one."]
        else:  # unknown
            confidence = round(rng.uniform(0.1, 0.4), 2)
            primary_row = "unknown"
            probe = {}
            evidence = ["No in-process evidence: the statements that touched the row were not tracked."]
            if rng.random() < 0.4:
                source, site, bind = "message", "message", None
                identity, identities = None, []  # type: ignore[assignment]
            elif rng.random() < 0.3:
                bind = _UNKNOWN_BIND
        if context is None and rng.random() < 0.6:
            context = self._context(t)
        if error == "object_deleted":
            message = f"Instance '<{cls}>' has been deleted, or its row is otherwise not present."
        elif operation == "delete":
            message = f"DELETE statement on table '{table}' expected to delete 1 row(s); Only 0 were matched."
        else:
            exp, got = (rows or {}).get("expected", 1), (rows or {}).get("matched", 0)
            message = f"UPDATE statement on table '{table}' expected to update {exp} row(s); {got} were matched."
        bname = bind["name"] if bind is not None else None
        brole = bind["role"] if bind is not None else None
        statements: list[dict[str, Any]] = []
        if source == "traceback":
            statements = [
                {"ago_ms": round(rng.uniform(2, 900), 1), "verb": "INSERT" if cause == "replica_lag" else "SELECT",
                 "table": table, "bind": "primary", "role": "primary", "rowcount": 1, "executemany": False,
                 "same_thread": True, "committed": True},
                {"ago_ms": round(rng.uniform(0.1, 2), 1), "verb": "SELECT" if error == "object_deleted" else "UPDATE",
                 "table": table, "bind": bname, "role": brole, "rowcount": 0, "executemany": cause == "rowcount_unreliable",
                 "same_thread": True, "committed": None},
            ]
        self._counter += 1
        return {
            "schema": "sa_explain/1",
            "error": error,
            "exception": "sqlalchemy.orm.exc.ObjectDeletedError" if error == "object_deleted" else "sqlalchemy.orm.exc.StaleDataError",
            "message": message,
            "operation": operation,
            "site": site,
            "mapper": mapper if source == "traceback" else None,
            "table": table if source == "traceback" or rng.random() < 0.5 else None,
            "identity": identity,
            "identities": identities,
            "rows": rows,
            "version": version,
            "bind": bind,
            "replica": replica,
            "primary_row": primary_row,
            "cause": cause,
            "confidence": confidence,
            "evidence": evidence,
            "hints": _HINTS[cause],
            "statements": statements,
            "context": context,
            "twin": None,
            "session": None if source == "message" else {"expire_on_commit": True, "in_flush": error == "stale_data", "in_transaction": True, "binds": [bname]},
            "probe": probe or None,
            "params": None,
            "via": None,
            "source": source,
            "sqlalchemy": "2.1.9",
            "timestamp": _iso(t),
        }


def _line(fmt: str, t: float, rec: dict[str, Any], rng: random.Random) -> str:
    """One output line (without the newline) in the shape ``fmt`` names."""
    ts = rec["timestamp"]
    if fmt == "structlog":
        # structlog.processors.JSONRenderer after add_log_level and TimeStamper(fmt="iso", utc=True).
        return json.dumps({"event": "orm error explained", "sa_explain": rec, "level": "error", "timestamp": ts})
    if fmt == "jsonlogger":
        # pythonjsonlogger.json.JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=True).
        return json.dumps({
            "asctime": ts[:10] + " " + ts[11:19] + "," + ts[20:23],
            "levelname": "ERROR",
            "name": "app.orm",
            "message": f"{rec['cause']}: {rec['message']}",
            "sa_explain": rec,
            "timestamp": ts[:-1] + "+00:00",
        })
    if fmt == "string":
        return json.dumps({"level": "error", "msg": "orm error", "sa_explain": json.dumps(rec), "ts": ts})
    if fmt in ("sentry", "sentry-array"):
        exc_mod, exc_type = rec["exception"].rsplit(".", 1)
        return json.dumps({
            "event_id": f"{rng.getrandbits(128):032x}",
            "timestamp": ts,
            "level": "error",
            "platform": "python",
            "logger": "",
            "exception": {"values": [{"type": exc_type, "module": exc_mod, "value": rec["message"], "mechanism": {"type": "generic", "handled": False}}]},
            "tags": {"sa_explain.cause": rec["cause"], "sa_explain.table": rec["table"] or "", "sa_explain.error": rec["error"]},
            "contexts": {"sa_explain": rec, "runtime": {"name": "CPython", "version": "3.11.7", "type": "runtime"}},
            "fingerprint": ["sa_explain", rec["cause"], rec["table"] or "?"],
            "environment": "production",
            "release": "app@1.4.2",
        })
    return json.dumps(rec)


def records(events: int, seed: int = 0, days: float = 7.0) -> Iterator[dict[str, Any]]:
    """The generated ``sa_explain/1`` dicts, in time order."""
    for _, rec in Generator(seed, events, days):
        yield rec


def write(out: IO[str], events: int, seed: int = 0, fmt: str = "structlog", days: float = 7.0) -> int:
    """Write ``events`` generated records to ``out`` in format ``fmt``; returns the count."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    gen = Generator(seed, events, days)
    envelope_rng = random.Random(seed ^ 0x5A5A)
    n = 0
    written = False
    batch: list[str] = []
    array = fmt == "sentry-array"
    sep = ",\n" if array else "\n"
    if array:
        out.write("[\n")

    def flush() -> None:
        nonlocal written
        if batch:
            out.write((sep if written else "") + sep.join(batch))
            written = True
            batch.clear()

    for t, rec in gen:
        batch.append(_line(fmt, t, rec, envelope_rng))
        n += 1
        if len(batch) >= 4096:
            flush()
    flush()
    out.write("\n]\n" if array else ("\n" if written else ""))
    return n
