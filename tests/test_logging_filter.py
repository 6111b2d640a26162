"""ExplainFilter with real stdlib logging, configured the way applications do it (dictConfig)."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

from sa_explain.logging import ExplainFilter, exception_from_exc_info
from tests.orm_errors import deleted_after_commit, detached_state, make_engine, stale_update


class ListHandler(logging.Handler):
    """Keeps the records it handles, so a test can look at what handlers really get."""

    records: list[logging.LogRecord]

    def __init__(self) -> None:
        super().__init__()
        self.records = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(tmp_path)
    yield eng
    eng.dispose()


@pytest.fixture
def configured() -> Iterator[tuple[logging.Logger, ListHandler, io.StringIO]]:
    """Logger ``tests.app`` with a JSON stream handler and a list handler, both filtered."""
    stream = io.StringIO()
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {
                "sa_explain": {"()": "sa_explain.logging.ExplainFilter"},
            },
            "formatters": {
                "json": {"()": "pythonjsonlogger.json.JsonFormatter"},
            },
            "handlers": {
                "json": {
                    "class": "logging.StreamHandler",
                    "stream": stream,
                    "formatter": "json",
                    "filters": ["sa_explain"],
                },
                "list": {"()": ListHandler, "filters": ["sa_explain"]},
            },
            "loggers": {
                "tests.app": {"handlers": ["json", "list"], "level": "INFO", "propagate": False},
            },
        }
    )
    logger = logging.getLogger("tests.app")
    handler = next(h for h in logger.handlers if isinstance(h, ListHandler))
    yield logger, handler, stream
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    logger.propagate = True


def test_object_deleted_through_dictconfig(
    configured: tuple[logging.Logger, ListHandler, io.StringIO], engine: Engine
) -> None:
    logger, handler, stream = configured
    with deleted_after_commit(engine) as device:
        try:
            _ = device.name
        except ObjectDeletedError:
            logger.exception("device page failed")
    (record,) = handler.records
    data = record.sa_explain
    assert data["schema"] == "sa_explain/1"
    assert data["error"] == "object_deleted"
    assert data["table"] == "device"
    assert data["identity"] == [42]
    assert data["params"] is None

    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["message"] == "device page failed"
    assert line["sa_explain"]["error"] == "object_deleted"
    assert "ObjectDeletedError" in line["exc_info"]


def test_chained_stale_data(
    configured: tuple[logging.Logger, ListHandler, io.StringIO], engine: Engine
) -> None:
    logger, handler, _ = configured
    with stale_update(engine) as session:
        try:
            try:
                session.flush()
            except StaleDataError as exc:
                raise RuntimeError("saving the device failed") from exc
        except RuntimeError:
            logger.error("request failed", exc_info=True)
    (record,) = handler.records
    assert record.sa_explain["error"] == "stale_data"
    assert record.sa_explain["rows"]["matched"] == 0


def test_computed_once_for_two_handlers(
    configured: tuple[logging.Logger, ListHandler, io.StringIO], engine: Engine
) -> None:
    logger, handler, stream = configured
    with deleted_after_commit(engine) as device:
        try:
            _ = device.name
        except ObjectDeletedError:
            logger.exception("failed")
    # The json handler ran first and set it; the list handler's filter kept that dict.
    assert (
        json.loads(stream.getvalue().splitlines()[-1])["sa_explain"]
        == handler.records[0].sa_explain
    )


def test_other_records_pass_untouched(
    configured: tuple[logging.Logger, ListHandler, io.StringIO],
) -> None:
    logger, handler, _ = configured
    logger.info("plain message")
    try:
        raise ValueError("unrelated")
    except ValueError:
        logger.exception("unrelated failure")
    assert [r.getMessage() for r in handler.records] == ["plain message", "unrelated failure"]
    assert not any(hasattr(r, "sa_explain") for r in handler.records)


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


def _record(exc_info: Any) -> logging.LogRecord:
    record = logging.LogRecord("tests.app", logging.ERROR, __file__, 1, "msg", None, None)
    record.exc_info = exc_info
    return record


def _cyclic() -> BaseException:
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__cause__, b.__cause__ = b, a
    a.__context__, b.__context__ = b, a
    return a


@pytest.mark.parametrize(
    "exc_info",
    [
        None,
        True,
        ("not", "an", "exc_info"),
        ("short",),
        (None, None, None),
        (ValueError, "not an exception", None),
        (UnprintableError, UnprintableError(), None),
        (RuntimeError, _cyclic(), None),
        object(),
        "a string",
    ],
    ids=repr,
)
def test_hostile_exc_info_never_raises_never_drops(exc_info: Any) -> None:
    record = _record(exc_info)
    assert ExplainFilter().filter(record) is True
    assert not hasattr(record, "sa_explain")


def test_hostile_wrapper_around_a_real_error(engine: Engine) -> None:
    state = detached_state(engine)
    inner = ObjectDeletedError(state)
    outer = UnprintableError()
    outer.__cause__ = inner
    inner.__context__ = outer  # cycle through an exception whose str() raises
    record = _record((UnprintableError, outer, None))
    assert ExplainFilter().filter(record) is True
    if hasattr(record, "sa_explain"):
        assert record.sa_explain["error"] == "object_deleted"


def test_options(engine: Engine) -> None:
    with deleted_after_commit(engine) as device:
        try:
            _ = device.name
        except ObjectDeletedError as exc:
            exc_info = (type(exc), exc, exc.__traceback__)
    record = _record(exc_info)
    assert ExplainFilter(attribute="orm", probes=False, include_params=False).filter(record)
    assert record.orm["error"] == "object_deleted"
    assert not hasattr(record, "sa_explain")

    # ``name`` limits which records are explained, never which pass.
    other = _record(exc_info)
    assert ExplainFilter("somewhere.else").filter(other) is True
    assert not hasattr(other, "sa_explain")


def test_option_validation() -> None:
    with pytest.raises(TypeError):
        ExplainFilter(include_params="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ExplainFilter(probes=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ExplainFilter(attribute="exc_info")  # would clobber a LogRecord field
    with pytest.raises(ValueError):
        ExplainFilter(attribute="not an identifier")


def test_exception_from_exc_info() -> None:
    err = ValueError("x")
    assert exception_from_exc_info(err) is err
    assert exception_from_exc_info((ValueError, err, None)) is err
    assert exception_from_exc_info([ValueError, err, None]) is err
    assert exception_from_exc_info(None) is None
    assert exception_from_exc_info(False) is None
    assert exception_from_exc_info(True) is None  # nothing being handled here
    try:
        raise err
    except ValueError:
        assert exception_from_exc_info(True) is err
