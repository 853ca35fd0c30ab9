"""Parquet objects of the lake: the writer options, a shard writer in bounded row groups, the
schema check of what is written, and reading or writing one object (or every article file).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, TypeVar, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.errors import StoreError
from etl.lake.base import Lake
from etl.lake.dayview import visible_article_keys
from etl.schema import article_schema

__all__ = [
    "ROW_GROUP_BYTES",
    "ROW_GROUP_ROWS",
    "ShardWriter",
    "conform",
    "parquet_options",
    "read_articles",
    "read_table",
    "write_table",
]

ROW_GROUP_ROWS = 50_000
# Uncompressed Arrow bytes buffered per row group: what a shard writer holds, so a publish's
# memory is bounded by it, not by the interval's rows (64 MiB held all 20,000 rows of
# bench_load at once). Hourly shards are smaller; `newsetl compact` makes big row groups.
ROW_GROUP_BYTES = 4 * 1024 * 1024
# Low-cardinality columns get dictionary encoding; long text goes plain (zstd does the rest).
_DICT_COLUMNS = {"source_id", "domain", "date_source", "language", "sitename", "dt", "error_class"}


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    return {
        "compression": "zstd",
        "compression_level": 3,
        "write_statistics": True,
        "use_dictionary": [f.name for f in schema if f.name in _DICT_COLUMNS],
    }


class ShardWriter:
    """One Parquet file in the temp folder, written in row groups of bounded size."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path, self.schema = path, schema
        self.writer = pq.ParquetWriter(path, schema, **parquet_options(schema))
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = self.pending_bytes = self.rows = 0
        self.ids: list[str] = []  # for the seen re-check at publish

    def add(self, batch: pa.RecordBatch) -> None:
        self.pending.append(batch)
        self.ids += cast(list[str], batch.column("article_id").to_pylist())
        self.pending_rows += batch.num_rows
        self.pending_bytes += batch.nbytes
        if self.pending_rows >= ROW_GROUP_ROWS or self.pending_bytes >= ROW_GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.pending_rows:
            table = pa.Table.from_batches(self.pending, schema=self.schema)
            self.writer.write_table(table, row_group_size=max(table.num_rows, 1))
            self.rows += table.num_rows
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0

    def close(self) -> None:
        self.flush()
        self.writer.close()


_T = TypeVar("_T", pa.RecordBatch, pa.Table)


def conform(data: _T, schema: pa.Schema, dt: str, what: str) -> _T:
    """Check ``data`` against ``schema`` and the partition; return it carrying ``schema``."""
    if not data.schema.equals(schema):
        got = data.schema
        missing = [n for n in schema.names if n not in got.names]
        extra = [n for n in got.names if n not in schema.names]
        wrong = [
            f"{f.name} is {got.field(f.name)}, expected {f}"
            for f in schema
            if f.name in got.names and not got.field(f.name).equals(f)
        ]
        problems: list[str] = wrong or ([] if missing or extra else ["column order differs"])
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if extra:
            problems.append(f"unexpected {', '.join(extra)}")
        raise StoreError(what, "schema mismatch: " + "; ".join(problems))
    nulls = [f.name for f in schema if not f.nullable and data.column(f.name).null_count]
    if nulls:
        raise StoreError(what, f"nulls in non-nullable columns: {', '.join(nulls)}")
    if data.num_rows and not pc.all(pc.equal(data.column("dt"), pa.scalar(dt))).as_py():
        raise StoreError(what, f"rows with dt other than the interval's {dt}")
    # Same types: re-label with the canonical schema (descriptions, version metadata).
    return type(data).from_arrays(data.columns, schema=schema)


def _article_keys(lake: Lake, dt: str | None) -> list[str]:
    return visible_article_keys(lake, dt)  # a compacted day: its compacted files


def read_table(
    lake: Lake, key: str, *, columns: list[str] | None = None, schema: pa.Schema | None = None
) -> pa.Table:
    """One Parquet object of the lake as a table; an unreadable one is a StoreError."""
    # use_threads=False here and wherever etl reads Parquet: a threaded read can leave the release
    # of its source to an Arrow worker thread after returning, which then needs the GIL while the
    # interpreter exits, and the process aborts ("terminate called without an active exception",
    # apache/arrow#33975, #34314).
    try:
        return pq.read_table(
            pa.BufferReader(lake.get_bytes(key)), columns=columns, schema=schema, use_threads=False
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise StoreError(key, f"not a readable Parquet file: {exc}") from exc


def write_table(lake: Lake, key: str, table: pa.Table) -> None:
    """A small table (a staged fetch log) as one zstd Parquet object, put atomically."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    lake.put_bytes(key, buf.getvalue())


def read_articles(lake: Lake, dt: str | None = None) -> pa.Table:
    """All article rows in the lake, or in one ``dt`` partition, as one table."""
    schema = article_schema()  # older versions' files read by column name (v2 columns null)
    tables = [read_table(lake, k, schema=schema) for k in _article_keys(lake, dt)]
    if not tables:
        return article_schema().empty_table()
    return pa.concat_tables(tables)
