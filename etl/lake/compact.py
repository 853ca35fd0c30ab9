"""Compaction: a day's hourly article files merged into a few large sorted files.

Entry point :func:`compact_day` (``newsetl compact --day D``, DAG ``news_compact``). Steps:

1. Read what readers see of the day (:mod:`etl.lake.dayview`): the hourly files, or the current
   compacted files plus intervals published since.
2. Link near-duplicates across the day (:mod:`etl.lake.neardup`): ``duplicate_of``, rows never
   dropped.
3. Sort and write ``articles/dt=D/compact-<G>-<n>.parquet`` under a new generation ``G``
   (:mod:`etl.lake.compact_files`: row groups sized for scans), plus the key index
   ``_index/dt=D/compact-<G>.parquet``.
4. Under the lake's publish lease: if no interval of the day was published meanwhile (its
   manifest's tag unchanged) and no other compaction switched, put the day's pointer
   ``_compact/dt=D.json`` (the switch: the one atomic step readers honour) and delete what it
   replaced (the hourly files and their indexes, the previous generation). A day that changed
   is compacted again (:data:`ATTEMPTS` times, then a transient error).

Idempotent: a day whose visible files are exactly one complete generation is left alone; a
crash before the switch leaves an unreferenced generation nobody reads (the next run deletes it);
a crash after it leaves replaced files nobody reads (the next run deletes them). Reruns and
backfills of a compacted day's intervals publish hourly files again (only articles not already
compacted: the seen index reads the compacted index) and :func:`etl.lake.dayview.release_interval`
makes them visible; the next compaction folds them in.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs

from etl.errors import StoreError
from etl.lake.arrowfs import ArrowLake, arrow_filesystem, parquet_dataset
from etl.lake.base import Lake
from etl.lake.compact_files import (
    CompactWriter,
    row_group_bytes,
    sorted_batches,
    uncompressed_bytes,
)
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
from etl.lake.neardup import link_near_duplicates, with_links
from etl.lake.settings import LeaseSettings
from etl.schema import article_schema

log = logging.getLogger("etl.lake.compact")


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


def _changed(
    lake: Lake,
    dt: str,
    pointer: dict[str, Any] | None,
    tags: dict[str, str | None],
    hourly: list[str],
) -> bool:
    """Whether the day changed since the compaction read it: its pointer, or the manifest of an
    interval it folds in (a publish of the interval writes its manifest last)."""
    return read_pointer(lake, dt) != pointer or _manifest_tags(lake, hourly) != {
        g: tags.get(g) for g in hourly
    }


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
    try:
        visible = visible_in_day(lake.list(articles_prefix(dt)), pointer)
    except StoreError:  # the pointer names files not listed: another compaction switched?
        if read_pointer(lake, dt) != pointer:
            raise _DayChanged(dt) from None
        raise  # lost files: never compact the day short
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
                try:
                    target.write_bytes(lake.get_bytes(key))
                except StoreError as exc:
                    if exc.kind == "not-found" and _changed(lake, dt, pointer, tags, hourly):
                        raise _DayChanged(dt) from exc
                    raise
            alake = ArrowLake(pafs.LocalFileSystem(), (tmp / "in").as_posix())
        dataset = parquet_dataset(alake, visible, article_schema(), "articles")
        try:
            keys = dataset.to_table(columns=["article_id", "simhash", "published_at", "fetched_at"])
            links = link_near_duplicates(keys)
            out = CompactWriter(tmp, article_schema(), row_group_bytes(uncompressed_bytes(dataset)))
            for batch in sorted_batches(dataset):
                out.add(with_links(batch, links))
            out.close()
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            if _changed(lake, dt, pointer, tags, hourly):  # a publish of the day took a file
                raise _DayChanged(dt) from exc
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
        if _changed(lake, dt, pointer, tags, hourly):  # a publish of the day meanwhile
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
