"""The key index: the few columns of every article file, small enough to read whole.

Layout: ``_index/dt=<dt>/<group>.parquet`` beside ``articles/dt=<dt>/<group>-<shard>.parquet``,
where ``<group>`` is the interval id of an hourly publish (and the name of any other set of
article files written together). It holds :data:`INDEX_COLUMNS` of every row of the group's
files (``article_id``, ``url``, ``canonical_url``, ``content_hash``, ``simhash``): about 2 % of
the bytes of the article files, whose text dominates. Publish writes it with the shards (named
from the interval, so a rerun replaces it; deleted with the interval's stale files; listed in the
manifest as ``index``).

:func:`key_tables` is what the seen index reads: per partition, the index of each group that
has article files, and, for groups without one (lakes written before the index existed), only
those columns of the article files, through ranged reads where the lake allows them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from etl.errors import StoreError
from etl.lake.arrowfs import ArrowLake, arrow_filesystem, read_columns
from etl.lake.base import Lake
from etl.lake.dayview import visible_article_keys
from etl.lake.layout import ARTICLE_KEY, INDEX_KEY, index_key, index_prefix
from etl.schema import article_schema

log = logging.getLogger("etl.lake.keyindex")

INDEX_COLUMNS = ("article_id", "url", "canonical_url", "content_hash", "simhash")


def index_schema() -> pa.Schema:
    """The index row: the article schema's key columns (same names, types and nullability;
    no descriptions, which would cost more than the rows of a small interval)."""
    full = article_schema()
    return pa.schema([full.field(n).remove_metadata() for n in INDEX_COLUMNS])


def group_of(article_key: str) -> str | None:
    """The group (interval id) of an article file key, or None for a key of another shape."""
    m = ARTICLE_KEY.match(article_key)
    return m.group(2) if m else None


def write_index(shard_files: Sequence[Path], target: Path) -> int:
    """Write the index of locally written shard files to ``target``; returns its row count."""
    schema = index_schema()
    # No dictionaries: the values are nearly all distinct (hashes, URLs); plain + zstd is smaller.
    # No Arrow schema in the footer either: plain Parquet types say it all for these columns.
    opts: dict[str, Any] = {"compression": "zstd", "use_dictionary": False, "store_schema": False}
    with pq.ParquetWriter(target, schema, write_statistics=False, **opts) as writer:
        rows = 0
        for path in shard_files:
            pf = pq.ParquetFile(path)
            batches = pf.iter_batches(
                batch_size=2000, columns=list(INDEX_COLUMNS), use_threads=False
            )
            for batch in batches:
                writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
                rows += batch.num_rows
    return rows


def _read_columns(lake: Lake, alake: ArrowLake | None, key: str, columns: list[str]) -> pa.Table:
    return read_columns(lake, key, columns, alake=alake)[1]


def key_tables(
    lake: Lake, dt: str, *, columns: Sequence[str], skip_group: str | None = None
) -> Iterator[pa.Table]:
    """Tables of ``columns`` (a subset of :data:`INDEX_COLUMNS`) covering every article file
    of partition ``dt`` except the group ``skip_group``: from the index where there is one."""
    cols = list(columns)
    if not set(cols) <= set(INDEX_COLUMNS):
        raise ValueError(f"not key index columns: {sorted(set(cols) - set(INDEX_COLUMNS))}")
    groups: dict[str, list[str]] = {}
    for key in visible_article_keys(lake, dt):  # a compacted day: its compacted files
        group = group_of(key)
        if group is not None and group != skip_group:
            groups.setdefault(group, []).append(key)
    opened: list[ArrowLake | None] = []  # the ranged-read filesystem, opened on first need
    indexed = set()
    for key in lake.list(index_prefix(dt)):
        m = INDEX_KEY.match(key)
        if m and m.group(2) in groups:  # an index without article files stands for nothing
            indexed.add(m.group(2))
    for group in sorted(groups):
        if group in indexed:
            key = index_key(dt, group)
            try:
                data = lake.get_bytes(key)
                yield pq.read_table(pa.BufferReader(data), columns=cols, use_threads=False)
                continue
            except StoreError as exc:
                if exc.kind != "not-found":
                    raise
            except (pa.ArrowInvalid, OSError) as exc:
                raise StoreError(key, f"not a readable Parquet file: {exc}") from exc
            log.debug("index %s went away: reading the article files", key)
        if not opened:
            opened.append(arrow_filesystem(lake))
        for key in groups[group]:
            yield _read_columns(lake, opened[0], key, cols)
