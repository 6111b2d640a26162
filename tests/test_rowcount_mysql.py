"""StaleDataError on real MariaDB with PyMySQL and mysqlclient, and CLIENT_FOUND_ROWS.

SQLAlchemy's MySQL dialects always add CLIENT_FOUND_ROWS, so an UPDATE reports the rows
it *matched*. ``create_engine(..., connect_args={"client_flag": 0})`` replaces the flags
and removes it (a URL ``?client_flag=0`` does not): the UPDATE then reports rows
*changed*, and an UPDATE that writes the value a row already holds "matches" 0 rows —
a StaleDataError on a row nobody deleted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

import sa_explain
from tests._replicas import Widget, reset_tables, with_driver
from tests._servers import require_module, require_url

pytestmark = pytest.mark.server

DRIVERS = ["pymysql", "mysqldb"]


def _module(driver: str) -> str:
    return "MySQLdb" if driver == "mysqldb" else driver


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    url = require_url("MARIADB_URL")
    engine = sa.create_engine(url)
    reset_tables(engine)
    engine.dispose()
    yield url


def _engine(url: str, driver: str, **kw: Any) -> Engine:
    require_module(_module(driver))
    return sa.create_engine(with_driver(url, driver), **kw)


def _same_value_update(engine: Engine) -> None:
    """Session 1 loads a row; another writer sets name='b'; session 1 then writes name='b' too."""
    with Session(engine) as setup:
        setup.add(Widget(id=1, name="a")) if setup.get(Widget, 1) is None else None
        setup.get(Widget, 1).name = "a"  # type: ignore[union-attr]
        setup.commit()
    with Session(engine) as s1:
        w = s1.get(Widget, 1)
        assert w is not None and w.name == "a"
        with engine.begin() as other:
            other.execute(sa.text("UPDATE sae_widget SET name = 'b' WHERE id = 1"))
        w.name = "b"  # UPDATE … SET name='b' WHERE id=1: matched 1, changed 0
        s1.commit()


@pytest.mark.parametrize("driver", DRIVERS)
def test_default_flags_count_matched_rows(base_url: str, driver: str) -> None:
    engine = _engine(base_url, driver)
    _same_value_update(engine)  # no error: CLIENT_FOUND_ROWS is on
    engine.dispose()


@pytest.mark.parametrize("driver", DRIVERS)
def test_found_rows_removed_is_rowcount_unreliable(base_url: str, driver: str) -> None:
    engine = _engine(base_url, driver, connect_args={"client_flag": 0})
    sa_explain.configure(primary=engine, probe_rate=1000)
    with pytest.raises(StaleDataError) as info:
        _same_value_update(engine)
    record = sa_explain.explain(info.value).to_dict()  # type: ignore[union-attr]
    print(
        f"\n{driver} client_flag=0 StaleDataError:",
        {k: record[k] for k in ("cause", "confidence", "rows", "primary_row", "evidence")},
    )
    assert record["error"] == "stale_data"
    assert record["rows"]["expected"] == 1 and record["rows"]["matched"] == 0
    assert record["bind"]["system"] == "mariadb" and record["bind"]["driver"] == driver
    assert record["primary_row"] == "present"
    assert record["cause"] == "rowcount_unreliable", record
    engine.dispose()


@pytest.mark.parametrize("driver", DRIVERS)
def test_stale_data_row_deleted_on_mariadb(base_url: str, driver: str) -> None:
    engine = _engine(base_url, driver)
    sa_explain.configure(primary=engine, probe_rate=1000)
    with Session(engine) as s1:
        w = Widget(name="doomed")
        s1.add(w)
        s1.commit()
        wid = w.id
        with engine.begin() as other:
            other.execute(sa.text("DELETE FROM sae_widget WHERE id = :i"), {"i": wid})
        w.name = "too late"
        with pytest.raises(StaleDataError) as info:
            s1.commit()
    record = sa_explain.explain(info.value).to_dict()  # type: ignore[union-attr]
    print(
        f"\n{driver} row-deleted StaleDataError:",
        {k: record[k] for k in ("cause", "confidence", "rows", "primary_row")},
    )
    assert record["error"] == "stale_data" and record["rows"]["matched"] == 0
    assert record["primary_row"] == "absent"
    assert record["cause"] == "row_deleted", record
    engine.dispose()
