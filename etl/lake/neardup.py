"""Near-duplicates across a day's sources, linked (never deleted) when a day is compacted.

:func:`link_near_duplicates` maps each row whose ``simhash`` is within :data:`NEAR_DISTANCE`
bits of an earlier row's (earlier: ``published_at``, else ``fetched_at``, then ``article_id``)
to that row's ``article_id`` (the first of the chain, so one story has one original);
:func:`with_links` writes the links into ``duplicate_of``, keeping one set before (by ingest).
"""

from __future__ import annotations

from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from etl.article import hamming

NEAR_DISTANCE = 3
_BLOCK_BITS = 16


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


def with_links(batch: pa.RecordBatch, links: dict[str, str]) -> pa.RecordBatch:
    if not links:
        return batch
    ids = cast(list[str], batch.column("article_id").to_pylist())
    old = batch.column("duplicate_of").to_pylist()
    new = pa.array([o if o is not None else links.get(i) for i, o in zip(ids, old, strict=True)],
                   pa.string())  # fmt: skip
    return batch.set_column(batch.schema.get_field_index("duplicate_of"), "duplicate_of", new)
