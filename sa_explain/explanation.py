"""The last stage before the surfaces: one immutable, JSON-safe record per explained error.

Every surface (Sentry, logging, structlog, the CLI, log-analysis queries) consumes the
same :meth:`Explanation.to_dict` output, so the schema is defined once, here, and
documented in ``docs/schema.md``. Bump :data:`SCHEMA` when a key changes meaning or goes
away; adding keys is backwards compatible and does not bump it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA = "sa_explain/1"

ErrorKind = Literal["object_deleted", "stale_data"]
Operation = Literal["refresh", "update", "delete", "unknown"]
PrimaryRow = Literal["present", "absent", "unknown"]
Role = Literal["primary", "replica", "proxy", "unknown"]

CAUSES: tuple[str, ...] = (
    "replica_lag",
    "row_deleted",
    "concurrent_update",
    "primary_key_changed",
    "rowcount_unreliable",
    "duplicate_submission",
    "unknown",
)
"""The stable cause names. Never rename one: dashboards and queries group by them."""

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Hint:
    """One remediation, from the catalogue in :mod:`sa_explain.hints`."""

    id: str
    title: str
    detail: str
    docs: str

    def to_dict(self) -> JSON:
        return {"id": self.id, "title": self.title, "detail": self.detail, "docs": self.docs}


@dataclass(frozen=True, slots=True)
class BindInfo:
    """Which server a statement went to. Never holds a password."""

    name: str | None = None
    role: Role = "unknown"
    role_source: str = "unknown"  # "configured" | "detected" | "unknown"
    system: str | None = None  # OpenTelemetry db.system.name: postgresql, mysql, mariadb, sqlite
    driver: str | None = None
    address: str | None = None
    port: int | None = None
    database: str | None = None
    url: str | None = None  # rendered with the password hidden
    server: str | None = None  # what the server says it is (cluster_name, @@server_id, backend port)

    def to_dict(self) -> JSON:
        return {
            "name": self.name,
            "role": self.role,
            "role_source": self.role_source,
            "system": self.system,
            "driver": self.driver,
            "address": self.address,
            "port": self.port,
            "database": self.database,
            "url": self.url,
            "server": self.server,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """Everything sa-explain could establish about one ORM error.

    Built by :func:`sa_explain.explain`; plain data only (no reference to the exception,
    its frames, sessions, connections or user objects), so it is safe to keep, pickle,
    log and send.
    """

    error: ErrorKind
    exception: str
    message: str
    operation: Operation
    site: str
    cause: str
    confidence: float
    mapper: str | None = None
    table: str | None = None
    identity: list[Any] | None = None
    identities: list[list[Any]] = field(default_factory=list)
    rows: JSON | None = None
    version: JSON | None = None
    bind: BindInfo | None = None
    replica: JSON | None = None
    primary_row: PrimaryRow = "unknown"
    evidence: tuple[str, ...] = ()
    hints: tuple[Hint, ...] = ()
    statements: tuple[JSON, ...] = ()
    context: JSON | None = None
    twin: JSON | None = None
    session: JSON | None = None
    probe: JSON | None = None
    params: list[JSON] | None = None
    via: str | None = None
    source: str = "traceback"
    sqlalchemy: str | None = None
    timestamp: str | None = None

    def to_dict(self) -> JSON:
        """The documented schema (``docs/schema.md``): JSON-safe, stable key order."""
        return {
            "schema": SCHEMA,
            "error": self.error,
            "exception": self.exception,
            "message": self.message,
            "operation": self.operation,
            "site": self.site,
            "mapper": self.mapper,
            "table": self.table,
            "identity": self.identity,
            "identities": self.identities,
            "rows": self.rows,
            "version": self.version,
            "bind": self.bind.to_dict() if self.bind is not None else None,
            "replica": self.replica,
            "primary_row": self.primary_row,
            "cause": self.cause,
            "confidence": self.confidence,
            "evidence": list(self.evidence),
            "hints": [h.to_dict() for h in self.hints],
            "statements": list(self.statements),
            "context": self.context,
            "twin": self.twin,
            "session": self.session,
            "probe": self.probe,
            "params": self.params,
            "via": self.via,
            "source": self.source,
            "sqlalchemy": self.sqlalchemy,
            "timestamp": self.timestamp,
        }

    def to_otel(self) -> dict[str, str | int | float | bool]:
        """Flat attributes named after the OpenTelemetry database semantic conventions.

        Only scalar values, so the result can be set on a span or log record as is; keys
        without an OpenTelemetry name use the ``sa_explain.`` namespace.
        """
        out: dict[str, str | int | float | bool] = {
            "error.type": self.exception,
            "db.operation.name": _OTEL_OPERATION.get(self.operation, self.operation),
            "sa_explain.error": self.error,
            "sa_explain.cause": self.cause,
            "sa_explain.confidence": self.confidence,
            "sa_explain.primary_row": self.primary_row,
        }
        if self.table:
            out["db.collection.name"] = self.table
        if self.mapper:
            out["sa_explain.mapper"] = self.mapper
        if self.rows:
            for k in ("expected", "matched"):
                v = self.rows.get(k)
                if isinstance(v, int):
                    out[f"sa_explain.rows.{k}"] = v
            matched = self.rows.get("matched")
            if isinstance(matched, int):
                out["db.response.affected_rows"] = matched
        b = self.bind
        if b is not None:
            for key, value in (
                ("db.system.name", b.system),
                ("db.namespace", b.database),
                ("server.address", b.address),
                ("server.port", b.port),
                ("sa_explain.bind.name", b.name),
                ("sa_explain.bind.role", b.role),
            ):
                if value is not None:
                    out[key] = value
        if self.replica:
            for k in ("lag_seconds", "lag_bytes"):
                v = self.replica.get(k)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    out[f"sa_explain.replica.{k}"] = v
        return out


_OTEL_OPERATION = {"refresh": "SELECT", "update": "UPDATE", "delete": "DELETE"}
