"""The per-interval snapshot of the seen index: read once, shared by the tasks of a DAG run.

:func:`write_snapshot` (``plan``) reads the seen index of an interval (:mod:`etl.lake.seen`)
and stores it in one Parquet object, every file's key, version and ids (one ``id`` column; the
files, versions and counts in the schema metadata). :func:`read_snapshot` seeds this process's
cache from it (one GET): a later read then GETs only files published or rewritten since.
:func:`snapshot_ids` also returns its ids as they were (discovery: no listing; a few minutes
old, it costs a re-fetch that publish drops, never an article). A snapshot missing, unreadable,
corrupt or written for another window or interval seeds nothing: the reader reads the lake.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from etl.errors import StoreError
from etl.lake.base import Lake
from etl.lake.seen import seen_parts, union
from etl.lake.seen_cache import Part, cache_of
from etl.records import Interval

__all__ = ["read_snapshot", "snapshot_ids", "write_snapshot"]

log = logging.getLogger("etl.lake.seen_snapshot")

_FORMAT = 1
_META = "newsetl.seen"


def _meta(days: int, exclude: Interval) -> dict[str, Any]:
    return {"format": _FORMAT, "days": days, "exclude": exclude.id}


def write_snapshot(lake: Lake, key: str, *, days: int, exclude: Interval) -> int:
    """Read the seen index of ``exclude`` now and store it at ``key`` (one PUT): every file's
    key, version and ids. Returns the number of files."""
    parts = sorted(seen_parts(lake, days=days, exclude=exclude).items())
    columns = [c for _, (_, p) in parts for c in (p.ids, p.url_ids())]
    meta = {
        **_meta(days, exclude),
        "files": [[k, v, len(p.ids), len(p.url_ids())] for k, (v, p) in parts],
    }
    ids = pa.concat_arrays(columns) if columns else pa.array([], pa.string())
    table = pa.table({"id": ids}).replace_schema_metadata({_META: json.dumps(meta)})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", use_dictionary=False)
    lake.put_bytes(key, sink.getvalue().to_pybytes())
    log.info("seen snapshot %s: %d files, %d ids", key, len(parts), table.num_rows)
    return len(parts)


def _load_snapshot(
    lake: Lake, key: str, *, days: int, exclude: Interval
) -> dict[str, tuple[str | None, Part]] | None:
    try:
        data = lake.get_bytes(key)
    except StoreError as exc:
        if exc.kind != "not-found":
            log.warning("seen snapshot %s unreadable (%s): reading the index", key, exc)
        return None
    try:
        table = pq.read_table(pa.BufferReader(data), use_threads=False)
        meta = json.loads((table.schema.metadata or {})[_META.encode()])
        if {k: meta.get(k) for k in ("format", "days", "exclude")} != _meta(days, exclude):
            log.warning("seen snapshot %s is for another window: reading the index", key)
            return None
        ids = table.column("id").combine_chunks().cast(pa.string())
        out: dict[str, tuple[str | None, Part]] = {}
        at = 0
        for file_key, version, n_ids, n_urls in meta["files"]:
            if not isinstance(file_key, str) or not (version is None or isinstance(version, str)):
                raise ValueError(f"bad file entry {file_key!r}")
            part = Part(ids.slice(at, int(n_ids)), url_ids=ids.slice(at + int(n_ids), int(n_urls)))
            out[file_key] = (version, part)
            at += int(n_ids) + int(n_urls)
        if at != len(ids) or ids.null_count:
            raise ValueError(f"{len(ids)} ids for {at} listed")
    except (pa.ArrowException, OSError, KeyError, TypeError, ValueError) as exc:
        log.warning("seen snapshot %s is corrupt (%s): reading the index", key, exc)
        return None
    return out


def _seed(
    lake: Lake, key: str, *, days: int, exclude: Interval
) -> dict[str, tuple[str | None, Part]] | None:
    """The snapshot's parts, put in this process's cache; None when there is no usable one."""
    parts = _load_snapshot(lake, key, days=days, exclude=exclude)
    if parts is not None:
        cache = cache_of(lake)
        for file_key, (version, part) in parts.items():
            if version is not None:
                cache.put(file_key, version, part)
    return parts


def read_snapshot(lake: Lake, key: str, *, days: int, exclude: Interval) -> bool:
    """Seed this process's cache from the snapshot at ``key``; False when there is none (or
    it is corrupt or for another window): the next read then reads the lake."""
    return _seed(lake, key, days=days, exclude=exclude) is not None


def snapshot_ids(
    lake: Lake, key: str, *, days: int, exclude: Interval, with_urls: bool = False
) -> frozenset[str] | None:
    """The ids a snapshot holds, as of when it was written (no listing: for discovery), and
    the cache seeded; None when there is no usable snapshot."""
    parts = _seed(lake, key, days=days, exclude=exclude)
    if parts is None:
        return None
    return union((p for _, p in parts.values()), with_urls=with_urls)
