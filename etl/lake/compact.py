"""Compaction: a day's hourly article files merged into a few large sorted files.

Entry point :func:`compact_day` (``newsetl compact --day D``, DAG ``news_compact``). Steps:

1. Read what readers see of the day (:mod:`etl.lake.dayview`): the hourly files, or the current
   compacted files plus intervals published since.
2. Link near-duplicates across the day: rows whose ``simhash`` is within 3 bits of an earlier
   row's (earlier: ``published_at``, else ``fetched_at``, then ``article_id``) get that row's
   ``article_id`` in ``duplicate_of`` (the first of the chain, so one story has one original).
   Rows are never dropped; a ``duplicate_of`` set before (by ingest) is kept.
3. Sort by (``source_id``, ``published_at``, ``article_id``) in DuckDB (spills to disk past its
   memory limit) and write ``articles/dt=D/compact-<G>-<n>.parquet`` under a new generation
   ``G``, row groups sized by :func:`row_group_bytes`, files of at most :data:`FILE_ROWS` rows,
   plus the key index ``_index/dt=D/compact-<G>.parquet``.
4. Switch: put the day's pointer ``_compact/dt=D.json`` (the one atomic step readers honour).
5. Delete what it replaced: the hourly files and their indexes, the previous generation.

Idempotent: a day whose visible files are exactly one complete generation is left alone; a
crash before step 4 leaves an unreferenced generation nobody reads (the next run deletes it);
a crash after it leaves replaced files nobody reads (the next run deletes them). Reruns and
backfills of a compacted day's intervals publish hourly files again (only articles not already
compacted: the seen index reads the compacted index) and :func:`etl.lake.dayview.release_interval`
makes them visible; the next compaction folds them in.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from etl.article import hamming
from etl.errors import StoreError
from etl.lake.arrowfs import ArrowLake, arrow_filesystem, parquet_dataset
from etl.lake.base import Lake
from etl.lake.dayview import pointer_json, read_pointer, split_key, visible_in_day
from etl.lake.keyindex import write_index
from etl.lake.layout import (
    COMPACT_PREFIX,
    article_key,
    articles_prefix,
    index_key,
    index_prefix,
    manifest_key,
    pointer_key,
)
from etl.lake.lease import new_holder, publish_lease
from etl.lake.settings import LeaseSettings
from etl.lake.store import _parquet_options
from etl.schema import article_schema

log = logging.getLogger("etl.lake.compact")

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
NEAR_DISTANCE = 3
_BLOCK_BITS = 16


@dataclass(frozen=True)
class CompactResult:
    dt: str
    generation: str | None
    rows: int
    files: tuple[str, ...]
    replaced: tuple[str, ...]  # interval ids folded in this time
    deleted: tuple[str, ...]
    duplicates_linked: int
    skipped: bool = False  # already compacted, nothing new

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def link_near_duplicates(keys: pa.Table, distance: int = NEAR_DISTANCE) -> dict[str, str]:
    """``article_id -> article_id`` of its earliest near-duplicate (simhash within
    ``distance`` bits), for the rows that have one. Pigeonhole lookup on four 16-bit blocks."""
    when = pc.coalesce(keys.column("published_at"), keys.column("fetched_at")).to_pylist()
    rows = sorted(
        zip(when, keys.column("article_id").to_pylist(), keys.column("simhash").to_pylist(),
            strict=True),
        key=lambda r: (r[0] is None, r[0] or 0, r[1]),
    )  # fmt: skip
    blocks: list[dict[int, list[tuple[int, str]]]] = [{} for _ in range(4)]
    links: dict[str, str] = {}
    for _when, aid, sim in cast(list[tuple[Any, str, int]], rows):
        if aid in links:
            continue
        h = sim & 0xFFFFFFFFFFFFFFFF
        parts = [(h >> (i * _BLOCK_BITS)) & 0xFFFF for i in range(4)]
        match = None
        for bucket, key in zip(blocks, parts, strict=True):
            for other, other_id in bucket.get(key, ()):
                if other_id != aid and hamming(h, other) <= distance:
                    match = other_id
                    break
            if match:
                break
        if match is not None:
            links[aid] = links.get(match, match)  # the first of the chain
            continue
        for bucket, key in zip(blocks, parts, strict=True):
            bucket.setdefault(key, []).append((h, aid))
    return links


def _with_links(batch: pa.RecordBatch, links: dict[str, str]) -> pa.RecordBatch:
    if not links:
        return batch
    ids = cast(list[str], batch.column("article_id").to_pylist())
    old = batch.column("duplicate_of").to_pylist()
    new = pa.array([o if o is not None else links.get(i) for i, o in zip(ids, old, strict=True)],
                   pa.string())  # fmt: skip
    return batch.set_column(batch.schema.get_field_index("duplicate_of"), "duplicate_of", new)


def compact_options(schema: pa.Schema) -> dict[str, Any]:
    """Parquet writer options of compacted files: the hourly files' options, with the prose
    columns (:data:`FAST_COLUMNS`) in :data:`FAST_CODEC`, which scans decode faster."""
    opts = _parquet_options(schema)
    codec, level = opts.pop("compression"), opts.pop("compression_level")
    opts["compression"] = {f.name: FAST_CODEC if f.name in FAST_COLUMNS else codec for f in schema}
    opts["compression_level"] = {f.name: level for f in schema if f.name not in FAST_COLUMNS}
    return opts


def row_group_bytes(day_bytes: int) -> int:
    """The row-group size (uncompressed bytes) for a day of ``day_bytes``: the day split into
    :data:`MIN_ROW_GROUPS` groups, kept between :data:`MIN_ROW_GROUP_BYTES` and
    :data:`ROW_GROUP_BYTES`."""
    return max(MIN_ROW_GROUP_BYTES, min(ROW_GROUP_BYTES, day_bytes // MIN_ROW_GROUPS))


def _uncompressed_bytes(dataset: Any) -> int:
    """The day's data size from its files' footers (no data page is read)."""
    total = 0
    for fragment in dataset.get_fragments():
        meta = fragment.metadata
        total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return int(total)


class _Files:
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


def _sorted_batches(dataset: Any, batch_rows: int = 2048) -> Iterator[pa.RecordBatch]:
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


def _generation(group: str) -> str:
    return group.removeprefix(COMPACT_PREFIX)


def _garbage(lake: Lake, dt: str, pointer: dict[str, Any] | None) -> list[str]:
    """Files of the day no reader sees any more: the hourly files (and indexes) of intervals
    the pointer replaced, and compacted files (and indexes) of generations *older* than the
    pointer's (a newer one may be a compaction still writing; it cleans up after itself)."""
    if pointer is None:
        return []
    replaced = set(pointer.get("replaced", {}))
    current = str(pointer.get("generation", ""))

    def stale(group: str) -> bool:
        if group.startswith(COMPACT_PREFIX):
            return _generation(group) < current
        return group in replaced

    out = [k for k in lake.list(articles_prefix(dt)) if (p := split_key(k)) and stale(p[1])]
    for key in lake.list(index_prefix(dt)):
        if stale(key.rsplit("/", 1)[-1].removesuffix(".parquet")):
            out.append(key)
    return sorted(out)


def _manifest_tags(lake: Lake, groups: list[str]) -> dict[str, str | None]:
    """The tag of each interval's manifest (None: none yet): a publish of the interval, which
    writes its manifest last, changes it."""
    out: dict[str, str | None] = {}
    for g in groups:
        got = lake.get_tagged(manifest_key(g))
        out[g] = got[1] if got else None
    return out


class _DayChanged(Exception):
    """An interval of the day was published while it was compacted."""


ATTEMPTS = 3


def compact_day(
    lake: Lake, dt: str, *, alake: ArrowLake | None = None, lease: LeaseSettings | None = None
) -> CompactResult:
    """Compact one day partition (see the module doc); safe to run again at any point. A day
    that changes under the compaction (an interval published) is compacted again."""
    for _ in range(ATTEMPTS):
        try:
            return _compact_once(lake, dt, alake=alake, lease=lease or LeaseSettings())
        except _DayChanged:
            log.info("day %s changed while it was compacted: compacting it again", dt)
    raise StoreError(pointer_key(dt), f"the day changed under {ATTEMPTS} compactions in a row "
                     "(intervals being published): nothing switched, run it again later",
                     transient=True)  # fmt: skip


def _compact_once(lake: Lake, dt: str, *, alake: ArrowLake | None, lease: LeaseSettings
                  ) -> CompactResult:  # fmt: skip
    holder = new_holder("compact")
    # manifests first: a publish of the day that ends after this point changes its tag
    tags = _manifest_tags(lake, sorted({p[1] for k in lake.list(articles_prefix(dt))
                                        if (p := split_key(k))
                                        and not p[1].startswith(COMPACT_PREFIX)}))  # fmt: skip
    pointer = read_pointer(lake, dt)
    visible = visible_in_day(lake.list(articles_prefix(dt)), pointer)
    groups = {p[1] for k in visible if (p := split_key(k))}
    hourly = sorted(g for g in groups if not g.startswith(COMPACT_PREFIX))
    if not visible or (pointer is not None and not hourly):
        with publish_lease(lake, holder=holder, settings=lease):  # deletes against the pointer now
            deleted = _garbage(lake, dt, read_pointer(lake, dt))
            if deleted:
                lake.delete(deleted)
        log.info("day %s: nothing to compact (%d stale objects removed)", dt, len(deleted))
        return CompactResult(dt, pointer.get("generation") if pointer else None,
                             int(pointer.get("rows", 0)) if pointer else 0,
                             tuple(visible), (), tuple(deleted), 0, skipped=True)  # fmt: skip
    alake = alake or arrow_filesystem(lake)
    with tempfile.TemporaryDirectory(prefix="newsetl-compact-") as tmpdir:
        tmp = Path(tmpdir)
        if alake is None:  # a lake pyarrow cannot reach: copy the day's files locally first
            for key in visible:
                target = tmp / "in" / key
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(lake.get_bytes(key))
            alake = ArrowLake(pafs.LocalFileSystem(), (tmp / "in").as_posix())
        dataset = parquet_dataset(alake, visible, article_schema(), "articles")
        try:
            keys = dataset.to_table(columns=["article_id", "simhash", "published_at", "fetched_at"])
            links = link_near_duplicates(keys)
            out = _Files(tmp, article_schema(), row_group_bytes(_uncompressed_bytes(dataset)))
            for batch in _sorted_batches(dataset):
                out.add(_with_links(batch, links))
            out.close()
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            raise StoreError(articles_prefix(dt), f"compaction failed reading: {exc}") from exc
        # ordered by time (to the microsecond), unique by its random tail
        generation = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:8]
        group = f"{COMPACT_PREFIX}{generation}"
        files = [article_key(dt, group, i) for i in range(len(out.paths))]
        for key, path in zip(files, out.paths, strict=True):
            lake.put_file(key, path)
        index = index_key(dt, group)
        write_index(out.paths, tmp / "index.parquet")
        lake.put_file(index, tmp / "index.parquet")
    replaced = dict(pointer.get("replaced", {})) if pointer else {}
    for g in hourly:
        replaced[g] = [k for k in visible if split_key(k) == (dt, g)]
    new_pointer = {
        "dt": dt,
        "generation": generation,
        "files": files,
        "index": index,
        "rows": sum(out.rows),
        "replaced": replaced,
        "duplicates_linked": len(links),
        "compacted_at": datetime.now(UTC).isoformat(),
        "previous": pointer.get("generation") if pointer else None,
    }
    started_from = pointer.get("generation") if pointer else None
    # The switch and its deletes under the lake-wide publish lease: no publish of the day (whose
    # release_interval rewrites the pointer) and no other compaction's switch interleaves.
    with publish_lease(lake, holder=holder, settings=lease):
        now = read_pointer(lake, dt)
        if now is not None and now.get("generation") != started_from:
            # another compaction of this day switched meanwhile (from the state we read, or a
            # later one): it wins, ours is discarded
            lake.delete([*files, index])
            log.warning("day %s: another compaction (%s) switched first; %s discarded",
                        dt, now.get("generation"), generation)  # fmt: skip
            return CompactResult(dt, str(now.get("generation")), int(now.get("rows", 0)),
                                 tuple(now.get("files", ())), (), (), 0, skipped=True)  # fmt: skip
        changed = now != pointer or any(_manifest_tags(lake, [g])[g] != tags.get(g) for g in hourly)
        if changed:  # an interval of the day was published meanwhile: what we read is stale
            lake.delete([*files, index])
            raise _DayChanged(dt)
        lake.put_bytes(pointer_key(dt), pointer_json(new_pointer))  # the switch
        deleted = _garbage(lake, dt, new_pointer)
        if deleted:
            lake.delete(deleted)
    log.info("day %s: %d rows from %d intervals into %d files (%d near-duplicates linked)",
             dt, sum(out.rows), len(hourly), len(files), len(links))  # fmt: skip
    return CompactResult(dt, generation, sum(out.rows), tuple(files), tuple(hourly),
                         tuple(deleted), len(links))  # fmt: skip
