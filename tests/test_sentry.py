"""The Sentry integration, end to end: real sentry-sdk, real HttpTransport, a local ingest server.

Every assertion is on the event as the server received it (after processors,
serialization, ``before_send`` and the gzip envelope), never on an in-process object.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from sqlalchemy import Column, Integer, String, TypeDecorator
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, declarative_base
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

import sa_explain
from sa_explain.sentry import SAExplain, _event_processor, before_send, clean_value
from tests.orm_errors import (
    Device,
    deleted_after_commit,
    detached_state,
    make_engine,
    stale_update,
)
from tests.sentry_server import SentryServer

pytestmark = pytest.mark.filterwarnings(
    "ignore:The send_default_pii option is deprecated:DeprecationWarning"
)

SECRET = "s3cret-param-value"
ROOT = Path(__file__).resolve().parent.parent

# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[SentryServer]:
    with SentryServer() as srv:
        yield srv


@pytest.fixture
def sentry(server: SentryServer) -> Iterator[Callable[..., None]]:
    """``sentry(**init_kwargs)``: init sentry-sdk against the local server; closed afterwards."""

    def init(**kwargs: Any) -> None:
        kwargs.setdefault("integrations", [SAExplain()])
        sentry_sdk.init(dsn=server.dsn(), release="test@1", environment="test", **kwargs)

    server.clear()
    with sentry_sdk.isolation_scope():
        yield init
        sentry_sdk.flush(timeout=5)
    client = sentry_sdk.get_client()
    client.close(timeout=5)
    sentry_sdk.init()  # an inactive client: later tests start clean


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(tmp_path)
    yield eng
    eng.dispose()


def capture_object_deleted(engine: Engine) -> str | None:
    """Attribute refresh after commit, the row deleted by another session meanwhile."""
    with deleted_after_commit(engine) as device:
        try:
            _ = device.name
        except ObjectDeletedError:
            return sentry_sdk.capture_exception()
    raise AssertionError("no ObjectDeletedError")


def capture_stale_data(engine: Engine, new_name: str = "renamed") -> str | None:
    """UPDATE of a row another session deleted: 0 rows matched."""
    with stale_update(engine, new_name) as session:
        try:
            session.flush()
        except StaleDataError:
            return sentry_sdk.capture_exception()
    raise AssertionError("no StaleDataError")


def last_exception(event: dict[str, Any]) -> dict[str, Any]:
    return dict(event["exception"]["values"][-1])


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def assert_well_formed(event: dict[str, Any]) -> None:
    """What any explained event must satisfy, whatever the sentry-sdk version."""
    ctx = event["contexts"]["sa_explain"]
    assert "type" not in ctx
    assert all(len(s) <= 1024 for s in strings(ctx)), "a context string would be cut by 2.0-2.30"
    assert len(json.dumps(ctx)) <= 16_000
    assert len(json.dumps(event)) < 200_000
    for key, value in event.get("tags", {}).items():
        if key.startswith("sa_explain."):
            assert re.fullmatch(r"[a-zA-Z0-9_.:-]{1,32}", key)
            assert isinstance(value, str) and 0 < len(value) <= 200 and "\n" not in value


def sa_crumbs(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        c
        for c in event.get("breadcrumbs", {}).get("values", [])
        if c.get("category") == "sa_explain.statement"
    ]


# --- the two errors ---------------------------------------------------------------------


def test_object_deleted_event(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    sentry()
    event = server.event(capture_object_deleted(engine))

    ctx = event["contexts"]["sa_explain"]
    assert ctx["schema"] == "sa_explain/1"
    assert ctx["error"] == "object_deleted"
    assert ctx["exception"] == "sqlalchemy.orm.exc.ObjectDeletedError"
    assert ctx["table"] == "device"
    assert ctx["mapper"].endswith("Device")
    assert ctx["identity"] == [42]
    assert ctx["params"] is None
    assert_well_formed(event)

    assert event["tags"]["sa_explain.error"] == "object_deleted"
    assert event["tags"]["sa_explain.cause"] == ctx["cause"]
    assert event["tags"]["sa_explain.table"] == "device"
    assert event["tags"]["sa_explain.bind_role"] == ctx["bind"]["role"]
    assert "42" not in event["tags"].values()
    assert event["fingerprint"] == ["sa-explain", "object_deleted", ctx["mapper"], ctx["cause"]]

    value = last_exception(event)["value"]
    assert "0x" not in value
    assert value.startswith("Instance '<Device [42]>' has been deleted")

    crumbs = sa_crumbs(event)
    assert crumbs, "the refresh SELECT was tracked and should be a breadcrumb"
    assert len(crumbs) == len(ctx["statements"])
    assert all(c["type"] == "query" and "bind" in c["data"] for c in crumbs)
    # The newest statement is the refresh SELECT, on this test's engine.
    assert crumbs[-1]["message"].upper().startswith("SELECT")
    assert crumbs[-1]["data"]["bind"] == ctx["bind"]["name"]
    assert any(c["message"].upper().startswith("SELECT") for c in crumbs)
    assert all("sql" not in s for s in ctx["statements"])


def test_stale_data_event(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    sentry()
    event = server.event(capture_stale_data(engine))

    ctx = event["contexts"]["sa_explain"]
    assert ctx["error"] == "stale_data"
    assert ctx["operation"] == "update"
    assert ctx["table"] == "device"
    assert ctx["rows"]["expected"] == 1
    assert ctx["rows"]["matched"] == 0
    assert_well_formed(event)
    assert event["tags"]["sa_explain.error"] == "stale_data"
    assert event["fingerprint"][:2] == ["sa-explain", "stale_data"]

    value = last_exception(event)["value"]
    assert "expected to update 1 row(s); 0 were matched" in value
    if ctx["identity"] is not None:
        assert value.endswith(f"(<Device {json.dumps(ctx['identity'])}>)")
    assert any(c["message"].upper().startswith("UPDATE") for c in sa_crumbs(event))


def test_capture_runs_no_sql_without_probes(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    """Reading an expired attribute in a processor would re-SELECT (or raise again)."""
    from sqlalchemy import event as sa_event

    sentry()
    ran: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        ran.append(statement)

    with deleted_after_commit(engine) as device:
        try:
            _ = device.name
        except ObjectDeletedError:
            sa_event.listen(engine, "before_cursor_execute", record)
            try:
                event_id = sentry_sdk.capture_exception()
            finally:
                sa_event.remove(engine, "before_cursor_execute", record)
    assert server.event(event_id)["contexts"]["sa_explain"]["error"] == "object_deleted"
    assert ran == []


@pytest.mark.parametrize("probes", [None, False])
def test_probe_option_reaches_explain(
    sentry: Callable[..., None], server: SentryServer, engine: Engine, probes: bool | None
) -> None:
    import sa_explain

    sa_explain.configure(primary=engine, probes=True)
    sentry(integrations=[SAExplain(probes=probes)])
    ctx = server.event(capture_object_deleted(engine))["contexts"]["sa_explain"]
    assert bool((ctx["probe"] or {}).get("ran")) is (probes is None)
    if probes is None:
        assert ctx["primary_row"] == "absent"
        assert ctx["cause"] == "row_deleted"


def test_wrapped_error_is_explained_and_the_right_entry_rewritten(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    sentry()
    with deleted_after_commit(engine) as device:
        try:
            try:
                _ = device.name
            except ObjectDeletedError as exc:
                raise RuntimeError("could not render device page") from exc
        except RuntimeError:
            event_id = sentry_sdk.capture_exception()
    event = server.event(event_id)
    values = event["exception"]["values"]
    assert [v["type"] for v in values] == ["ObjectDeletedError", "RuntimeError"]
    assert values[0]["value"].startswith("Instance '<Device [42]>'")
    assert values[1]["value"] == "could not render device page"
    assert event["contexts"]["sa_explain"]["via"] == "cause"


def test_session_refresh_error(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    """``Session.refresh`` raises InvalidRequestError("Could not refresh instance …")."""
    from sqlalchemy.exc import InvalidRequestError

    sentry()
    with deleted_after_commit(engine) as device:
        session = Session.object_session(device)
        assert session is not None
        try:
            session.refresh(device)
        except InvalidRequestError:
            event = server.event(sentry_sdk.capture_exception())
    ctx = event["contexts"]["sa_explain"]
    assert ctx["error"] == "object_deleted"
    assert ctx["site"] == "session_refresh"
    value = last_exception(event)["value"]
    assert "0x" not in value
    assert "'<Device [42]>'" in value
    assert_well_formed(event)


def test_pending_rollback_after_a_swallowed_stale_data_error(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    """The follow-up PendingRollbackError is not chained to the StaleDataError; still explained."""
    from sqlalchemy.exc import PendingRollbackError

    sentry()
    with stale_update(engine) as session:
        with contextlib.suppress(StaleDataError):  # the application forgets to roll back
            session.flush()
        try:
            session.get(Device, 1)
        except PendingRollbackError:
            event = server.event(sentry_sdk.capture_exception())
    assert last_exception(event)["type"] == "PendingRollbackError"
    ctx = event["contexts"]["sa_explain"]
    assert ctx["error"] == "stale_data"
    assert ctx["via"] == "pending_rollback"
    assert event["tags"]["sa_explain.error"] == "stale_data"
    assert_well_formed(event)


# --- before_send --------------------------------------------------------------------------


def test_before_send_path(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    seen: list[dict[str, Any]] = []

    def user_before_send(event: Any, hint: Any) -> Any:
        event = before_send(event, hint)
        seen.append(copy.deepcopy(event))
        return event

    sentry(integrations=[], before_send=user_before_send)
    event = server.event(capture_object_deleted(engine))
    assert seen, "before_send ran"
    ctx = event["contexts"]["sa_explain"]
    assert ctx["error"] == "object_deleted"
    assert event["tags"]["sa_explain.error"] == "object_deleted"
    assert event["fingerprint"][0] == "sa-explain"
    assert last_exception(event)["value"].startswith("Instance '<Device [42]>'")
    crumbs = sa_crumbs(event)
    assert crumbs and all(isinstance(c["timestamp"], str) for c in crumbs)
    assert_well_formed(event)


def test_before_send_on_an_event_without_breadcrumbs(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    """No stock crumbs to copy the timestamp type from: ours must still be JSON (strings)."""
    import sa_explain

    sa_explain.install()  # what SAExplain.setup_once does; before_send users call it
    sentry(default_integrations=False, integrations=[], before_send=before_send)
    sentry_sdk.get_isolation_scope().clear_breadcrumbs()
    sentry_sdk.get_current_scope().clear_breadcrumbs()
    event = server.event(capture_object_deleted(engine))
    crumbs = sa_crumbs(event)
    assert crumbs and all(isinstance(c["timestamp"], str) for c in crumbs)
    assert event["contexts"]["sa_explain"]["error"] == "object_deleted"


def test_before_send_with_the_integration_does_not_run_twice(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    sentry(before_send=before_send)
    event = server.event(capture_object_deleted(engine))
    assert len(sa_crumbs(event)) == len(event["contexts"]["sa_explain"]["statements"])


# --- PII ------------------------------------------------------------------------------------


def _params_sent(event: dict[str, Any]) -> bool:
    ctx = event["contexts"]["sa_explain"]
    ours = json.dumps([ctx, sa_crumbs(event)])
    return ctx["params"] is not None or SECRET in ours


@pytest.mark.parametrize(
    ("init_kwargs", "expected"),
    [
        pytest.param({}, False, id="default"),
        pytest.param({"send_default_pii": True}, True, id="send_default_pii"),
        pytest.param(
            {"send_default_pii": True, "integrations": [SAExplain(include_params=False)]},
            False,
            id="integration-option-wins",
        ),
        pytest.param({"data_collection": {}}, True, id="data_collection-defaults"),
        pytest.param(
            {"data_collection": {"database_query_data": False}}, False, id="data_collection-off"
        ),
    ],
)
def test_params_only_when_pii_allowed(
    sentry: Callable[..., None],
    server: SentryServer,
    engine: Engine,
    init_kwargs: dict[str, Any],
    expected: bool,
) -> None:
    sentry(**init_kwargs)
    event = server.event(capture_stale_data(engine, new_name=SECRET))
    ctx = event["contexts"]["sa_explain"]
    assert _params_sent(event) is expected
    if expected:
        assert SECRET in json.dumps(ctx["params"])


# --- grouping and user settings ----------------------------------------------------------------


def test_user_fingerprint_is_kept(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    sentry()
    with sentry_sdk.new_scope() as scope:
        scope.fingerprint = ["my-grouping"]
        event_id = capture_object_deleted(engine)
    event = server.event(event_id)
    assert event["fingerprint"] == ["my-grouping"]
    assert event["contexts"]["sa_explain"]["error"] == "object_deleted"


def test_options_off(sentry: Callable[..., None], server: SentryServer, engine: Engine) -> None:
    sentry(integrations=[SAExplain(fingerprint=False, strip_address=False, breadcrumbs=False)])
    event = server.event(capture_object_deleted(engine))
    assert "fingerprint" not in event
    assert re.search(r"<Device at 0x[0-9a-f]+>", last_exception(event)["value"])
    assert not sa_crumbs(event)
    assert event["contexts"]["sa_explain"]["error"] == "object_deleted"


def test_second_init_options_win(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    sentry()
    sentry(integrations=[SAExplain(fingerprint=False)])
    event = server.event(capture_object_deleted(engine))
    assert "fingerprint" not in event
    assert "sa_explain" in event["contexts"]


@pytest.mark.parametrize(
    "init_kwargs",
    [
        pytest.param({"integrations": []}, id="not-listed"),
        pytest.param({"disabled_integrations": [SAExplain]}, id="listed-and-disabled"),
        pytest.param({"integrations": [], "disabled_integrations": [SAExplain]}, id="disabled"),
    ],
)
def test_disabled_integration(
    sentry: Callable[..., None], server: SentryServer, engine: Engine, init_kwargs: dict[str, Any]
) -> None:
    sentry(**init_kwargs)
    event = server.event(capture_object_deleted(engine))
    assert "sa_explain" not in event.get("contexts", {})
    assert not any(k.startswith("sa_explain") for k in event.get("tags", {}))
    assert re.search(r"<Device at 0x[0-9a-f]+>", last_exception(event)["value"])


def test_unrelated_error_untouched(sentry: Callable[..., None], server: SentryServer) -> None:
    sentry()
    try:
        raise ValueError("not an ORM error <Thing at 0x7f00deadbeef>")
    except ValueError:
        event = server.event(sentry_sdk.capture_exception())
    assert "sa_explain" not in event.get("contexts", {})
    assert not any(k.startswith("sa_explain") for k in event.get("tags", {}))
    assert "fingerprint" not in event
    assert last_exception(event)["value"] == "not an ORM error <Thing at 0x7f00deadbeef>"


def test_transactions_untouched(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    sentry(traces_sample_rate=1.0)
    with sentry_sdk.start_transaction(name="explain-tx"), Session(engine) as s:
        s.get(Device, 42)
    sentry_sdk.flush(timeout=5)
    txs = [i.payload for i in server.items if i.type == "transaction"]
    assert txs and all("sa_explain" not in t.get("contexts", {}) for t in txs)


# --- logging -------------------------------------------------------------------------------------


def test_logging_exception_carries_the_explanation(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    sentry()
    log = logging.getLogger("tests.sentry.logging_path")
    with deleted_after_commit(engine) as device:
        try:
            _ = device.name
        except ObjectDeletedError:
            log.exception("device page failed")
    event = server.wait_for(lambda e: e.get("logger") == "tests.sentry.logging_path")
    assert event["contexts"]["sa_explain"]["error"] == "object_deleted"
    assert event["tags"]["sa_explain.error"] == "object_deleted"
    assert last_exception(event)["value"].startswith("Instance '<Device [42]>'")
    assert_well_formed(event)


class _Marker(logging.Filter):
    """Runs after ExplainFilter and marks its dict, to prove the context is that dict."""

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "sa_explain", None)
        if isinstance(data, dict):
            data["marker"] = "from-the-log-record"
        return True


def test_logging_filter_result_is_rehomed_from_extra(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    from sa_explain.logging import ExplainFilter

    sentry()
    log = logging.getLogger("tests.sentry.filter_path")
    filters = [ExplainFilter(include_params=True), _Marker()]
    for f in filters:
        log.addFilter(f)
    try:
        with stale_update(engine, new_name=SECRET) as session:
            try:
                session.flush()
            except StaleDataError:
                log.exception("saving failed")
    finally:
        for f in filters:
            log.removeFilter(f)
    event = server.wait_for(lambda e: e.get("logger") == "tests.sentry.filter_path")
    ctx = event["contexts"]["sa_explain"]
    assert ctx["marker"] == "from-the-log-record"
    assert ctx["error"] == "stale_data"
    assert len(ctx) > 10, "the whole dict, not the 10-key databag trim of extra"
    assert "sa_explain" not in event.get("extra", {})
    # The filter included params; Sentry's PII settings (off) still gate what is sent.
    assert ctx["params"] is None
    assert SECRET not in json.dumps([ctx, sa_crumbs(event)])


def test_own_loggers_never_become_events(sentry: Callable[..., None], server: SentryServer) -> None:
    sentry()
    logging.getLogger("sa_explain.pipeline").error("would recurse if it became an event")
    logging.getLogger("sa_explain").error("same")
    logging.getLogger("tests.sentry.after_own").error("marker")
    server.wait_for(lambda e: e.get("logger") == "tests.sentry.after_own")
    sentry_sdk.flush(timeout=5)
    assert not [e for e in server.events if str(e.get("logger", "")).startswith("sa_explain")]


def test_structlog_stdlib_path(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    structlog = pytest.importorskip("structlog")
    from sa_explain.structlog import add_orm_explanation

    sentry()
    structlog.configure(
        processors=[add_orm_explanation, structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    try:
        log = structlog.get_logger("tests.sentry.structlog_path")
        with deleted_after_commit(engine) as device:
            try:
                _ = device.name
            except ObjectDeletedError:
                log.exception("device page failed")
    finally:
        structlog.reset_defaults()
    event = server.wait_for(lambda e: e.get("logger") == "tests.sentry.structlog_path")
    assert event["contexts"]["sa_explain"]["error"] == "object_deleted"
    assert "sa_explain" not in event.get("extra", {})


def test_structlog_sentry_copy_is_moved_not_duplicated(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    """structlog-sentry sends ``contexts["structlog"]`` = the event dict, with exc_info in the hint.

    Built here as structlog_sentry.SentryProcessor builds it (its ``_get_event_and_hint``),
    so the test needs no extra package; the real processor is covered below when installed.
    """
    sentry()
    with deleted_after_commit(engine) as device:
        try:
            _ = device.name
        except ObjectDeletedError as exc:
            from sa_explain.logging import explain_dict

            precomputed = explain_dict(exc, include_params=None, probes=None)
            assert precomputed is not None
            precomputed["marker"] = "from-structlog"
            event_dict = {"event": "failed", "level": "error", "sa_explain": precomputed}
            event_id = sentry_sdk.capture_event(
                {"level": "error", "contexts": {"structlog": event_dict}},
                hint={"exc_info": (type(exc), exc, exc.__traceback__)},
            )
    event = server.event(event_id)
    assert event["contexts"]["sa_explain"]["marker"] == "from-structlog"
    assert event["contexts"]["structlog"] == {"event": "failed", "level": "error"}


def test_structlog_sentry_processor(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    structlog = pytest.importorskip("structlog")
    structlog_sentry = pytest.importorskip("structlog_sentry")
    from sa_explain.structlog import add_orm_explanation

    sentry()
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            add_orm_explanation,
            structlog_sentry.SentryProcessor(event_level=logging.ERROR),
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.WriteLoggerFactory(file=io.StringIO()),
        cache_logger_on_first_use=False,
    )
    try:
        with deleted_after_commit(engine) as device:
            try:
                _ = device.name
            except ObjectDeletedError:
                structlog.get_logger().exception("failed")
    finally:
        structlog.reset_defaults()
    event = server.wait_for(lambda e: "structlog" in e.get("contexts", {}))
    assert event["contexts"]["sa_explain"]["error"] == "object_deleted"
    assert "sa_explain" not in event["contexts"]["structlog"]
    assert last_exception(event)["value"].startswith("Instance '<Device [42]>'")


def test_message_only_log_untouched(sentry: Callable[..., None], server: SentryServer) -> None:
    sentry()
    logging.getLogger("tests.sentry.message_only").error("no exc_info here")
    event = server.wait_for(lambda e: e.get("logger") == "tests.sentry.message_only")
    assert "sa_explain" not in event.get("contexts", {})


# --- hostile input: the event always arrives, intact ---------------------------------------------


class Hostile:
    """Everything that can raise, raises."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"hostile attribute {name}")

    def __repr__(self) -> str:
        raise RuntimeError("hostile repr")

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("hostile eq")

    def __hash__(self) -> int:
        raise RuntimeError("hostile hash")

    def __bool__(self) -> bool:
        raise RuntimeError("hostile bool")

    def __len__(self) -> int:
        raise RuntimeError("hostile len")

    def __iter__(self) -> Iterator[Any]:
        raise RuntimeError("hostile iter")


class UnprintableDeleted(ObjectDeletedError):
    def __str__(self) -> str:
        raise RuntimeError("str() of this exception raises")


def test_exception_whose_str_raises(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    sentry()
    state = detached_state(engine)
    try:
        raise UnprintableDeleted(state)
    except ObjectDeletedError:
        event = server.event(sentry_sdk.capture_exception())
    assert last_exception(event)["type"] == "UnprintableDeleted"
    if "sa_explain" in event.get("contexts", {}):
        assert_well_formed(event)


def test_cyclic_chain(sentry: Callable[..., None], server: SentryServer, engine: Engine) -> None:
    sentry()
    with deleted_after_commit(engine) as device:
        try:
            _ = device.name
        except ObjectDeletedError as exc:
            inner = exc
    outer = RuntimeError("outer")
    outer.__cause__ = inner
    inner.__context__ = outer  # a cycle: outer -> inner -> outer
    inner.__cause__ = outer
    event = server.event(sentry_sdk.capture_exception(outer))
    assert event["exception"]["values"]
    assert event["contexts"]["sa_explain"]["error"] == "object_deleted"
    assert_well_formed(event)


def _load_scalar_attributes(exc: BaseException) -> None:
    """Named like SQLAlchemy's raise site, with the locals it has — all of them hostile."""
    state = Hostile()
    mapper = Hostile()
    session = Hostile()
    identity_key = (Hostile(), (Hostile(),), None)
    result = (x for x in iter(int, 1))  # an endless generator: must never be advanced
    records = [Hostile()] * 3
    rows = Hostile()
    connection = Hostile()
    table = Hostile()
    del state, mapper, session, identity_key, result, records, rows, connection, table
    raise exc


def _emit_update_statements(exc: BaseException) -> None:
    records = [(Hostile(), Hostile(), Hostile(), Hostile(), Hostile(), Hostile(), Hostile())]
    table = Hostile()
    connection = Hostile()
    rows = Hostile()
    statement = Hostile()
    del records, table, connection, rows, statement
    raise exc


def test_frames_with_odd_locals(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    sentry()
    state = detached_state(engine)
    ids = []
    try:
        _load_scalar_attributes(ObjectDeletedError(state))
    except ObjectDeletedError:
        ids.append(sentry_sdk.capture_exception())
    try:
        _emit_update_statements(
            StaleDataError(
                "UPDATE statement on table 'device' expected to update 1 row(s); 0 were matched."
            )
        )
    except StaleDataError:
        ids.append(sentry_sdk.capture_exception())
    for event_id in ids:
        event = server.event(event_id)
        assert event["exception"]["values"]
        if "sa_explain" in event.get("contexts", {}):
            assert_well_formed(event)


class _Key:
    """A primary-key value that hashes and compares but cannot be printed."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __hash__(self) -> int:
        return hash(self.v)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and other.v == self.v

    def __repr__(self) -> str:
        raise RuntimeError("key repr")

    __str__ = __repr__


class _KeyType(TypeDecorator[Any]):
    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return value.v if isinstance(value, _Key) else value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return _Key(value)


OddBase = declarative_base()


class OddEntity(OddBase):  # type: ignore[valid-type,misc]
    """A mapped class whose instances and keys resist every dunder a tool might call."""

    __tablename__ = "odd_entity"
    id = Column(_KeyType, primary_key=True)
    name = Column(String(50))

    def __repr__(self) -> str:
        raise RuntimeError("entity repr")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("entity eq")

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise RuntimeError("entity bool")


def test_entity_and_key_that_cannot_be_printed(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    sentry()
    OddBase.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(OddEntity(id=_Key(7), name="x"))
        s.commit()
    session = Session(engine)
    odd = session.get(OddEntity, _Key(7))
    session.commit()
    with Session(engine) as other:
        other.delete(other.get(OddEntity, _Key(7)))
        other.commit()
    try:
        _ = odd.name
    except ObjectDeletedError:
        event = server.event(sentry_sdk.capture_exception())
    finally:
        session.close()
    assert last_exception(event)["type"] == "ObjectDeletedError"
    ctx = event["contexts"]["sa_explain"]
    assert ctx["error"] == "object_deleted"
    assert ctx["table"] == "odd_entity"
    assert last_exception(event)["value"].startswith("Instance '<OddEntity ")
    assert_well_formed(event)


def test_huge_message(sentry: Callable[..., None], server: SentryServer) -> None:
    sentry()
    table = "t" * 5000
    message = (
        f"UPDATE statement on table '{table}' expected to update 1 row(s); 0 were matched."
        + " padding" * 100_000
    )
    try:
        raise StaleDataError(message)
    except StaleDataError:
        event = server.event(sentry_sdk.capture_exception())
    assert last_exception(event)["type"] == "StaleDataError"
    ctx = event.get("contexts", {}).get("sa_explain")
    if ctx is not None:
        assert all(len(s) <= 1024 for s in strings(ctx))
        assert len(json.dumps(ctx)) <= 16_000
        assert all(len(v) <= 200 for k, v in event["tags"].items() if k.startswith("sa_explain"))
        assert all(len(p) <= 200 for p in event.get("fingerprint", []))


def test_odd_hints_and_event_shapes_arrive(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    sentry()
    state = detached_state(engine)

    def real() -> tuple[Any, ...]:
        # A fresh exception each time: DedupeIntegration drops a second capture of one.
        try:
            raise ObjectDeletedError(state)
        except ObjectDeletedError as exc:
            return (type(exc), exc, exc.__traceback__)

    # Only shapes sentry-sdk itself survives: `exception: None`, a str `contexts` or
    # breadcrumb values crash capture_event before any processor runs.
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"message": "exc_info without an exception"}, {"exc_info": (ValueError, "x", None)}),
        ({"message": "no exception values"}, {"exc_info": real()}),
        ({"message": "values not a list", "exception": {"values": "nope"}}, {"exc_info": real()}),
        ({"message": "exception without values", "exception": {}}, {"exc_info": real()}),
        ({"message": "tags not a dict", "tags": "nope"}, {"exc_info": real()}),
        ({"message": "hostile log record"}, {"log_record": Hostile()}),
    ]
    for event, hint in cases:
        event_id = sentry_sdk.capture_event(copy.deepcopy(event), hint=hint)
        received = server.event(event_id)
        assert received["message"] == event["message"]
        if "exception" in event:
            assert received.get("exception") == event["exception"]
    explained = server.event(sentry_sdk.capture_event({"message": "x"}, hint={"exc_info": real()}))
    assert explained["contexts"]["sa_explain"]["error"] == "object_deleted"


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


def test_oversized_and_odd_precomputed_explanation_is_capped(
    sentry: Callable[..., None], server: SentryServer, engine: Engine
) -> None:
    """Whatever a log record carries, the context stays small, JSON-safe and typeless."""
    import datetime as dt

    huge: dict[str, Any] = {
        "schema": "sa_explain/1",
        "type": "reserved by Sentry",
        "error": "object_deleted",
        "exception": "sqlalchemy.orm.exc.ObjectDeletedError",
        "message": "m" * 50_000,
        "mapper": "app.Device\nwith newline",
        "table": "t" * 500,
        "cause": "row_deleted",
        "bind": {"role": "replica\n" + "r" * 400},
        "confidence": float("nan"),
        "evidence": ["e" * 5000] * 200,
        "hints": [{"id": str(i), "title": "x" * 900, "detail": "d" * 5000} for i in range(50)],
        "statements": [
            {"sql": "SELECT " + "c" * 5000, "verb": "SELECT", "ago_ms": i} for i in range(500)
        ],
        "identities": [[i] for i in range(10_000)],
        "odd": [dt.datetime(2026, 1, 1), {1, 2}, _Unprintable(), b"\x00\xff"],
        "deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": "too deep"}}}}}}}},
    }
    sentry()
    log = logging.getLogger("tests.sentry.oversized")
    with deleted_after_commit(engine) as device:
        try:
            _ = device.name
        except ObjectDeletedError:
            log.exception("failed", extra={"sa_explain": huge})
    event = server.wait_for(lambda e: e.get("logger") == "tests.sentry.oversized")
    ctx = event["contexts"]["sa_explain"]
    assert_well_formed(event)
    assert ctx["error"] == "object_deleted"
    assert event["tags"]["sa_explain.table"] == "t" * 200
    assert "\n" not in event["tags"]["sa_explain.bind_role"]
    assert all(len(p) <= 200 and "\n" not in p for p in event["fingerprint"])
    assert len(sa_crumbs(event)) <= 20


def _dict_with_broken_copy() -> dict[str, Any]:
    class Broken(dict[str, Any]):
        def keys(self) -> Any:
            raise RuntimeError("no keys for you")

        def items(self) -> Any:
            raise RuntimeError("no items for you")

    return Broken(existing={"k": "v"})


@pytest.mark.parametrize("hint", [None, [("exc_info", 1)], "a string", 42])
def test_processor_with_non_dict_hint_returns_event_unchanged(engine: Engine, hint: Any) -> None:
    event: dict[str, Any] = {"message": "x", "exception": {"values": [{"type": "T", "value": "v"}]}}
    before = copy.deepcopy(event)
    assert before_send(event, hint) is event  # type: ignore[arg-type]
    assert _event_processor(event, hint) is event  # type: ignore[arg-type]
    assert event == before


def test_failure_leaves_event_exactly_unchanged(engine: Engine) -> None:
    with deleted_after_commit(engine) as device:
        try:
            _ = device.name
        except ObjectDeletedError as exc:
            hint = {"exc_info": (type(exc), exc, exc.__traceback__)}
            value = str(exc)
    event: dict[str, Any] = {
        "exception": {"values": [{"type": "ObjectDeletedError", "value": value}]},
        "tags": {"a": "b"},
        "extra": _dict_with_broken_copy(),
        "sa_explain_marker": True,
    }
    # The explanation is computed and most changes are built before the broken extra is
    # copied: none of them may be applied.
    event["extra"]["sa_explain"] = {"schema": "sa_explain/1"}
    before = {k: (v if k == "extra" else copy.deepcopy(v)) for k, v in event.items()}
    out = before_send(event, hint)  # type: ignore[arg-type]
    assert out is event
    assert event["tags"] == {"a": "b"}
    assert "contexts" not in event and "fingerprint" not in event and "breadcrumbs" not in event
    assert event["exception"] == before["exception"]


# --- small pieces -----------------------------------------------------------------------------------


def test_clean_value() -> None:
    ctx = {"identity": ["LH400", 12], "error": "object_deleted", "mapper": "app.Flight"}
    assert (
        clean_value(
            "Instance '<Flight at 0x7f1a2b3c>' has been deleted, or its row is otherwise not present.",
            ctx,
        )
        == "Instance '<Flight [\"LH400\", 12]>' has been deleted, or its row is otherwise not present."
    )
    assert clean_value("'<A at 0x1>' and '<B at 0x2>'", ctx) == "'<A>' and '<B>'"
    stale = {"identity": [7], "error": "stale_data", "mapper": "app.Device"}
    assert (
        clean_value("UPDATE … 0 were matched.", stale) == "UPDATE … 0 were matched. (<Device [7]>)"
    )
    assert clean_value("no identity <X at 0xff>", {"identity": None}) == "no identity <X>"


def test_lazy_package_exports() -> None:
    import sa_explain
    import sa_explain.sentry

    assert sa_explain.SAExplain is sa_explain.sentry.SAExplain
    assert sa_explain.before_send is sa_explain.sentry.before_send


def test_integration_options_are_checked() -> None:
    with pytest.raises(TypeError):
        SAExplain(fingerprint="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SAExplain(include_params=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SAExplain(record_attribute="not an identifier")
    assert SAExplain.identifier == "sa_explain"


def test_did_not_enable_without_sqlalchemy(tmp_path: Path) -> None:
    """setup_once raises DidNotEnable, which sentry_sdk.init re-raises for explicit integrations."""
    script = tmp_path / "no_sqlalchemy.py"
    script.write_text(
        "import sys\n"
        "import sa_explain.sentry as s\n"
        "for name in [m for m in sys.modules if m == 'sqlalchemy' or m.startswith('sqlalchemy.')]:\n"
        "    del sys.modules[name]\n"
        "sys.modules['sqlalchemy'] = None  # import sqlalchemy now raises ImportError\n"
        "import sentry_sdk\n"
        "from sentry_sdk.integrations import DidNotEnable\n"
        "try:\n"
        "    sentry_sdk.init(integrations=[s.SAExplain()])\n"
        "except DidNotEnable as exc:\n"
        "    print('DidNotEnable:', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert "DidNotEnable: sa-explain needs SQLAlchemy" in out.stdout, out.stderr


def test_importing_sa_explain_does_not_import_sentry_sdk() -> None:
    code = (
        "import sys, sa_explain, sa_explain.logging, sa_explain.structlog\n"
        "print('sentry_sdk' in sys.modules, 'structlog' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_query_tags_are_opt_in(
    sentry: Callable[..., None], server: SentryServer, engine: Engine, tmp_path: Path
) -> None:
    """The Sentry queries of docs/queries/sentry filter on tags; identity tags need query_tags=True."""
    sentry()
    event = server.event(capture_object_deleted(engine))
    tags = event["tags"]
    assert tags["sa_explain.bind_name"] == event["contexts"]["sa_explain"]["bind"]["name"]
    assert "sa_explain.identity" not in tags and "sa_explain.context_key" not in tags
    sentry(integrations=[SAExplain(query_tags=True)])
    (tmp_path / "second").mkdir()
    second = make_engine(tmp_path / "second")
    with sa_explain.operation("update_device", key="k" * 32, id="req-1"):
        event = server.event(capture_object_deleted(second))
    second.dispose()
    tags = event["tags"]
    assert tags["sa_explain.identity"] == "[42]"
    assert tags["sa_explain.context_key"] == "k" * 32 and tags["sa_explain.context_id"] == "req-1"
    assert all(len(k) <= 32 and len(v) <= 200 for k, v in tags.items())
