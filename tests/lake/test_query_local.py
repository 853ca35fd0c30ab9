"""``newsetl query`` on a local lake: DuckDB's own Parquet reader behind the views, with the
same contract as the Arrow dataset views (names, order, types, rows; v1 beside v2 files)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from etl.errors import StoreError
from etl.lake import Lake, open_lake
from etl.lake.arrowfs import arrow_filesystem, parquet_dataset
from etl.lake.query import _visible, connect, query_batches, run_query
from etl.lake.store import publish_interval
from etl.schema import article_schema, fetch_log_schema
from tests.support.query_lakes import _fill, _interval, _v1_file

ORDER = {"articles": "article_id", "fetch_log": "url"}


def _lake(root: Path) -> Lake:
    lake = open_lake(str(root))
    _fill(lake, range(1, 3), n=4)
    _v1_file(lake, 3, 3)  # written before schema v2: no canonical_link, extraction, duplicate_of
    rows = [
        {"url": "https://news.example.com/a", "status": 200, "attempts": 1, "dt": "2026-11-04"},
        {"url": "https://news.example.com/b", "status": 503, "error_class": "http-5xx",
         "attempts": 3, "dt": "2026-11-04"},
    ]  # fmt: skip
    log = pa.Table.from_pylist(rows, schema=fetch_log_schema())
    publish_interval(lake, _interval(4, 2), iter(()), fetch_log=log)
    return lake


def _arrow_views(root: Path) -> duckdb.DuckDBPyConnection:
    """The views as the Arrow dataset path builds them (the contract the local views keep)."""
    lake = open_lake(str(root))
    alake = arrow_filesystem(lake)
    assert alake is not None
    con = duckdb.connect()
    for name, schema in (("articles", article_schema()), ("fetch_log", fetch_log_schema())):
        files, _ = _visible(lake, alake, name)
        con.register(f"_{name}_src", parquet_dataset(alake, files, schema, name))
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM _{name}_src")
    return con


def _view_sql(con: duckdb.DuckDBPyConnection, name: str) -> str:
    rows = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = ?", [name]).fetchall()
    return str(rows[0][0])


@pytest.mark.parametrize("name", ["articles", "fetch_log"])
def test_local_views_read_with_duckdb_and_keep_the_arrow_contract(
    tmp_path: Path, name: str
) -> None:
    _lake(tmp_path / "lake")
    local = connect(str(tmp_path / "lake"))
    arrow = _arrow_views(tmp_path / "lake")
    try:
        assert "read_parquet" in _view_sql(local, name)  # not the Arrow dataset
        assert (
            local.execute(f"DESCRIBE {name}").fetchall()
            == arrow.execute(f"DESCRIBE {name}").fetchall()
        )
        sql = f"SELECT * FROM {name} ORDER BY {ORDER[name]}"
        got, want = local.sql(sql).to_arrow_table(), arrow.sql(sql).to_arrow_table()
        assert got.num_rows == want.num_rows > 0
        assert got.schema == want.schema and got.equals(want)
    finally:
        local.close()
        arrow.close()


def test_v2_columns_no_file_has_are_typed_nulls(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    _v1_file(lake, 3, 3)  # the only file: every v2 column is missing from the lake
    _, rows = run_query(
        str(tmp_path / "lake"),
        "SELECT dt, count(*), count(duplicate_of), count(extraction), "
        "typeof(any_value(extraction)) FROM articles GROUP BY dt",
    )
    assert rows == [
        ("2026-11-03", 3, 0, 0, 'STRUCT("method" VARCHAR, agreement DOUBLE, doubtful BOOLEAN)')
    ]


@pytest.mark.parametrize(
    ("folder", "reader"), [("lake[1]*", "Arrow"), ('it\'s "a" lake', "DuckDB")]
)
def test_odd_characters_in_the_lake_path(tmp_path: Path, folder: str, reader: str) -> None:
    """Glob characters keep the Arrow path (DuckDB would expand them); quotes are escaped."""
    root = tmp_path / folder
    _lake(root)
    con = connect(str(root))
    try:
        assert ("read_parquet" in _view_sql(con, "articles")) == (reader == "DuckDB")
    finally:
        con.close()
    _, rows = run_query(str(root), "SELECT dt, count(*) FROM articles GROUP BY dt ORDER BY dt")
    assert rows == [("2026-11-01", 8), ("2026-11-02", 8), ("2026-11-03", 3)]


def test_a_corrupt_file_is_a_store_error_naming_the_lake(tmp_path: Path) -> None:
    lake = _lake(tmp_path / "lake")
    lake.put_bytes(f"articles/dt=2026-11-05/{_interval(5, 1).id}-000.parquet", b"not parquet")
    for run in (
        lambda: run_query(str(tmp_path / "lake"), "SELECT count(*) FROM articles"),
        lambda: list(query_batches(str(tmp_path / "lake"), "SELECT * FROM articles").__enter__()),
    ):
        with pytest.raises(StoreError) as err:
            run()
        assert str(tmp_path / "lake") in str(err.value) and "query failed" in str(err.value)
