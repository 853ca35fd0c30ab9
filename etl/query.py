"""``newsetl query``: DuckDB SQL over the lake. Views: ``articles`` and ``fetch_log``.

A local lake is read in place by DuckDB (``read_parquet`` with Hive partitioning); any other
lake is read through the store into Arrow and registered (no DuckDB extension downloads).
"""

from __future__ import annotations

import logging
from typing import Any

import duckdb
import pyarrow as pa

from etl.errors import StoreError
from etl.lake import Lake, LocalLake, open_lake
from etl.lake_config import LakeSettings
from etl.schema import article_schema, fetch_log_schema
from etl.store import read_articles, read_table

log = logging.getLogger("etl.query")


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _read_all(lake: Lake, keys: list[str]) -> pa.Table:
    tables = [read_table(lake, key) for key in keys]
    return pa.concat_tables(tables, promote_options="default")


def connect(lake_uri: str | LakeSettings) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with ``articles`` and ``fetch_log`` views over the lake."""
    lake = open_lake(lake_uri)
    con = duckdb.connect()
    for name, schema in (("articles", article_schema()), ("fetch_log", fetch_log_schema())):
        keys = lake.list(f"{name}/")
        files = [k for k in keys if k.endswith(".parquet")]
        if not files:
            con.register(f"_{name}_empty", pa.Table.from_batches([], schema=schema))
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM _{name}_empty")
        elif isinstance(lake, LocalLake):
            paths = ", ".join(_sql_str(lake.uri_for(k)) for k in files)
            con.execute(
                f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{paths}], "
                "hive_partitioning = false, union_by_name = true)"
            )
        else:  # read through the store (no DuckDB extension downloads)
            table = read_articles(lake) if name == "articles" else _read_all(lake, files)
            con.register(f"_{name}_tbl", table)
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM _{name}_tbl")
    return con


def run_query(lake_uri: str | LakeSettings, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one SQL statement; returns column names and rows. Errors name the lake."""
    con = connect(lake_uri)
    try:
        cur = con.execute(sql)
    except duckdb.Error as exc:
        where = lake_uri if isinstance(lake_uri, str) else lake_uri.uri
        raise StoreError(where, f"query failed: {exc}") from None
    columns = [d[0] for d in cur.description or []]
    return columns, cur.fetchall()
