"""Stage 3: decide the most likely cause, say how sure, and say why in sentences.

The rules are ordered from the most to the least decisive evidence: a row found on the
primary beats in-process tracking, which beats the shape of the error alone. Each rule
that fires states what it saw, so the evidence list reads as the argument for the
verdict; the confidence reflects how direct that argument is (a probe on the primary is
direct; "no probe, but the refresh ran on a replica" is circumstantial).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sa_explain import _safe
from sa_explain.evidence import Evidence
from sa_explain.tracking import Statement, WriteRecord, bind_info, engine_info

_HINTS: dict[str, tuple[str, ...]] = {
    "replica_lag": ("read_your_writes", "expire_on_commit_false", "identity_not_attributes", "wait_for_replica"),
    "row_deleted": ("handle_missing_row", "select_for_update", "version_id_retry"),
    "concurrent_update": ("version_id_retry", "select_for_update", "handle_missing_row"),
    "primary_key_changed": ("immutable_primary_key", "handle_missing_row"),
    "rowcount_unreliable": ("rowcount_driver",),
    "duplicate_submission": ("idempotency_key", "task_dedup", "unique_on_conflict", "select_for_update"),
    "unknown": ("identity_not_attributes", "handle_missing_row"),
}


@dataclass
class Diagnosis:
    cause: str = "unknown"
    confidence: float = 0.2
    evidence: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    primary_row: str = "unknown"

    def verdict(self, cause: str, confidence: float, *sentences: str) -> Diagnosis:
        self.cause, self.confidence = cause, round(confidence, 2)
        self.evidence[:0] = [s for s in sentences if s]
        return self


def _ident(ev: Evidence) -> str:
    f = ev.facts
    name = f.table_name or f.class_name or "row"
    if f.identity is not None:
        return f"{name} {_safe.identity(f.identity, ev.redact)}"
    if f.identities:
        return f"{name} (one of {len(f.identities)} rows)"
    return name


def _ago(ev: Evidence, at: float) -> str:
    ms = (ev.now - at) * 1000.0
    return f"{ms:.0f} ms" if ms >= 1 else f"{ms:.2f} ms"


def _between(a: float, b: float) -> str:
    ms = (b - a) * 1000.0
    return f"{ms:.0f} ms" if ms >= 1 else f"{ms:.2f} ms"


def _bind_label(stmt: Statement | None, ev: Evidence) -> str:
    if stmt is not None and stmt.info is not None:
        engine = stmt.info.engine()
        if engine is not None:
            b = bind_info(engine)
            return f"'{b.name}' (role {b.role})"
    if ev.bind is not None:
        return f"'{ev.bind.name}' (role {ev.bind.role})"
    return "an unknown bind"


def diagnose(ev: Evidence) -> Diagnosis:
    d = Diagnosis()
    f = ev.facts
    _observe(ev, d)
    if ev.twin:
        twin = ev.twin
        consistent = f.error == "stale_data" or d.primary_row != "present" or ev.bind is None or ev.bind.role not in ("replica", "proxy")
        if consistent:
            d.verdict(
                "duplicate_submission",
                0.9 if d.primary_row != "unknown" or f.error == "stale_data" else 0.8,
                _twin_sentence(twin),
            )
            return _finish(d, ev)
    if f.error == "object_deleted":
        _object_deleted(ev, d)
    else:
        _stale_data(ev, d)
    return _finish(d, ev)


_KIND = {"celery": "Celery task", "request": "request", "operation": "operation"}


def _twin_sentence(twin: dict[str, Any]) -> str:
    delta = twin.get("delta_ms")
    ms = f"{delta:.0f} ms" if isinstance(delta, int | float) else "shortly"
    name = f"{_safe.text(twin.get('name'), 80)} id {_safe.text(twin.get('id'), 80)}"
    if twin.get("same_id"):
        who = f"Another delivery of the same task id ({name})"
    else:
        kind = _KIND.get(str(twin.get("kind")), "operation")
        who = f"Another {kind} with the same payload ({name})"
    if twin.get("outcome") == "running":
        return f"{who} started {ms} earlier, was still running, and changed this row first."
    outcome = twin.get("outcome") or "unknown outcome"
    return f"{who} ran {ms} earlier ({outcome}) and changed this row first."


def _finish(d: Diagnosis, ev: Evidence) -> Diagnosis:
    hints = list(_HINTS.get(d.cause, ()))
    f = ev.facts
    if d.cause == "replica_lag" and ev.bind is not None and ev.bind.role == "proxy":
        hints.append("proxy_routing")
    if d.cause == "rowcount_unreliable" and (f.dialect == "mysql" or (ev.bind and ev.bind.system in ("mysql", "mariadb"))):
        hints.insert(0, "client_found_rows")
    if d.cause == "duplicate_submission" and not (ev.context and ev.context.get("kind") == "celery"):
        hints = [h for h in hints if h != "task_dedup"]
    d.hints = hints
    d.evidence = d.evidence[:20]
    return d


# --------------------------------------------------------------------------- observations


def _observe(ev: Evidence, d: Diagnosis) -> None:
    """Sentences that hold whatever the verdict; sets primary_row."""
    f = ev.facts
    p = ev.probe
    if p is not None and p.ran and p.row is not None:
        d.primary_row = p.row
        where = f"'{p.bind}'" if p.bind else "the primary"
        if p.row == "present" and not p.absent:
            d.evidence.append(f"The row exists on the primary {where} (probe, {p.elapsed_ms or 0:.1f} ms).")
        elif p.present and p.absent:
            d.evidence.append(
                f"On the primary {where}, {len(p.absent)} of {len(p.present) + len(p.absent)} rows are gone: "
                f"{[_safe.identity(i, ev.redact) for i in p.absent[:5]]} (probe)."
            )
            d.primary_row = "absent"
        else:
            d.evidence.append(f"The row does not exist on the primary {where} (probe, {p.elapsed_ms or 0:.1f} ms).")
    elif p is not None and (p.skipped or p.error):
        d.evidence.append(f"Row not checked on the primary: {p.skipped or p.error}.")
    if d.primary_row == "unknown":
        last = _last_committed(ev.writes)
        if last is not None:
            d.primary_row = "absent" if last.verb == "DELETE" else "present"
    if f.source == "message":
        d.evidence.append(
            "Only the message survived (no traceback frames: pickled, or cleared by a task runner), "
            "so identity and bind are unknown."
        )
    if f.in_flush and f.error == "object_deleted":
        d.evidence.append("The refresh happened inside a flush: an expired object was modified or deleted without being read.")
    if f.expire_on_commit and f.error == "object_deleted" and f.attribute_names and f.mapper is not None:
        try:
            all_cols = {p.key for p in f.mapper.column_attrs}
            if set(f.attribute_names) >= all_cols:
                d.evidence.append("All attributes were expired (expire_on_commit=True), so reading any of them re-SELECTed the row.")
        except Exception:
            pass
    if ev.lag:
        d.evidence.append(_lag_sentence(ev.lag))


def _lag_sentence(lag: dict[str, Any]) -> str:
    if lag.get("error"):
        return f"Replica lag could not be read: {_safe.text(lag['error'], 200)}."
    parts = []
    if isinstance(lag.get("lag_seconds"), int | float):
        parts.append(f"{lag['lag_seconds']:.3f} s")
    if isinstance(lag.get("lag_bytes"), int):
        parts.append(f"{lag['lag_bytes']} bytes of WAL")
    gtid = lag.get("gtid")
    if isinstance(gtid, dict) and gtid:
        parts.append("GTID " + ", ".join(f"{k} {v}" for k, v in gtid.items() if v is not None))
    caught = lag.get("caught_up")
    state = " (not caught up)" if caught is False else " (caught up)" if caught is True else ""
    how = f" by {lag['measured_by']}" if lag.get("measured_by") else ""
    return f"The replica was behind by {' / '.join(parts) or 'an unknown amount'}{state}, measured{how}."


def _last_committed(writes: list[WriteRecord]) -> WriteRecord | None:
    for w in reversed(writes):
        if w.committed_at is not None and not w.rolled_back:
            return w
    return None


def _other_writer(ev: Evidence, verbs: tuple[str, ...]) -> WriteRecord | None:
    """A committed write of this identity by another session of this process."""
    mine = ev.facts.session_key
    for w in reversed(ev.writes):
        if w.verb in verbs and w.committed_at is not None and not w.rolled_back and (mine is None or w.session_key != mine):
            return w
    return None


def _write_sentence(ev: Evidence, w: WriteRecord, what: str) -> str:
    engine = w.info.engine() if w.info is not None else None
    bind = f" on '{bind_info(engine).name}'" if engine is not None else ""
    same_thread = w.thread == threading.get_ident()
    who = "Another session in this thread" if same_thread else f"A session in thread {w.thread}"
    if w.session_key is not None and w.session_key == ev.facts.session_key:
        who = "This session"
    op = f" (operation {w.operation_id})" if w.operation_id else ""
    return f"{who}{op} committed a {what} of {_ident(ev)}{bind} {_ago(ev, w.committed_at or w.at)} before this explanation."


# --------------------------------------------------------------------------- ObjectDeletedError


def _object_deleted(ev: Evidence, d: Diagnosis) -> None:
    role = ev.bind.role if ev.bind is not None else "unknown"
    fail = ev.failing_statement
    write = ev.last_write
    served = (
        f"The refresh SELECT of {_ident(ev)} ran on {_bind_label(fail, ev)}"
        + (f", {_between(write.at, fail.at)} after the {write.verb} on {_bind_label(write, ev)}" if fail and write else "")
        + (" was committed" if fail and write and ev.last_commit_after_write else "")
        + "."
    )
    recent_write = _last_committed(ev.writes)
    pk_change = next((w for w in reversed(ev.writes) if w.new_identity is not None and w.committed_at), None)
    deleter = _other_writer(ev, ("DELETE",))

    if role in ("replica", "proxy"):
        if d.primary_row == "present":
            d.verdict("replica_lag", 0.95, served, "The row is on the primary, so it was not deleted: the replica had not applied the write yet.")
        elif d.primary_row == "absent":
            if pk_change is not None:
                d.verdict("primary_key_changed", 0.8, _write_sentence(ev, pk_change, "primary-key change"), served)
            else:
                d.verdict("row_deleted", 0.8, served, "The row is gone on the primary too: it was deleted, not delayed.")
        else:
            extra = _write_sentence(ev, recent_write, recent_write.verb) if recent_write else ""
            conf = 0.8 if (write is not None or recent_write is not None) else 0.6
            d.verdict("replica_lag", conf, served, extra, "The refresh read a replica; without a probe on the primary, a real delete is not excluded.")
        return
    if d.primary_row == "absent" or (d.primary_row == "unknown" and (deleter or pk_change)):
        if pk_change is not None:
            d.verdict("primary_key_changed", 0.85, _write_sentence(ev, pk_change, "primary-key change"))
        elif deleter is not None:
            d.verdict("row_deleted", 0.9, _write_sentence(ev, deleter, "DELETE"))
        else:
            d.verdict(
                "row_deleted",
                0.8 if ev.probe is not None and ev.probe.ran else 0.6,
                "Another transaction deleted the row (or changed its primary key) after this session last loaded it.",
            )
        return
    if d.primary_row == "present":
        primary_engine = ev.facts.engine
        probe_bind = ev.probe.bind if ev.probe else None
        if ev.bind is not None and probe_bind and ev.bind.name != probe_bind and role == "unknown":
            d.verdict(
                "replica_lag", 0.7, served,
                f"The refresh ran on '{ev.bind.name}', not on the primary '{probe_bind}' where the row exists: "
                "a replica (or a read/write split) that had not applied the write.",
            )
            return
        _ = primary_engine
        d.verdict(
            "unknown", 0.4,
            "The row exists on the primary but the refresh did not see it on the same server: a do_orm_execute "
            "filter (soft delete, tenant), row-level security, or an uncommitted bulk/raw DELETE in this same "
            "transaction (synchronize_session=False).",
        )
        return
    d.verdict(
        "row_deleted", 0.5,
        f"The row of {_ident(ev)} was not found when the session re-loaded it; without a probe on the primary "
        "this most often means another transaction deleted it.",
    )


# --------------------------------------------------------------------------- StaleDataError


def _stale_data(ev: Evidence, d: Diagnosis) -> None:
    f = ev.facts
    p = ev.probe
    exp, got = f.expected, f.matched
    counts = f"The {f.operation.upper()} of {_ident(ev)} expected {exp} row(s) and matched {got}."
    if exp is not None and got is not None:
        d.evidence.append(counts)
    detected = None
    if f.engine is not None:
        info = engine_info(f.engine)
        detected = info.detected if info is not None else None
    if isinstance(got, int) and got < 0:
        d.verdict("rowcount_unreliable", 0.95, f"The driver reported {got} matched rows: it does not report row counts for this statement.")
        return
    if isinstance(got, int) and isinstance(exp, int) and got > exp:
        d.verdict(
            "rowcount_unreliable", 0.85,
            f"More rows matched ({got}) than were updated ({exp}): triggers or cascades counted by the driver, "
            "or a primary key that is not unique in the database.",
        )
        return
    if detected is not None and detected.details.get("client_found_rows") is False:
        d.verdict(
            "rowcount_unreliable", 0.9,
            "The connection was made without CLIENT_FOUND_ROWS: MySQL/MariaDB then count changed rows, not "
            "matched rows, so an UPDATE writing the values already stored reports 0.",
        )
        return
    if f.site in ("load_version_check", "merge_version_check"):
        d.verdict(
            "concurrent_update", 0.85,
            f"The version in memory ({_safe.scalar(f.version_expected)}) differs from the database's "
            f"({_safe.scalar(f.version_actual)}): another transaction updated the row since it was loaded.",
        )
        return
    if f.site == "stale_parent":
        d.verdict("unknown", 0.3, "A previous parent of the object was garbage-collected within the session; nothing in the database is involved.")
        return
    pk_change = next((w for w in reversed(ev.writes) if w.new_identity is not None and w.committed_at), None)
    if p is not None and p.ran and p.row is not None:
        if p.absent:
            if pk_change is not None:
                d.verdict("primary_key_changed", 0.85, _write_sentence(ev, pk_change, "primary-key change"))
            else:
                other = _other_writer(ev, ("DELETE",))
                d.verdict("row_deleted", 0.9, _write_sentence(ev, other, "DELETE") if other else "Another transaction deleted the row before this UPDATE/DELETE ran.")
            return
        key = f.identity or (p.present[0] if p.present else None)
        values = p.values.get(key, {}) if key is not None else {}
        if f.version_column:
            actual = values.get(f.version_column)
            if actual != f.version_expected:
                same_values = bool(f.set_values) and all(values.get(k) == v for k, v in f.set_values[0].items())
                sentence = (
                    f"On the primary the version is {_safe.scalar(actual)}, this session expected "
                    f"{_safe.scalar(f.version_expected)}: another transaction updated the row first."
                )
                replica_read = [e for e in f.session_engines if _role_of(e) == "replica"]
                if replica_read:
                    d.verdict("replica_lag", 0.6, sentence, "The object was loaded through a replica, which served an old version.")
                elif same_values and actual == f.version_new:
                    d.verdict(
                        "duplicate_submission", 0.7, sentence,
                        "The row already holds exactly the values this UPDATE wrote: the same change was submitted twice.",
                    )
                else:
                    d.verdict("concurrent_update", 0.9, sentence)
                return
        same = bool(f.set_values) and all(values.get(k) == v for k, v in f.set_values[0].items())
        mysql = f.dialect == "mysql" or (ev.bind is not None and ev.bind.system in ("mysql", "mariadb"))
        if mysql and same:
            d.verdict(
                "rowcount_unreliable", 0.85,
                "The row exists and already holds the values written: a no-op UPDATE, which MySQL/MariaDB count as "
                "0 rows unless the connection has CLIENT_FOUND_ROWS.",
            )
        else:
            d.verdict(
                "rowcount_unreliable", 0.55,
                "The row exists on the primary and matches the statement's WHERE now: either it was deleted and "
                "re-created in between, or a trigger, view or driver reported a wrong count.",
            )
        return
    deleter = _other_writer(ev, ("DELETE",))
    updater = _other_writer(ev, ("UPDATE",))
    if pk_change is not None:
        d.verdict("primary_key_changed", 0.75, _write_sentence(ev, pk_change, "primary-key change"))
    elif deleter is not None:
        d.verdict("row_deleted", 0.8, _write_sentence(ev, deleter, "DELETE"))
    elif updater is not None and f.version_column:
        d.verdict("concurrent_update", 0.8, _write_sentence(ev, updater, "UPDATE"))
    elif f.version_column:
        d.verdict(
            "concurrent_update", 0.6,
            f"The statement looked for version {_safe.scalar(f.version_expected)} of a versioned row and found none: "
            "another transaction updated (or deleted) it first.",
        )
    else:
        d.verdict(
            "row_deleted", 0.55,
            "An UPDATE/DELETE by primary key matched no row: most often another transaction deleted it first "
            "(check the primary to be sure).",
        )


def _role_of(engine: Any) -> str:
    try:
        return bind_info(engine).role
    except Exception:
        return "unknown"
