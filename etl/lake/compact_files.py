"""The files of a compacted day: the day's rows sorted, in row groups sized for scans.

:func:`sorted_batches` sorts a day's dataset by (``source_id``, ``published_at``,
``article_id``) in DuckDB (spilling to disk past its memory limit); :class:`CompactWriter`
writes the batches into files of at most :data:`FILE_ROWS` rows, row groups sized by
:func:`row_group_bytes`, Parquet options by :func:`compact_options`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from etl.lake.tables import parquet_options
from etl.schema import article_schema

# Row groups: a day in MIN_ROW_GROUPS of them, but none over ROW_GROUP_BYTES (uncompressed Arrow
# bytes) nor under MIN_ROW_GROUP_BYTES (each group is more requests on S3). Engines scan a file
# one row group per thread (DuckDB, Spark, Trino splits), so a day held in one 128 MB row group is
# read by one core; and DuckDB's reader allocates a row group's pages afresh, so a cold process
# (every ``newsetl query``) pays a page fault per 4 KiB of the group it decodes. bench/bench_lake.py
# (one day, 33,312 rows, 110 MiB of text): one row group 114 ms, 4 groups 62 ms, 16 groups 55 ms,
# 64 groups (~1.7 MiB each) 47 ms, against 108 ms for the same day in 24 hourly files.
ROW_GROUP_BYTES = 128 * 1024 * 1024
MIN_ROW_GROUPS = 32
MIN_ROW_GROUP_BYTES = 8 * 1024 * 1024
# The prose columns of compacted files are LZ4 (the rest zstd, as in hourly files): zstd
# decompression was ~60 % of the CPU of a full-day scan; LZ4 decodes the same text in about a
# third of the time, for ~1.65x the bytes of those columns (bench/bench_lake.py: compacted day).
FAST_CODEC = "lz4_raw"  # Parquet LZ4_RAW (pyarrow reports it as "LZ4"), not Hadoop LZ4
FAST_COLUMNS = frozenset({"text", "description", "title"})
FILE_ROWS = 2_000_000


def compact_options(schema: pa.Schema) -> dict[str, Any]:
    """Parquet writer options of compacted files: the hourly files' options, with the prose
    columns (:data:`FAST_COLUMNS`) in :data:`FAST_CODEC`, which scans decode faster."""
    opts = parquet_options(schema)
    codec, level = opts.pop("compression"), opts.pop("compression_level")
    opts["compression"] = {f.name: FAST_CODEC if f.name in FAST_COLUMNS else codec for f in schema}
    opts["compression_level"] = {f.name: level for f in schema if f.name not in FAST_COLUMNS}
    return opts


def row_group_bytes(day_bytes: int) -> int:
    """The row-group size (uncompressed bytes) for a day of ``day_bytes``: the day split into
    :data:`MIN_ROW_GROUPS` groups, kept between :data:`MIN_ROW_GROUP_BYTES` and
    :data:`ROW_GROUP_BYTES`."""
    return max(MIN_ROW_GROUP_BYTES, min(ROW_GROUP_BYTES, day_bytes // MIN_ROW_GROUPS))


def uncompressed_bytes(dataset: Any) -> int:
    """The day's data size from its files' footers (no data page is read)."""
    total = 0
    for fragment in dataset.get_fragments():
        meta = fragment.metadata
        total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return int(total)


class CompactWriter:
    """Compacted files in a temp folder: row groups of about ``group_bytes``, FILE_ROWS each."""

    def __init__(self, tmp: Path, schema: pa.Schema, group_bytes: int = ROW_GROUP_BYTES) -> None:
        self.tmp, self.schema, self.group_bytes = tmp, schema, group_bytes
        self.paths: list[Path] = []
        self.rows: list[int] = []
        self.writer: pq.ParquetWriter | None = None
        self.pending: list[pa.RecordBatch] = []
        self.pending_bytes = 0

    def add(self, batch: pa.RecordBatch) -> None:
        """Queue ``batch``; a batch larger than the room left in the row group is split."""
        per_row = max(batch.nbytes / max(batch.num_rows, 1), 1.0)
        while batch.num_rows:
            room = self.group_bytes - self.pending_bytes
            take = min(batch.num_rows, max(1, int(room / per_row)))
            self.pending.append(batch.slice(0, take))
            self.pending_bytes += int(take * per_row)
            batch = batch.slice(take)
            if self.pending_bytes >= self.group_bytes or batch.num_rows:
                self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        table = pa.Table.from_batches(self.pending, schema=self.schema)
        self.pending, self.pending_bytes = [], 0
        if self.writer is None or self.rows[-1] + table.num_rows > FILE_ROWS:
            self.close_file()
            path = self.tmp / f"{len(self.paths):03d}.parquet"
            self.writer = pq.ParquetWriter(path, self.schema, **compact_options(self.schema))
            self.paths.append(path)
            self.rows.append(0)
        self.writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self.rows[-1] += table.num_rows

    def close_file(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def close(self) -> None:
        self.flush()
        self.close_file()


def sorted_batches(dataset: Any, batch_rows: int = 2048) -> Iterator[pa.RecordBatch]:
    con = duckdb.connect(config={"memory_limit": "512MB"})
    try:
        con.register("day", dataset)
        rel = con.sql(
            "SELECT * FROM day ORDER BY source_id NULLS LAST, published_at NULLS LAST, article_id"
        )
        schema = article_schema()
        for batch in rel.to_arrow_reader(batch_rows):
            yield batch.cast(schema)
    finally:
        con.close()
