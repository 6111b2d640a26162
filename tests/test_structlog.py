"""add_orm_explanation with real structlog: JSONRenderer, dict_tracebacks, format_exc_info."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

from sa_explain.structlog import AddORMExplanation, add_orm_explanation
from tests.orm_errors import deleted_after_commit, make_engine, stale_update

structlog = pytest.importorskip("structlog")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(tmp_path)
    yield eng
    eng.dispose()


@pytest.fixture
def json_log() -> Iterator[Callable[..., tuple[Any, io.StringIO]]]:
    """``json_log(*processors_before_render)``: a structlog logger writing JSON lines to a buffer."""

    def make(*middle: Any, explain: Any = add_orm_explanation) -> tuple[Any, io.StringIO]:
        out = io.StringIO()
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                explain,
                *(middle or (structlog.processors.dict_tracebacks,)),
                structlog.processors.JSONRenderer(),
            ],
            logger_factory=structlog.WriteLoggerFactory(file=out),
            cache_logger_on_first_use=False,
        )
        return structlog.get_logger(), out

    yield make
    structlog.reset_defaults()


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_exc_info_true_with_dict_tracebacks(json_log: Any, engine: Engine) -> None:
    log, out = json_log()
    with deleted_after_commit(engine) as device:
        try:
            _ = device.name
        except ObjectDeletedError:
            log.error("device page failed", exc_info=True)
    (line,) = lines(out)
    assert line["sa_explain"]["error"] == "object_deleted"
    assert line["sa_explain"]["identity"] == [42]
    assert line["sa_explain"]["table"] == "device"
    # dict_tracebacks still saw exc_info: the processor does not consume it.
    assert line["exception"][0]["exc_type"] == "ObjectDeletedError"


def test_log_exception_method(json_log: Any, engine: Engine) -> None:
    log, out = json_log()
    with stale_update(engine) as session:
        try:
            session.flush()
        except StaleDataError:
            log.exception("save failed")
    (line,) = lines(out)
    assert line["sa_explain"]["error"] == "stale_data"
    assert line["sa_explain"]["rows"] == {**line["sa_explain"]["rows"], "expected": 1, "matched": 0}


def test_exc_info_tuple_and_instance_outside_the_except_block(
    json_log: Any, engine: Engine
) -> None:
    log, out = json_log(structlog.processors.format_exc_info)
    with deleted_after_commit(engine) as device:
        try:
            _ = device.name
        except ObjectDeletedError as exc:
            caught = exc
            info = sys.exc_info()
    log.error("as tuple", exc_info=info)
    log.error("as instance", exc_info=caught)
    first, second = lines(out)
    for line in (first, second):
        assert line["sa_explain"]["error"] == "object_deleted"
        assert "ObjectDeletedError" in line["exception"]


def test_chained_error(json_log: Any, engine: Engine) -> None:
    log, out = json_log()
    with deleted_after_commit(engine) as device:
        try:
            try:
                _ = device.name
            except ObjectDeletedError as exc:
                raise KeyError("device") from exc
        except KeyError:
            log.exception("lookup failed")
    (line,) = lines(out)
    assert line["sa_explain"]["error"] == "object_deleted"
    assert line["sa_explain"]["via"] == "cause"


def test_other_events_untouched(json_log: Any) -> None:
    log, out = json_log()
    log.info("hello", user=1)
    try:
        raise ValueError("unrelated")
    except ValueError:
        log.exception("unrelated")
    first, second = lines(out)
    assert "sa_explain" not in first and "sa_explain" not in second
    assert second["exception"][0]["exc_type"] == "ValueError"


def test_configurable_form(json_log: Any, engine: Engine) -> None:
    log, out = json_log(explain=AddORMExplanation(key="orm", probes=False, include_params=False))
    with deleted_after_commit(engine) as device:
        try:
            _ = device.name
        except ObjectDeletedError:
            log.exception("failed")
    (line,) = lines(out)
    assert line["orm"]["error"] == "object_deleted"
    assert line["orm"]["params"] is None
    assert "sa_explain" not in line


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


def _cycle() -> BaseException:
    a, b = RuntimeError("a"), Unprintable()
    a.__cause__, b.__cause__ = b, a
    return a


@pytest.mark.parametrize(
    "exc_info",
    [True, False, None, ("x",), (None, None, None), object(), Unprintable(), _cycle(), "str"],
    ids=repr,
)
def test_hostile_exc_info(exc_info: Any) -> None:
    event_dict = {"event": "x", "exc_info": exc_info}
    result = add_orm_explanation(None, "error", event_dict)
    assert result is event_dict
    assert result["exc_info"] is exc_info  # never removed or replaced
    assert "sa_explain" not in result


def test_existing_value_is_kept(engine: Engine) -> None:
    with deleted_after_commit(engine) as device:
        try:
            _ = device.name
        except ObjectDeletedError as exc:
            caught = exc
    mine = {"schema": "sa_explain/1", "error": "object_deleted", "note": "precomputed"}
    event_dict = {"event": "x", "exc_info": caught, "sa_explain": mine}
    assert add_orm_explanation(None, "error", event_dict)["sa_explain"] is mine


def test_option_validation() -> None:
    with pytest.raises(TypeError):
        AddORMExplanation(include_params="no")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AddORMExplanation(key="")
