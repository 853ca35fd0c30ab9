"""``newsetl query``: DuckDB SQL over the lake, read lazily. Views: ``articles`` and ``fetch_log``.

Each view is a ``pyarrow.dataset`` over the lake's Parquet files (local folder, or S3 through
``pyarrow.fs.S3FileSystem`` built from the lake's settings: :mod:`etl.lake.arrowfs`) registered in
DuckDB, which pushes the query's column list and filters into the scan: a filter on ``dt`` prunes
whole partitions before a byte of them is read, other filters skip row groups by their
statistics, and only the columns the query names are fetched (ranged reads on S3). Files of
older schema versions read by column name (v1 rows have null v2 columns). Results stream as
Arrow record batches (:func:`query_batches`), so memory stays bounded by the batch and DuckDB's
``memory_limit`` (sorts and joins spill to disk), not by the lake. No DuckDB extension is
downloaded. A lake of another kind (a custom :class:`~etl.lake.Lake`) is read through the store.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import lru_cache
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs

from etl.errors import StoreError
from etl.lake.arrowfs import ArrowLake, arrow_filesystem, list_sizes, parquet_dataset
from etl.lake.base import Lake
from etl.lake.dayview import visible_article_keys
from etl.lake.engine import lock_down, new_database, session
from etl.lake.opener import open_lake
from etl.lake.query_local import readable_paths, register_local_view
from etl.lake.query_plan import QueryPlan, plan
from etl.lake.settings import LakeSettings
from etl.lake.tables import read_table
from etl.schema import article_schema, fetch_log_schema

log = logging.getLogger("etl.lake.query")

VIEWS = ("articles", "fetch_log")
BATCH_ROWS = 4096


@lru_cache(maxsize=4)
def _open(settings: LakeSettings) -> Lake:
    """The lake of ``settings``, opened once per process: a new S3 client (and its connections)
    for each query cost a one-day query on S3 about as much as reading the day."""
    return open_lake(settings)


def _visible(
    lake: Lake, alake: ArrowLake | None, name: str, days: tuple[str, ...] | None = None
) -> tuple[list[str], dict[str, int]]:
    """The Parquet files readers see under ``name/`` and the sizes the listing gave (S3).

    No temp (``.``) or hidden (``_``) files; for articles, a compacted day's compacted files
    instead of its hourly ones, and only the ``days`` partitions when they are known (the
    other days are not even listed).
    """
    sized = alake is not None and isinstance(alake.fs, pafs.S3FileSystem)

    def listing(prefix: str) -> tuple[list[str], dict[str, int]]:
        if alake is not None and sized:  # one listing that also gives each object's size
            sizes = list_sizes(alake, prefix)
            return sorted(sizes), sizes
        return lake.list(prefix), {}

    if name == "articles" and days is not None:
        files: list[str] = []
        sizes: dict[str, int] = {}
        for day in sorted(set(days)):
            if "/" not in day:
                keys, day_sizes = listing(f"articles/dt={day}/")
                files += visible_article_keys(lake, day, listed=keys)
                sizes.update(day_sizes)
        return files, sizes
    keys, sizes = listing(f"{name}/")
    if name == "articles":
        return visible_article_keys(lake, listed=keys), sizes
    return [
        k for k in keys if k.endswith(".parquet") and k.rsplit("/", 1)[-1][0] not in "._"
    ], sizes


def local_reader(alake: ArrowLake | None, files: list[str]) -> bool:
    """Whether DuckDB reads ``files`` itself (:mod:`etl.lake.query_local`): a local lake whose paths
    it can take literally. Its reader keeps an export of the whole lake inside its memory
    limit, where the Arrow dataset let batches pile up ahead of a slow writer."""
    if alake is None or not isinstance(alake.fs, pafs.LocalFileSystem):
        return False
    return readable_paths([alake.path(k) for k in files])


def connect(lake_uri: str | LakeSettings, for_sql: str | None = None) -> duckdb.DuckDBPyConnection:
    """A standalone DuckDB connection with lazy ``articles`` and ``fetch_log`` views over the
    lake (the caller closes it). :func:`run_query` and :func:`query_batches` use a session of
    the process's engine instead (:mod:`etl.lake.engine`).

    With ``for_sql``, only what that statement can read is listed
    (:func:`etl.lake.query_plan.plan`): the views it names, and of ``articles`` only the ``dt``
    partitions its filter keeps.
    """
    con = new_database()
    try:
        add_views(con, lake_uri, for_sql)
    except BaseException:
        con.close()
        raise
    return con


def add_views(
    con: duckdb.DuckDBPyConnection, lake_uri: str | LakeSettings, for_sql: str | None = None
) -> list[str]:
    """Create the ``articles`` and ``fetch_log`` views on ``con`` (see :func:`connect`);
    returns the local files DuckDB itself reads for them (the rest it reads through Arrow)."""
    readable: list[str] = []
    scope = plan(for_sql, con) if for_sql is not None else QueryPlan(None, None)
    settings = lake_uri if isinstance(lake_uri, LakeSettings) else None
    lake = _open(settings) if settings is not None else open_lake(lake_uri)
    alake = arrow_filesystem(lake, settings)
    for name, schema in (("articles", article_schema()), ("fetch_log", fetch_log_schema())):
        files: list[str] = []
        sizes: dict[str, int] = {}
        if scope.views is None or name in scope.views:  # else: not named, nothing to list
            files, sizes = _visible(lake, alake, name, scope.days if name == "articles" else None)
        if not files:
            con.register(f"_{name}_src", pa.Table.from_batches([], schema=schema))
        elif local_reader(alake, files):
            assert alake is not None
            paths = [alake.path(k) for k in files]
            register_local_view(con, name, paths, schema)
            readable += paths
            continue
        elif alake is not None:
            con.register(f"_{name}_src", parquet_dataset(alake, files, schema, name, sizes))
        else:  # a lake pyarrow cannot reach: whole objects through the store
            tables = [read_table(lake, k, schema=schema) for k in files]
            con.register(f"_{name}_src", pa.concat_tables(tables))
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM _{name}_src")
    return readable


@contextmanager
def _views(
    lake_uri: str | LakeSettings, sql: str, locked: bool
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection with the views ``sql`` needs: a session of the process's engine, or with
    ``locked`` a standalone database confined to the lake files the views read."""
    if not locked:
        with session() as con:
            add_views(con, lake_uri, sql)
            yield con
        return
    con = new_database()
    try:
        lock_down(con, add_views(con, lake_uri, sql))
        yield con
    finally:
        con.close()


def _failed(lake_uri: str | LakeSettings, exc: Exception) -> StoreError:
    where = lake_uri if isinstance(lake_uri, str) else lake_uri.uri
    return StoreError(where, f"query failed: {exc}")


@contextmanager
def query_batches(
    lake_uri: str | LakeSettings, sql: str, *, batch_rows: int = BATCH_ROWS, locked: bool = False
) -> Iterator[pa.RecordBatchReader]:
    """Run one SQL statement; yields a reader of its result, streamed in record batches.
    ``locked``: in a database that reads nothing but the lake's views (see
    :func:`etl.lake.engine.lock_down`; what ``newsetl query`` uses for the SQL it is given).

    Errors name the lake: bad SQL when the statement runs, read errors while batches are read.
    """
    with ExitStack() as stack:
        try:
            con = stack.enter_context(_views(lake_uri, sql, locked))
        except duckdb.Error as exc:  # a local view reads the files' footers when it is made
            raise _failed(lake_uri, exc) from None
        try:
            rel = con.sql(sql)  # a relation streams; a DB-API cursor would copy the rows
            reader = rel.to_arrow_reader(batch_rows) if rel is not None else None
        except duckdb.Error as exc:
            raise _failed(lake_uri, exc) from None
        if reader is None:  # a statement without a result
            reader = pa.RecordBatchReader.from_batches(pa.schema([]), [])
        yield _guard(reader, lake_uri)


def _guard(reader: pa.RecordBatchReader, lake_uri: str | LakeSettings) -> pa.RecordBatchReader:
    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            raise _failed(lake_uri, exc) from None

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


# A vanished local file in a locked database: DuckDB then looks for "<file>/**/*.parquet", which
# the lock-down refuses ("file system operations are disabled"): planned again as well.
_VANISHED = ("No such file", "No files found", "does not exist", "NoSuchKey", "Not Found", "404",
             "file system operations are disabled")  # fmt: skip


def run_query(
    lake_uri: str | LakeSettings, sql: str, *, attempts: int = 3, locked: bool = False
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one SQL statement; returns column names and all rows (small results only).
    ``locked`` as for :func:`query_batches`.

    A file that vanished under the query (a compaction deleted the hourly files it replaced
    after the query listed them) makes it plan again from a fresh listing, up to ``attempts``
    times. (:func:`query_batches` cannot: it may have handed rows out already; it raises.)
    """
    for attempt in range(1, attempts + 1):
        try:
            with _views(lake_uri, sql, locked) as con:  # reads footers: may find one gone
                cur = con.execute(sql)
                columns = [d[0] for d in cur.description or []]
                return columns, cur.fetchall()
        except duckdb.Error as exc:
            if attempt < attempts and any(s in str(exc) for s in _VANISHED):
                log.info("a file vanished during the query (compaction?): planning again")
                continue
            raise _failed(lake_uri, exc) from None
    raise AssertionError("unreachable")
