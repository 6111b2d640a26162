"""The pipeline behind explain(): exception → facts → evidence → diagnosis → :class:`Explanation`.

``explain()`` is called from error hooks (Sentry processors, logging filters, Celery
failure signals), where raising would lose the user's error report. So it never raises:
an unexpected failure in a later stage still returns what the earlier stages
established, with a sentence saying what went wrong.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sa_explain import _safe, hints, tracking
from sa_explain.config import Config, get_config
from sa_explain.context import context_of
from sa_explain.diagnosis import Diagnosis, diagnose
from sa_explain.evidence import Evidence, gather
from sa_explain.explanation import Explanation
from sa_explain.facts import Facts, find


def explain(
    exc: BaseException | None,
    *,
    probes: bool | None = None,
    include_params: bool | None = None,
) -> Explanation | None:
    """Explain an ``ObjectDeletedError`` / ``StaleDataError`` found anywhere in ``exc``'s chain.

    Also recognises ``InvalidRequestError: Could not refresh instance …`` (``Session.refresh``)
    and the ``PendingRollbackError`` that follows a failed flush. Returns None for anything
    else. ``probes`` and ``include_params`` override :func:`sa_explain.configure` for this
    call. Never raises; blocks at most ``probe_timeout`` (plus a few milliseconds).
    """
    cached = _already_explained(exc) if probes is None and include_params is None else None
    if cached is not None:
        return cached
    try:
        facts = find(exc)
    except Exception:
        return None
    if facts is None:
        return None
    cfg = get_config()
    try:
        context = context_of(exc)
    except Exception:
        context = None
    try:
        return _build(facts, cfg, probes, include_params, context)
    except Exception as err:  # a later stage failed: still report what the facts say
        return _minimal(facts, cfg, err)


def _already_explained(exc: BaseException | None) -> Explanation | None:
    """An explanation attached while the frames were alive (Celery's task_failure hook).

    Celery logs the failure at ERROR right after its signal, and by then it may have
    cleared the frames: reuse the first, better explanation instead of a second,
    message-only one (and a second probe).
    """
    try:
        found = getattr(exc, "__sa_explain__", None)
    except Exception:
        return None
    return found if isinstance(found, Explanation) else None


def _build(
    facts: Facts, cfg: Config, probes: bool | None, include_params: bool | None, context: dict[str, Any] | None
) -> Explanation:
    ev = gather(facts, cfg, probe=cfg.probes if probes is None else probes, context=context)
    d = diagnose(ev)
    params = cfg.include_params if include_params is None else include_params
    return _assemble(ev, d, cfg, params)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sa_version() -> str | None:
    try:
        import sqlalchemy

        return str(sqlalchemy.__version__)
    except Exception:  # pragma: no cover
        return None


def _assemble(ev: Evidence, d: Diagnosis, cfg: Config, include_params: bool) -> Explanation:
    f = ev.facts
    redact = cfg.redact_identity
    rows = None
    if f.error == "stale_data":
        rows = {
            "expected": f.expected,
            "matched": f.matched,
            "executemany": f.executemany,
            "sane_rowcount": f.sane_rowcount,
            "sane_multi_rowcount": f.sane_multi_rowcount,
        }
    version = None
    if f.version_column or f.version_expected is not None or f.version_actual is not None:
        actual = f.version_actual
        p = ev.probe
        if actual is None and p is not None and p.ran and f.version_column:
            key = f.identity or (p.present[0] if p.present else None)
            if key is not None and key in p.values:
                actual = p.values[key].get(f.version_column)
        version = {
            "column": f.version_column,
            "expected": _safe.scalar(f.version_expected),
            "new": _safe.scalar(f.version_new),
            "actual": _safe.scalar(actual),
        }
    replica = None
    if ev.lag:
        replica = _safe.json_safe(ev.lag)
    session = None
    if f.expire_on_commit is not None or f.session_engines:
        session = {
            "expire_on_commit": f.expire_on_commit,
            "in_flush": f.in_flush,
            "in_transaction": f.in_transaction,
            "binds": [tracking.bind_info(e).name for e in f.session_engines[:10]],
        }
    context = None
    if ev.context:
        context = _safe.json_safe({k: v for k, v in ev.context.items() if not str(k).startswith("_")})
    return Explanation(
        error=f.error,  # type: ignore[arg-type]
        exception=f.exception,
        message=_safe.text(_safe.strip_address(f.message)),
        operation=f.operation,  # type: ignore[arg-type]
        site=f.site,
        cause=d.cause,
        confidence=d.confidence,
        mapper=f.mapper_name or f.class_name,
        table=f.table_name,
        identity=_safe.identity(f.identity, redact),
        identities=[i for i in (_safe.identity(x, redact) for x in f.identities[:20]) if i is not None],
        rows=rows,
        version=version,
        bind=ev.bind,
        replica=replica,
        primary_row=d.primary_row,  # type: ignore[arg-type]
        evidence=tuple(_safe.text(s) for s in d.evidence),
        hints=hints.get(*d.hints),
        statements=tuple(_statements(ev)),
        context=context,
        twin=_safe.json_safe(ev.twin) if ev.twin else None,
        session=session,
        probe=ev.probe.to_dict() if ev.probe is not None else None,
        params=_safe.json_safe(f.params) if include_params and f.params else None,
        via=f.via,
        source=f.source,
        sqlalchemy=_sa_version(),
        timestamp=_now_iso(),
    )


def _statements(ev: Evidence) -> list[dict[str, Any]]:
    out = []
    stmts = ev.statements
    for i, s in enumerate(stmts):
        engine = s.info.engine() if s.info is not None else None
        b = tracking.bind_info(engine) if engine is not None else None
        committed = None
        if s.verb in ("INSERT", "UPDATE", "DELETE"):
            committed = any(o.verb == "COMMIT" and o.info is s.info for o in stmts[i + 1 :])
        out.append(
            {
                "ago_ms": round((ev.now - s.at) * 1000.0, 3),
                "verb": s.verb,
                "table": s.table,
                "bind": b.name if b else None,
                "role": b.role if b else "unknown",
                "rowcount": s.rowcount,
                "executemany": s.executemany,
                "same_thread": True,
                "committed": committed,
                "sql": _safe.text(s.sql, 500),
            }
        )
    return out


def _minimal(facts: Facts, cfg: Config, err: Exception) -> Explanation:
    return Explanation(
        error=facts.error,  # type: ignore[arg-type]
        exception=facts.exception,
        message=_safe.text(_safe.strip_address(facts.message)),
        operation=facts.operation,  # type: ignore[arg-type]
        site=facts.site,
        cause="unknown",
        confidence=0.0,
        mapper=facts.mapper_name or facts.class_name,
        table=facts.table_name,
        identity=_safe.identity(facts.identity, cfg.redact_identity),
        evidence=(f"sa-explain could not finish the explanation: {_safe.text(f'{type(err).__name__}: {err}', 300)}.",),
        source=facts.source,
        via=facts.via,
        sqlalchemy=_sa_version(),
        timestamp=_now_iso(),
    )


__all__ = ["explain"]
