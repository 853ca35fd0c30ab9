"""Publish an interval's articles to the lake (read back: etl.lake.tables, etl.lake.manifest).

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
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from etl.lake.base import Lake
from etl.lake.dayview import release_interval
from etl.lake.keyindex import write_index
from etl.lake.layout import article_key, articles_prefix, fetch_log_key, index_key
from etl.lake.lease import publish_lease
from etl.lake.lease_object import Lease
from etl.lake.manifest import FileInfo, Manifest
from etl.lake.seen_recheck import SeenRecheck, drop_seen
from etl.lake.tables import ShardWriter, conform, parquet_options
from etl.records import Interval
from etl.schema import article_schema, fetch_log_schema, schema_version
from etl.workdir import workdir

__all__ = ["publish_interval", "shard_of"]

log = logging.getLogger("etl.lake.store")


MAX_SHARDS = 1000


# Test hook: called with the interval between a publish's seen check and its first write (the
# window in which another interval's publish must not interleave). Tests set it to widen the
# window on purpose; None in production.
hook_between_seen_and_write: Callable[[Interval], None] | None = None


def shard_of(article_id: str, n_shards: int) -> int:
    """Stable shard of an article: the same id always lands in the same shard."""
    digest = hashlib.blake2b(article_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_shards


def _shard_pattern(interval: Interval) -> re.Pattern[str]:
    return re.compile(rf"^articles/dt={interval.dt}/{re.escape(interval.id)}-\d{{3,}}\.parquet$")


def _write_shards(
    tmp: Path, interval: Interval, batches: Iterable[pa.RecordBatch], n_shards: int
) -> dict[int, ShardWriter]:
    schema = article_schema()
    writers: dict[int, ShardWriter] = {}
    try:
        for raw in batches:
            batch = conform(raw, schema, interval.dt, f"articles/dt={interval.dt}")
            ids = batch.column("article_id").to_pylist()
            groups: dict[int, list[int]] = {}
            for i, aid in enumerate(ids):
                groups.setdefault(shard_of(str(aid), n_shards), []).append(i)
            for s, rows in groups.items():
                if s not in writers:
                    writers[s] = ShardWriter(tmp / f"{s:03d}.parquet", schema)
                part = batch if len(rows) == batch.num_rows else batch.take(pa.array(rows))
                writers[s].add(part)
    finally:
        for w in writers.values():
            w.close()
    return writers


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
                table = conform(fetch_log, schema, dt, f"fetch_log/dt={dt}")
                pq.write_table(table, tmp / "fetch_log.parquet", **parquet_options(schema))
            lease: Lease | None = None
            if recheck is not None:
                lease = held.enter_context(
                    publish_lease(lake, holder=recheck.holder, settings=recheck.lease)
                )
                drop_seen(lake, interval, writers, recheck)
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
            if fetch_log is not None:
                key, path = fetch_log_key(dt, iid), tmp / "fetch_log.parquet"
                lake.put_file(key, path)
                log_info = FileInfo(key, fetch_log.num_rows, path.stat().st_size)
            # stale shards (an earlier run's, past this run's count) go before the new index:
            # killed in between, no old shard is left that the index does not stand for
            early = _stale(lake, interval, {f.key for f in shards}, shards_only=True)
            if early:
                lake.delete(early)
            index_info = _put_index(lake, interval, [writers[s].path for s in sorted(writers)], tmp)
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
            deleted_before=early,
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
    deleted_before: list[str] | None = None,
) -> Manifest:
    """Delete the interval's stale objects, then write its manifest (last)."""
    dt, iid = interval.dt, interval.id
    new = {f.key for f in shards} | ({log_info.key} if log_info else set())
    new |= {index_info.key} if index_info else set()
    stale = _stale(lake, interval, new)
    if stale:
        lake.delete(stale)
    stale = sorted({*stale, *(deleted_before or [])})
    if stale:
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


def _stale(
    lake: Lake, interval: Interval, new: set[str], *, shards_only: bool = False
) -> list[str]:
    """The interval's objects in the lake that are not ``new``: shards of an earlier run (and,
    unless ``shards_only``, its key index and fetch log)."""
    dt, iid = interval.dt, interval.id
    pattern = _shard_pattern(interval)
    old = [k for k in lake.list(articles_prefix(dt)) if pattern.match(k)]
    if not shards_only:
        old += [k for k in lake.list(index_key(dt, iid)) if k == index_key(dt, iid)]
        log_key = fetch_log_key(dt, iid)
        old += [k for k in lake.list(log_key) if k == log_key]
    return sorted(set(old) - new)


def _put_index(lake: Lake, interval: Interval, shards: list[Path], tmp: Path) -> FileInfo | None:
    """The interval's key index (etl.lake.keyindex), put after its shards; None without shards."""
    if not shards:
        return None
    path, key = tmp / "index.parquet", index_key(interval.dt, interval.id)
    rows = write_index(shards, path)
    lake.put_file(key, path)
    return FileInfo(key, rows, path.stat().st_size)
