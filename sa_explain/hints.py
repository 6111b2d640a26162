"""The remediation catalogue: what to do about each cause, with a page that explains it.

Hints are data, not prose scattered through the diagnosis, so every surface shows the
same advice and ``docs/hints.md`` (one anchor per id) can be checked against this list
by a test.
"""

from __future__ import annotations

from sa_explain.explanation import Hint

DOCS = "https://github.com/sa-explain/sa-explain/blob/main/docs/hints.md#"


def _h(id: str, title: str, detail: str) -> Hint:
    return Hint(id=id, title=title, detail=detail, docs=DOCS + id.replace("_", "-"))


CATALOGUE: dict[str, Hint] = {
    h.id: h
    for h in (
        _h(
            "read_your_writes",
            "Route reads that follow a write to the primary",
            "After a commit, keep this session's (or this user's) reads on the primary for a window "
            "longer than the replica lag, or until the replica has replayed the commit's LSN/GTID. "
            "In a routing Session.get_bind, send everything to the primary once the session has flushed.",
        ),
        _h(
            "expire_on_commit_false",
            "Use expire_on_commit=False where objects are read after commit",
            "With expire_on_commit=True every attribute access after commit re-SELECTs the row, and a "
            "routing session sends that SELECT to a replica. expire_on_commit=False keeps the values "
            "you just wrote; the trade-off is that they are not refreshed from the database.",
        ),
        _h(
            "identity_not_attributes",
            "Read inspect(obj).identity instead of attributes after commit",
            "To log or return the id of an object after commit, use sqlalchemy.inspect(obj).identity: "
            "it needs no SQL and cannot raise ObjectDeletedError.",
        ),
        _h(
            "wait_for_replica",
            "Wait for the replica to catch up before reading",
            "Take a token at commit (PostgreSQL pg_current_wal_lsn(), MariaDB @@last_gtid, MySQL "
            "@@gtid_executed) and read from a replica only once it has replayed it "
            "(pg_last_wal_replay_lsn() >= token, MASTER_GTID_WAIT, WAIT_FOR_EXECUTED_GTID_SET).",
        ),
        _h(
            "proxy_routing",
            "Tell the proxy to send this read to the primary",
            "pgpool-II: prefix the query with /*NO LOAD BALANCE*/ or set disable_load_balance_on_write; "
            "ProxySQL: /* hostgroup=<writer> */ or GTID causal reads; MaxScale: causal_reads or "
            "-- maxscale route to master.",
        ),
        _h(
            "handle_missing_row",
            "Treat a row that disappeared as a normal outcome",
            "Another transaction deleted the row first. Catch ObjectDeletedError/StaleDataError where "
            "the object is used, roll back, and answer as if the row was not found (404, skip the task), "
            "instead of failing the request.",
        ),
        _h(
            "version_id_retry",
            "Add a version_id_col and retry on conflict",
            "Optimistic concurrency: map a version column (version_id_col) so concurrent updates are "
            "detected instead of silently lost, and retry the whole unit of work on StaleDataError after "
            "reloading the row.",
        ),
        _h(
            "select_for_update",
            "Lock the row while you change it (SELECT … FOR UPDATE)",
            "Load the row with select(...).with_for_update() (session.get(..., with_for_update=True)) "
            "in the transaction that updates it, so concurrent writers queue instead of racing.",
        ),
        _h(
            "idempotency_key",
            "Make repeated submissions idempotent with a key derived from the content",
            "Derive a deterministic key from the request or task payload (or accept the client's "
            "Idempotency-Key header), store it with a unique constraint, and return the first result "
            "for a repeat instead of doing the work twice.",
        ),
        _h(
            "unique_on_conflict",
            "Let the database arbitrate: unique constraints and ON CONFLICT",
            "Express the invariant as a unique constraint and write with INSERT … ON CONFLICT DO "
            "NOTHING/UPDATE (PostgreSQL, SQLite) or INSERT IGNORE / ON DUPLICATE KEY UPDATE (MySQL, "
            "MariaDB), so a duplicate cannot corrupt or fail.",
        ),
        _h(
            "task_dedup",
            "De-duplicate tasks with the same payload",
            "Two tasks with the same arguments raced on one row. A deterministic task id alone does "
            "not de-duplicate (Celery runs both messages); take a lock keyed by the payload digest "
            "(with expiry) or make the task idempotent. Retries keep their task id and are not duplicates.",
        ),
        _h(
            "client_found_rows",
            "Keep CLIENT_FOUND_ROWS on MySQL/MariaDB connections",
            "Without CLIENT_FOUND_ROWS the server reports changed rows, not matched rows, so an UPDATE "
            "that writes the values already stored reports 0. SQLAlchemy sets the flag; "
            "connect_args={'client_flag': …} or a custom creator replaces it: OR in "
            "CLIENT.FOUND_ROWS, and check proxies (ProxySQL mysql-client_found_rows).",
        ),
        _h(
            "rowcount_driver",
            "Check the driver's and triggers' row counts",
            "The driver reported an impossible count (-1, or more rows than expected). Triggers (SQL "
            "Server without SET NOCOUNT ON, PostgreSQL BEFORE triggers returning NULL), views with "
            "INSTEAD OF triggers and some drivers break row counts; if the count cannot be trusted, "
            "set the dialect's supports_sane_rowcount=False and rely on a version column.",
        ),
        _h(
            "immutable_primary_key",
            "Do not change primary keys behind the ORM's back",
            "The row may still exist under another primary key (a raw UPDATE of the key, ON UPDATE "
            "CASCADE). Use a surrogate key that never changes, or change keys through the ORM "
            "(passive_updates) so sessions follow.",
        ),
    )
}


def get(*ids: str) -> tuple[Hint, ...]:
    """The hints for ``ids`` in order, skipping unknown ids."""
    return tuple(CATALOGUE[i] for i in ids if i in CATALOGUE)
