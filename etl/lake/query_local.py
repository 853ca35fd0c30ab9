"""The query views of a lake on the local disk, read by DuckDB's own Parquet reader.

Entry point :func:`register_local_view`. For a local lake, ``newsetl query`` does not go
through a ``pyarrow.dataset``: DuckDB's ``read_parquet`` over the same visible files pulls row
groups only as fast as the result is consumed, inside DuckDB's ``memory_limit``. Through the
Arrow dataset, DuckDB's scan ran ahead of a slow consumer (an export writing every row) and the
pending Arrow batches piled up outside that limit (1.9 GiB peak to export a 1M-row lake).

The view keeps the contract of the Arrow path exactly: the columns of the table schema in its
order and with its types (each column cast to the DuckDB type of its Arrow type), files of older
schema versions read by column name (``union_by_name``; a column no file has is a typed NULL),
``dt`` as a string, from the path's ``dt=`` partition. Only the files given are read (the
caller lists them: compacted days, pruned days), so glob characters in a path make the caller
fall back to the Arrow path.
S3 lakes keep the Arrow path: ``read_parquet`` over S3 needs the ``httpfs`` extension, which
DuckDB would download at run time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import duckdb
import pyarrow as pa

log = logging.getLogger("etl.lake.query_local")

_GLOB = set("*?[]{}")
_DT = re.compile(r"/dt=[^/]+/[^/]+$")


def readable_paths(paths: Sequence[str]) -> bool:
    """Whether DuckDB can be given ``paths`` literally (no glob character in any)."""
    return not any(_GLOB & set(p) for p in paths)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_TYPES: dict[pa.Schema, dict[str, str]] = {}


def _duckdb_types(con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> dict[str, str]:
    """The DuckDB type of each column of ``schema``, as DuckDB maps the Arrow types (asked of
    DuckDB once per schema and process)."""
    if schema not in _TYPES:
        empty = pa.Table.from_batches([], schema=schema)
        con.register("_schema_probe", empty)
        try:
            rows = con.execute("DESCRIBE SELECT * FROM _schema_probe").fetchall()
        finally:
            con.unregister("_schema_probe")
        _TYPES[schema] = {str(r[0]): str(r[1]) for r in rows}
    return _TYPES[schema]


def register_local_view(
    con: duckdb.DuckDBPyConnection, name: str, paths: Sequence[str], schema: pa.Schema
) -> None:
    """Create view ``name`` over the Parquet files ``paths`` (absolute, at least one), shaped as
    ``schema``: same column names, order and types as the Arrow dataset view."""
    files = "[" + ", ".join(_quote_text(p) for p in paths) + "]"
    # ``dt`` from the path (as the Arrow path's partition expressions), a string like the schema's
    hive = all(_DT.search(p) for p in paths)
    parts = "hive_partitioning = " + ("true, hive_types = {'dt': 'VARCHAR'}" if hive else "false")
    source = f"read_parquet({files}, union_by_name = true, {parts})"
    present = {str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    types = _duckdb_types(con, schema)
    cols = []
    for field in schema:
        col, kind = _quote_ident(field.name), types[field.name]
        value = col if field.name in present else "NULL"
        cols.append(f"CAST({value} AS {kind}) AS {col}")
    con.execute(f"CREATE VIEW {_quote_ident(name)} AS SELECT {', '.join(cols)} FROM {source}")
    log.debug("view %s: read_parquet over %d local files", name, len(paths))
