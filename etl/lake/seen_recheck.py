"""Exactly once across intervals: the article ids already in the lake around an interval
(:func:`seen_ids`, read by discovery and dedupe), and the seen check a publish repeats inside the
publish lease (:class:`SeenRecheck`, :func:`drop_seen`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.lake.base import Lake
from etl.lake.lease import new_holder
from etl.lake.seen import seen_index
from etl.lake.settings import LeaseSettings
from etl.lake.tables import ROW_GROUP_ROWS, ShardWriter, parquet_options
from etl.records import Interval

if TYPE_CHECKING:
    from etl.article import DedupeStats

__all__ = ["SeenRecheck", "drop_seen", "seen_ids"]

log = logging.getLogger("etl.lake.seen_recheck")


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


def drop_seen(
    lake: Lake, interval: Interval, writers: dict[int, ShardWriter], recheck: SeenRecheck
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
                table, w.path, row_group_size=ROW_GROUP_ROWS, **parquet_options(w.schema)
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
