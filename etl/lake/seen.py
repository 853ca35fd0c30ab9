"""The seen index, read once: a cache of the key-index files by object version, and the
per-interval snapshot that DAG tasks share.

:func:`seen_index` (behind :func:`etl.lake.seen_recheck.seen_ids`) is the ids of the article files
of the days around an interval, never the interval's own. Each read lists the window's objects (one
LIST per month of ``articles/dt=``, ``_index/dt=`` and ``_compact/dt=``, not three requests a
day) with each object's *version* (the ETag on S3; inode, size and mtime locally) and GETs only
the files this process has not read at that version: a key-index file never changes under its
key except by a rerun of its interval (a new version) or a compaction (a new generation key), so
a second read in one process costs the LISTs alone, and the publish re-check under the publish
lease is incremental. The result is always the lake as listed now, never a stale one.

Across processes (the tasks of one DAG run) the per-interval snapshot of
:mod:`etl.lake.seen_snapshot` carries what a read found, file by file with versions, and seeds
this cache.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.errors import StoreError
from etl.lake.arrowfs import arrow_filesystem, read_columns
from etl.lake.base import Lake
from etl.lake.dayview import LOOKS, visible_in_day
from etl.lake.layout import (
    ARTICLE_KEY,
    INDEX_KEY,
    POINTER_KEY,
    articles_prefix,
    index_key,
    index_prefix,
    pointer_key,
)
from etl.lake.seen_cache import Cache, Part, cache_of
from etl.records import Interval

__all__ = [
    "seen_index",
    "seen_parts",
    "union",
    "window",
]

log = logging.getLogger("etl.lake.seen")

_COLUMNS = ["article_id", "url", "canonical_url"]


def _listed(lake: Lake, prefix: str) -> list[tuple[str, str | None]]:
    """Keys under ``prefix`` with their versions (None: this lake cannot say, never cached)."""
    lister: Callable[[str], list[tuple[str, str]]] | None = getattr(lake, "list_versions", None)
    if lister is None:
        return [(k, None) for k in lake.list(prefix)]
    return list(lister(prefix))


def window(exclude: Interval, days: int) -> list[str]:
    """The ``dt`` partitions within ``days`` days of ``exclude.dt``, both sides."""
    if days < 0:
        raise ValueError(f"days must be >= 0, got {days}")
    day0 = date.fromisoformat(exclude.dt)
    return [(day0 + timedelta(days=o)).isoformat() for o in range(-days, days + 1)]


@dataclass
class _Listing:
    articles: dict[str, list[tuple[str, str | None]]]  # dt -> article files
    indexes: dict[str, dict[str, tuple[str, str | None]]]  # dt -> group -> index key, version
    pointers: dict[str, tuple[str, str | None]]  # dt -> pointer key, version


def _list_window(lake: Lake, dts: list[str]) -> _Listing:
    """One LIST (page) per month and prefix: the window's article files, indexes, pointers."""
    wanted = set(dts)
    out = _Listing({d: [] for d in dts}, {d: {} for d in dts}, {})
    for month in sorted({d[:7] for d in dts}):
        for key, version in _listed(lake, f"articles/dt={month}"):
            m = ARTICLE_KEY.match(key)
            if m and m.group(1) in wanted:
                out.articles[m.group(1)].append((key, version))
        for key, version in _listed(lake, f"_index/dt={month}"):
            m = INDEX_KEY.match(key)
            if m and m.group(1) in wanted:
                out.indexes[m.group(1)][m.group(2)] = (key, version)
        for key, version in _listed(lake, f"_compact/dt={month}"):
            m = POINTER_KEY.match(key)
            if m and m.group(1) in wanted:
                out.pointers[m.group(1)] = (key, version)
    return out


def _pointer(lake: Lake, cache: Cache, key: str, version: str | None) -> dict[str, Any] | None:
    if version is not None and (key, version) in cache.pointers:
        return cache.pointers[(key, version)]
    try:
        data: dict[str, Any] = json.loads(lake.get_bytes(key))
    except StoreError as exc:
        if exc.kind == "not-found":  # removed since listed
            return None
        raise
    except ValueError as exc:
        raise StoreError(key, f"not a compaction pointer: {exc}") from None
    if version is not None:
        with cache.lock:
            cache.pointers[(key, version)] = data
    return data


def part_of(table: pa.Table) -> Part:
    """A key table's ids, and its distinct URLs (their ids are computed when first asked)."""
    ids = pc.unique(table.column("article_id").combine_chunks()).cast(pa.string())
    urls = pa.chunked_array(
        [c for name in _COLUMNS[1:] for c in table.column(name).cast(pa.string()).chunks],
        pa.string(),
    )
    return Part(ids, urls=pc.unique(urls.combine_chunks()).drop_null())


def _read_part(lake: Lake, opened: list[Any], key: str, *, index: bool) -> Part:
    if index:
        data = lake.get_bytes(key)
        try:
            table = pq.read_table(pa.BufferReader(data), columns=_COLUMNS, use_threads=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise StoreError(key, f"not a readable Parquet file: {exc}") from exc
        return part_of(table)
    if not opened:  # the ranged-read filesystem, opened on first need
        opened.append(arrow_filesystem(lake))
    return part_of(read_columns(lake, key, _COLUMNS, alake=opened[0])[1])


def _part(
    lake: Lake, cache: Cache, opened: list[Any], key: str, version: str | None, *, index: bool
) -> Part:
    if version is not None:
        hit = cache.parts.get((key, version))
        if hit is not None:
            return hit
    part = _read_part(lake, opened, key, index=index)
    if version is not None:
        cache.put(key, version, part)
    return part


def _straddled(
    lake: Lake, cache: Cache, listing: _Listing, dt: str, pointer: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The day's pointer, with ``listing`` of the day made to hold every file it names: a
    compaction that switched between the LISTs and the pointer read wrote files the LIST of
    articles lacks (the day would read as empty). The day is listed again, as
    :func:`etl.lake.dayview.visible_article_keys` does, up to :data:`~etl.lake.dayview.LOOKS`
    times; :func:`visible_in_day` then names a file still missing."""
    for _ in range(LOOKS - 1):
        if pointer is None or set(pointer["files"]) <= {k for k, _v in listing.articles[dt]}:
            break
        log.info("day %s: its compaction pointer names files not listed yet: listing again", dt)
        listing.articles[dt] = _listed(lake, articles_prefix(dt))
        listing.indexes[dt] = {
            m.group(2): (k, v) for k, v in _listed(lake, index_prefix(dt))
            if (m := INDEX_KEY.match(k))
        }  # fmt: skip
        fresh = dict(_listed(lake, pointer_key(dt)))
        key = pointer_key(dt)
        pointer = _pointer(lake, cache, key, fresh[key]) if key in fresh else None
    return pointer


GET_THREADS = 16  # key-index files fetched at once: each is small, so a GET is mostly latency


def _prefetch(lake: Lake, cache: Cache, listing: _Listing, *, skip_group: str) -> dict[str, Part]:
    """The listed key-index files this process has not read at their version, fetched
    :data:`GET_THREADS` at a time (one after another, 360 GETs of an hourly 15-day window took
    seconds on S3). One that went away since listed is left to the caller's fallback."""
    wanted = [
        (key, version)
        for by_group in listing.indexes.values()
        for group, (key, version) in by_group.items()
        if group != skip_group and (version is None or (key, version) not in cache.parts)
    ]
    if len(wanted) < 2:
        return {}

    def fetch(item: tuple[str, str | None]) -> tuple[str, Part | None]:
        key, version = item
        try:
            return key, _part(lake, cache, [], key, version, index=True)
        except StoreError as exc:
            if exc.kind != "not-found":
                raise
            return key, None

    with ThreadPoolExecutor(min(GET_THREADS, len(wanted)), "seen-index") as pool:
        return {k: p for k, p in pool.map(fetch, wanted) if p is not None}


def seen_parts(lake: Lake, *, days: int, exclude: Interval) -> dict[str, tuple[str | None, Part]]:
    """Every file the seen index of ``exclude`` stands on now: key -> (version, part)."""
    cache = cache_of(lake)
    dts = window(exclude, days)
    listing = _list_window(lake, dts)
    opened: list[Any] = []
    pre = _prefetch(lake, cache, listing, skip_group=exclude.id)
    out: dict[str, tuple[str | None, Part]] = {}
    for dt in dts:
        pkey, pversion = listing.pointers.get(dt, (None, None))
        pointer = _pointer(lake, cache, pkey, pversion) if pkey else None
        pointer = _straddled(lake, cache, listing, dt, pointer)
        versions = dict(listing.articles[dt])
        groups: dict[str, list[str]] = {}
        for key in visible_in_day(list(versions), pointer):  # a compacted day: its files
            m = ARTICLE_KEY.match(key)
            if m and m.group(2) != exclude.id:
                groups.setdefault(m.group(2), []).append(key)
        for group in sorted(groups):
            ikey, iversion = listing.indexes[dt].get(group, (index_key(dt, group), None))
            if group in listing.indexes[dt]:
                try:
                    part = pre.get(ikey) or _part(lake, cache, opened, ikey, iversion, index=True)
                    out[ikey] = (iversion, part)
                    continue
                except StoreError as exc:
                    if exc.kind != "not-found":
                        raise
                log.debug("index %s went away: reading the article files", ikey)
            for key in groups[group]:  # no index (written before it existed): the columns
                version = versions[key]
                out[key] = (version, _part(lake, cache, opened, key, version, index=False))
        current = {k: v for k, v in listing.articles[dt] if v is not None}
        current.update({k: v for k, v in listing.indexes[dt].values() if v is not None})
        cache.forget(dt, current)
    return out


def union(parts: Iterable[Part], *, with_urls: bool) -> frozenset[str]:
    ids: set[str] = set()
    for part in parts:
        ids.update(cast(list[str], part.ids.to_pylist()))
        if with_urls:
            ids.update(cast(list[str], part.url_ids().to_pylist()))
    return frozenset(ids)


def seen_index(
    lake: Lake, *, days: int, exclude: Interval, with_urls: bool = False
) -> frozenset[str]:
    """Article ids in partitions within ``days`` days of ``exclude.dt`` (both sides), never
    ``exclude``'s own; ``with_urls`` adds the ids of each row's ``url`` and ``canonical_url``
    (see :func:`etl.lake.seen_recheck.seen_ids`). As the lake is listed now; files read at the
    version listed are not read again."""
    parts = seen_parts(lake, days=days, exclude=exclude)
    ids = union((p for _, p in parts.values()), with_urls=with_urls)
    log.debug("seen index: %d ids within %d days of %s", len(ids), days, exclude.dt)
    return ids
