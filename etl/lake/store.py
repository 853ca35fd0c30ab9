"""Publish an interval's articles to the lake, and read them back.

Entry point :func:`publish_interval`. Layout (see DESIGN.md)::

    articles/dt=<dt>/<interval>-<shard:03d>.parquet   article schema, zstd, sharded by article_id
    fetch_log/dt=<dt>/<interval>.parquet
    _index/dt=<dt>/<interval>.parquet                 key index of the shards (etl.lake.keyindex)
    _runs/<interval>.json                             the manifest, written last

Every output is named from the interval, so a rerun replaces it. Order of a publish: all
Parquet files are first written to a local temp folder (an exception in the input stream
leaves the lake untouched); with a :class:`SeenRecheck` the lake-wide publish lease is then
taken and the seen index read again, dropping rows another interval published meanwhile; each
file is then put atomically over its key; then the interval's
stale objects (shards beyond the new shard count, a fetch log not written this time) are
deleted; the manifest goes last. Between the puts and the stale deletes a reader globbing the
partition can briefly see an old shard next to the new ones; the manifest lists the exact keys.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.errors import StoreError
from etl.lake.base import Lake
from etl.lake.dayview import release_interval, visible_article_keys
from etl.lake.keyindex import write_index
from etl.lake.layout import article_key, articles_prefix, fetch_log_key, index_key, manifest_key
from etl.lake.lease import Lease, new_holder, publish_lease
from etl.lake.seen import seen_index
from etl.lake.settings import LeaseSettings
from etl.records import Interval
from etl.schema import article_schema, fetch_log_schema, schema_version
from etl.workdir import workdir

if TYPE_CHECKING:
    from etl.article import DedupeStats

__all__ = [
    "FileInfo",
    "Manifest",
    "SeenRecheck",
    "publish_interval",
    "read_articles",
    "read_manifest",
    "read_table",
    "seen_ids",
    "shard_of",
    "write_table",
]

log = logging.getLogger("etl.lake.store")

ROW_GROUP_ROWS = 50_000
# Uncompressed Arrow bytes buffered per row group: what a shard writer holds, so a publish's
# memory is bounded by it, not by the interval's rows (64 MiB held all 20,000 rows of
# bench_load at once). Hourly shards are smaller; `newsetl compact` makes big row groups.
ROW_GROUP_BYTES = 4 * 1024 * 1024
MAX_SHARDS = 1000
# Low-cardinality columns get dictionary encoding; long text goes plain (zstd does the rest).
_DICT_COLUMNS = {"source_id", "domain", "date_source", "language", "sitename", "dt", "error_class"}


# Test hook: called with the interval between a publish's seen check and its first write (the
# window in which another interval's publish must not interleave). Tests set it to widen the
# window on purpose; None in production.
hook_between_seen_and_write: Callable[[Interval], None] | None = None


def _parquet_options(schema: pa.Schema) -> dict[str, Any]:
    return {
        "compression": "zstd",
        "compression_level": 3,
        "write_statistics": True,
        "use_dictionary": [f.name for f in schema if f.name in _DICT_COLUMNS],
    }


@dataclass(frozen=True)
class FileInfo:
    key: str
    rows: int
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """What one publish wrote; stored as ``_runs/<interval>.json``."""

    interval: str
    dt: str
    start: str
    end: str
    schema_version: int
    articles: int
    shards: tuple[FileInfo, ...]
    fetch_log: FileInfo | None
    deleted: tuple[str, ...]
    started_at: str
    finished_at: str
    extra: dict[str, Any] = field(default_factory=dict)
    # complete | incomplete: whether URLs of the interval are still pending (a retry or a
    # rerun fetches them); ``pending``: {url, source, purpose, error_class, error, runs};
    # ``failed_sources``: {source, error, kind, transient}; ``quality``: the gate's figures
    status: str = "complete"
    pending: tuple[dict[str, Any], ...] = ()
    failed_sources: tuple[dict[str, Any], ...] = ()
    quality: dict[str, Any] = field(default_factory=dict)
    attempt: str | None = None
    index: FileInfo | None = None  # _index/dt=<dt>/<interval>.parquet (etl.lake.keyindex)

    @property
    def key(self) -> str:
        return manifest_key(self.interval)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str) + "\n"


def shard_of(article_id: str, n_shards: int) -> int:
    """Stable shard of an article: the same id always lands in the same shard."""
    digest = hashlib.blake2b(article_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_shards


def _shard_pattern(interval: Interval) -> re.Pattern[str]:
    return re.compile(rf"^articles/dt={interval.dt}/{re.escape(interval.id)}-\d{{3,}}\.parquet$")


class _ShardWriter:
    """One Parquet file in the temp folder, written in row groups of bounded size."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path, self.schema = path, schema
        self.writer = pq.ParquetWriter(path, schema, **_parquet_options(schema))
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


def _conform(data: _T, schema: pa.Schema, dt: str, what: str) -> _T:
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


def _write_shards(
    tmp: Path, interval: Interval, batches: Iterable[pa.RecordBatch], n_shards: int
) -> dict[int, _ShardWriter]:
    schema = article_schema()
    writers: dict[int, _ShardWriter] = {}
    try:
        for raw in batches:
            batch = _conform(raw, schema, interval.dt, f"articles/dt={interval.dt}")
            ids = batch.column("article_id").to_pylist()
            groups: dict[int, list[int]] = {}
            for i, aid in enumerate(ids):
                groups.setdefault(shard_of(str(aid), n_shards), []).append(i)
            for s, rows in groups.items():
                if s not in writers:
                    writers[s] = _ShardWriter(tmp / f"{s:03d}.parquet", schema)
                part = batch if len(rows) == batch.num_rows else batch.take(pa.array(rows))
                writers[s].add(part)
    finally:
        for w in writers.values():
            w.close()
    return writers


@dataclass
class SeenRecheck:
    """Exactly once across intervals: the seen check a publish repeats inside the lake-wide
    publish lease (``_leases/publish.json``), just before it writes.

    The seen index a run reads before publishing is old by the time it writes: another
    interval may have published the same article meanwhile (the DAG runs 4 intervals at once).
    Holding the publish lease, the publish reads the seen index again (``days`` around the
    interval, never the interval itself) and drops the staged rows whose ``article_id`` is in
    it; no other publish can write between that read and its own writes. ``dropped`` lists the
    ids dropped; ``stats`` (the run's :class:`~etl.article.DedupeStats`) counts them as ``seen``
    and ``seen_at_publish`` too, before the manifest is built.
    """

    days: int
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    holder: str = field(default_factory=lambda: new_holder("publish"))
    stats: DedupeStats | None = None
    dropped: list[str] = field(default_factory=list)


def _drop_seen(
    lake: Lake, interval: Interval, writers: dict[int, _ShardWriter], recheck: SeenRecheck
) -> None:
    """Drop from the local shard files the rows the seen index (read now) already holds."""
    seen = seen_ids(lake, days=recheck.days, exclude=interval)
    for s in sorted(writers):
        w = writers[s]
        hits = sorted(set(w.ids) & seen)
        if not hits:
            continue
        table = pq.read_table(w.path, use_threads=False)
        keep = pc.invert(pc.is_in(table.column("article_id"), value_set=pa.array(hits)))
        table = table.filter(keep)
        w.ids = [i for i in w.ids if i not in seen]
        w.rows = table.num_rows
        if table.num_rows:
            pq.write_table(
                table, w.path, row_group_size=ROW_GROUP_ROWS, **_parquet_options(w.schema)
            )
        else:
            del writers[s]
        recheck.dropped += hits
    if recheck.dropped:
        log.info(
            "interval %s: %d articles published by another interval meanwhile, dropped",
            interval.id,
            len(recheck.dropped),
        )
    if recheck.stats is not None:
        recheck.stats.seen += len(recheck.dropped)
        recheck.stats.seen_at_publish += len(recheck.dropped)
        recheck.stats.rows_out -= len(recheck.dropped)


def publish_interval(
    lake: Lake,
    interval: Interval,
    batches: Iterable[pa.RecordBatch],
    *,
    n_shards: int = 1,
    fetch_log: pa.Table | Callable[[], pa.Table | None] | None = None,
    manifest_extra: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
    status: str = "complete",
    pending: Iterable[Mapping[str, Any]] = (),
    failed_sources: Iterable[Mapping[str, Any]] = (),
    quality: Mapping[str, Any] | None = None,
    attempt: str | None = None,
    recheck: SeenRecheck | None = None,
) -> Manifest:
    """Write one interval's articles (and fetch log) to the lake, replacing any earlier run.

    ``manifest_extra`` is stored under ``extra`` in the manifest; pass a callable to have it
    evaluated after ``batches`` is consumed (e.g. ``lambda: {"dedupe": run.stats.as_dict()}``).
    With ``recheck`` the writes happen under the lake-wide publish lease, after a fresh seen
    check (see :class:`SeenRecheck`); the local files are built before the lease is taken.
    """
    if not 1 <= n_shards <= MAX_SHARDS:
        raise ValueError(f"n_shards must be 1..{MAX_SHARDS}, got {n_shards}")
    started = datetime.now(UTC)
    dt, iid = interval.dt, interval.id
    shards: list[FileInfo] = []
    log_info: FileInfo | None = None
    # The lease (when re-checking) is taken after the local files are built and held until
    # the manifest is written; the temp folder goes as soon as the puts are done.
    with ExitStack() as held:
        with workdir("publish") as tmpdir:
            tmp = Path(tmpdir)
            writers = _write_shards(tmp, interval, batches, n_shards)
            if callable(fetch_log):  # built after the article stream is consumed
                fetch_log = fetch_log()
            if fetch_log is not None:
                schema = fetch_log_schema()
                table = _conform(fetch_log, schema, dt, f"fetch_log/dt={dt}")
                pq.write_table(table, tmp / "fetch_log.parquet", **_parquet_options(schema))
            lease: Lease | None = None
            if recheck is not None:
                lease = held.enter_context(
                    publish_lease(lake, holder=recheck.holder, settings=recheck.lease)
                )
                _drop_seen(lake, interval, writers, recheck)
            if hook_between_seen_and_write is not None:
                hook_between_seen_and_write(interval)
            # the old key index goes first: until the new one is in, the seen index reads the
            # shards themselves (an old index beside new shards lacked their new ids)
            lake.delete([index_key(dt, iid)])
            for s in sorted(writers):
                w, key = writers[s], article_key(dt, iid, s)
                if lease is not None:
                    lease.check()
                lake.put_file(key, w.path)
                shards.append(FileInfo(key, w.rows, w.path.stat().st_size))
            index_info = _put_index(lake, interval, [writers[s].path for s in sorted(writers)], tmp)
            if fetch_log is not None:
                key, path = fetch_log_key(dt, iid), tmp / "fetch_log.parquet"
                lake.put_file(key, path)
                log_info = FileInfo(key, fetch_log.num_rows, path.stat().st_size)
        if lease is not None:
            lease.check()
        manifest = _finish(
            lake,
            interval,
            shards=shards,
            log_info=log_info,
            index_info=index_info,
            started=started,
            extra=manifest_extra,
            fields={
                "status": status,
                "pending": tuple(dict(p) for p in pending),
                "failed_sources": tuple(dict(f) for f in failed_sources),
                "quality": dict(quality or {}),
                "attempt": attempt,
            },
        )
    log.info("interval %s: published %d articles in %d shards", iid, manifest.articles, len(shards))
    return manifest


def _finish(
    lake: Lake,
    interval: Interval,
    *,
    shards: list[FileInfo],
    log_info: FileInfo | None,
    index_info: FileInfo | None,
    started: datetime,
    extra: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None,
    fields: Mapping[str, Any],
) -> Manifest:
    """Delete the interval's stale objects, then write its manifest (last)."""
    dt, iid = interval.dt, interval.id
    new = {f.key for f in shards} | ({log_info.key} if log_info else set())
    new |= {index_info.key} if index_info else set()
    pattern = _shard_pattern(interval)
    old = [k for k in lake.list(articles_prefix(dt)) if pattern.match(k)]
    old += [k for k in lake.list(index_key(dt, iid)) if k == index_key(dt, iid)]
    log_key = fetch_log_key(dt, iid)
    old += [k for k in lake.list(log_key) if k == log_key]
    stale = sorted(set(old) - new)
    if stale:
        lake.delete(stale)
        log.info("interval %s: removed %d stale objects", iid, len(stale))
    # a rerun on a compacted day: its new files become visible, once no old shard is left
    release_interval(lake, dt, iid)
    manifest = Manifest(
        interval=iid,
        dt=dt,
        start=interval.start.astimezone(UTC).isoformat(),
        end=interval.end.astimezone(UTC).isoformat(),
        schema_version=schema_version(article_schema()),
        articles=sum(f.rows for f in shards),
        shards=tuple(shards),
        fetch_log=log_info,
        deleted=tuple(stale),
        started_at=started.isoformat(),
        finished_at=datetime.now(UTC).isoformat(),
        extra=dict(extra() if callable(extra) else extra or {}),
        **fields,
        index=index_info,
    )
    lake.put_bytes(manifest.key, manifest.to_json().encode("utf-8"))
    return manifest


def _put_index(lake: Lake, interval: Interval, shards: list[Path], tmp: Path) -> FileInfo | None:
    """The interval's key index (etl.lake.keyindex), put after its shards; None without shards."""
    if not shards:
        return None
    path, key = tmp / "index.parquet", index_key(interval.dt, interval.id)
    rows = write_index(shards, path)
    lake.put_file(key, path)
    return FileInfo(key, rows, path.stat().st_size)


def read_manifest(lake: Lake, interval: Interval) -> dict[str, Any] | None:
    """The stored manifest of an interval as a dict, or None if it was never published."""
    key = manifest_key(interval.id)
    if not lake.exists(key):
        return None
    data: dict[str, Any] = json.loads(lake.get_bytes(key))
    return data


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


def seen_ids(
    lake: Lake, *, days: int, exclude: Interval, with_urls: bool = False
) -> frozenset[str]:
    """Article ids in partitions within ``days`` days of ``exclude.dt``, both sides.

    Read from the key index (``_index/``, etl.lake.keyindex), or from just these columns of the
    article files of intervals published without one. ``exclude``'s own shards (and index) are
    never read (a rerun must reproduce its interval, not find its own rows "seen"). Later
    partitions count too, so a backfill of an older interval does not duplicate
    articles a later interval already holds.

    ``with_urls`` adds :func:`etl.urls.article_id` of each row's ``url`` and ``canonical_url``:
    what discovery needs, since it names a page by the URL it was listed under, while a row's id
    may come from a canonical link on another host.
    """
    return seen_index(  # each file read once per process and version (etl.lake.seen)
        lake, days=days, exclude=exclude, with_urls=with_urls
    )
