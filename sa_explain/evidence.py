"""Stage 2: put the facts next to what else is knowable right now.

Facts say what the raise site saw. Evidence adds what the process noted before the error
(tracked statements, the write log), what the database says now (the primary-row probe,
replica lag — both within the configured budget) and who else was doing the same work
(the operation context and its duplicate twin). Everything here is best effort: each
source that fails leaves its field empty and a sentence saying why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sa_explain import _safe, probes, tracking
from sa_explain.config import Config
from sa_explain.context import current_context
from sa_explain.explanation import BindInfo
from sa_explain.facts import Facts

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


@dataclass
class Evidence:
    """Everything the diagnosis may use; plain data plus the facts."""

    facts: Facts
    bind: BindInfo | None = None
    bind_source: str | None = None  # how the failing bind was established
    statements: list[tracking.Statement] = field(default_factory=list)
    failing_statement: tracking.Statement | None = None
    last_write: tracking.Statement | None = None  # in this thread/task, on the table
    last_commit_after_write: tracking.Statement | None = None
    writes: list[tracking.WriteRecord] = field(default_factory=list)
    probe: probes.ProbeResult | None = None
    lag: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    twin: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    now: float = 0.0  # perf_counter at explain time
    primary_bind: BindInfo | None = None
    redact: bool = False  # configure(redact_identity=True): no key values in sentences either


def _same_table(stmt_table: str | None, facts: Facts) -> bool:
    if not stmt_table or not facts.table_name:
        return False
    a = stmt_table.lower()
    b = facts.table_name.lower()
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def gather(facts: Facts, cfg: Config, *, probe: bool, context: dict[str, Any] | None = None) -> Evidence:
    ev = Evidence(facts=facts, now=time.perf_counter(), redact=cfg.redact_identity)
    _statements(ev, cfg)
    _bind(ev, cfg)
    _writes(ev)
    ev.context = context if context is not None else _context()
    if probe:
        deadline = time.monotonic() + cfg.probe_timeout
        _lag(ev, cfg, deadline)
        _probe(ev, cfg, deadline)
    _twin(ev, cfg)
    return ev


def _statements(ev: Evidence, cfg: Config) -> None:
    facts = ev.facts
    try:
        recent = tracking.recent_statements()
    except Exception:
        return
    # Only statements on engines that belong to this error: the failing engine, the
    # session's, and the configured ones. The same table name in another database
    # (a tenant, a shard, another test) is not evidence.
    known = {id(e) for e in (facts.engine, *facts.session_engines, *_configured_engines(cfg)) if e is not None}

    def ours(s: tracking.Statement) -> bool:
        engine = s.info.engine() if s.info is not None else None
        return engine is not None and (not known or id(engine) in known)

    relevant = [s for s in recent if ours(s) and (s.verb == "COMMIT" or _same_table(s.table, facts))]
    ev.statements = relevant[-20:]
    verb = {"refresh": "SELECT", "update": "UPDATE", "delete": "DELETE"}.get(facts.operation)
    for s in reversed(relevant):
        if verb and s.verb == verb and _same_table(s.table, facts):
            ev.failing_statement = s
            break
    fail_at = ev.failing_statement.at if ev.failing_statement else ev.now
    commit: tracking.Statement | None = None
    for s in reversed(relevant):
        if s.at >= fail_at:
            continue
        if s.verb == "COMMIT" and commit is None:
            commit = s
        elif s.verb in ("INSERT", "UPDATE", "DELETE") and _same_table(s.table, facts):
            ev.last_write = s
            if commit is not None and commit.info is s.info:
                ev.last_commit_after_write = commit
            break


def _configured_engines(cfg: Config) -> list[Any]:
    refs = [cfg.primary, *cfg.replicas, *cfg.proxies]
    return [e for e in (r() for r in refs if r is not None) if e is not None]


def _bind(ev: Evidence, cfg: Config) -> None:
    facts = ev.facts
    engine: Any = None
    if ev.failing_statement is not None and ev.failing_statement.info is not None:
        engine = ev.failing_statement.info.engine()
        ev.bind_source = "tracked statement"
    if engine is None and facts.engine is not None:
        engine = facts.engine
        ev.bind_source = "raise site" if facts.operation != "refresh" else "session transaction"
    if engine is not None:
        detected = ev.failing_statement.detected if ev.failing_statement is not None else None
        ev.bind = tracking.bind_info(engine, detected)
        if facts.engine is None or ev.bind_source == "tracked statement":
            facts.engine = engine
    primary = cfg.primary_engine()
    if primary is not None:
        ev.primary_bind = tracking.bind_info(primary)


def _writes(ev: Evidence) -> None:
    facts = ev.facts
    mapper = facts.mapper
    if mapper is None or facts.identity is None:
        return
    try:
        cls = _safe.qualname(mapper.base_mapper.class_)
        ev.writes = tracking.writes_for(cls, facts.identity)
    except Exception:
        return


def _context() -> dict[str, Any] | None:
    try:
        ctx = current_context()
    except Exception:
        return None
    return ctx or None  # private keys (_started) stay: the twin finder needs them


def probe_engine(ev: Evidence, cfg: Config) -> Engine | None:
    """The engine to check the row on: the configured primary, else a primary/proxy bind."""
    primary = cfg.primary_engine()
    if primary is not None:
        return primary
    if ev.bind is not None and ev.bind.role in ("primary", "proxy"):
        return ev.facts.engine
    return None


def _lag(ev: Evidence, cfg: Config, deadline: float) -> None:
    if ev.bind is None or ev.bind.role not in ("replica", "proxy") or ev.facts.engine is None:
        return
    try:
        ev.lag = probes.measure_lag(cfg, ev.facts.engine, cfg.primary_engine(), deadline)
    except Exception as exc:
        ev.lag = {"error": _safe.text(exc, 200)}


def _probe(ev: Evidence, cfg: Config, deadline: float) -> None:
    facts = ev.facts
    engine = probe_engine(ev, cfg)
    name = tracking.bind_info(engine).name if engine is not None else None
    if facts.table is None:
        ev.probe = probes.ProbeResult(skipped="the table is not known (no traceback frames)")
        return
    if engine is not None and time.monotonic() >= deadline:
        spent = f"the probe budget ({cfg.probe_timeout * 1000:.0f} ms) was spent reading replica lag"
        ev.probe = probes.ProbeResult(bind=name, skipped=spent)
        return
    extra: list[str] = []
    if facts.version_column:
        extra.append(facts.version_column)
    for values in facts.set_values[:1]:
        extra.extend(k for k in values if k not in extra)
    try:
        ev.probe = probes.probe_rows(
            cfg, engine, name, facts.table, facts.pk_columns, facts.identities[:20], extra, deadline
        ) if engine is not None else probes.ProbeResult(skipped=probes.probe_allowed(cfg, None))
    except Exception as exc:
        ev.probe = probes.ProbeResult(error=_safe.text(exc, 200))


def _twin(ev: Evidence, cfg: Config) -> None:
    finder = cfg.duplicates
    if finder is None or not ev.context:
        return
    try:
        ev.twin = finder.find_twin(ev.context, time.time())
    except Exception as exc:
        ev.notes.append(f"The duplicate detector failed: {_safe.text(exc, 200)}.")
