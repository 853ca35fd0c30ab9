"""Dedupe: drop articles already in the lake or already emitted earlier in this run.

Entry point :func:`dedupe`. A row is dropped, first match wins, when

1. ``seen``: its ``article_id`` is in the seen index (ids already in the lake, never including
   the interval being run: see ``etl.lake.seen_ids``);
2. ``duplicate_id``: its ``article_id`` was already emitted in this run;
3. ``duplicate_content``: its ``content_hash`` was already emitted in this run (the same text
   under another URL: syndicated copies, tracking-parameter variants; the first one is kept);
4. ``near_duplicate``: its ``simhash`` is within ``near_distance`` bits (default 3) of one
   already emitted in this run -- with ``near="link"`` (the default) the row is *kept* and
   its ``duplicate_of`` (schema v2) names the ``article_id`` of that earlier row; with
   ``near="drop"`` it is dropped as before v2.

A near-duplicate is usually one syndicated story on two sites: both are articles of their
source, so they are linked, never deleted. At 3 bits of 64 a match means nearly the same
shingle set (a false match between unrelated texts has a probability of about 1e-13 per pair).
Within-run only (``newsetl compact`` links across a whole day); ``near_distance=None`` turns it
off.
Lookup is the pigeonhole index of Manku et al.: with distance <= 3, two hashes agree exactly
on at least one of four 16-bit blocks, so only rows sharing a block are compared.

The dropped counts (and, for near-duplicates, which id each one matched) are in
:attr:`DedupeRun.stats` once iteration has finished.
"""

from __future__ import annotations

import logging
import re
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal, cast

import pyarrow as pa

from etl.article.normalization import hamming

log = logging.getLogger("etl.article.deduplication")

_BLOCKS = 4
_BLOCK_BITS = 64 // _BLOCKS
_BLOCK_MASK = (1 << _BLOCK_BITS) - 1
_MASK64 = (1 << 64) - 1
_HEX = re.compile(r"(?:[0-9a-f]{2})+")


def compact_key(value: str) -> bytes | str:
    """A hex digest (content hash, article id) as a run remembers it: its bytes (a SHA-256
    content hash held in 65 bytes instead of 113, an article id in 49 instead of 81); any
    other value as it is. Lowercase hex maps one to one onto bytes, and bytes never equal a
    str, so two values share a key exactly when they are equal."""
    if _HEX.fullmatch(value):
        return bytes.fromhex(value)
    return value


@dataclass
class DedupeStats:
    """What :func:`dedupe` did; complete once its iterator is exhausted."""

    rows_in: int = 0
    rows_out: int = 0
    seen: int = 0
    duplicate_id: int = 0
    duplicate_content: int = 0
    near_duplicate: int = 0
    seen_at_publish: int = 0  # of ``seen``: found by the re-check inside the publish lease
    near_pairs: list[tuple[str, str]] = field(default_factory=list)  # (dropped id, kept id)

    @property
    def dropped(self) -> int:
        return self.rows_in - self.rows_out

    def as_dict(self) -> dict[str, int]:
        """Counts only, e.g. for the run manifest."""
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "seen": self.seen,
            "duplicate_id": self.duplicate_id,
            "duplicate_content": self.duplicate_content,
            "near_duplicate": self.near_duplicate,
            "seen_at_publish": self.seen_at_publish,
        }


class _NearIndex:
    """Simhashes emitted so far, indexed by their four 16-bit blocks.

    Compact (memory grows with the rows of a run): each row is a slot in flat arrays (its
    simhash, its id, and per block the next row with the same block value), so a row costs
    about 50 bytes here plus its id string (shared with the id set); the per-block head and
    tail tables are fixed (4 x 2 x 512 KiB). Rows sharing a block value are walked oldest
    first, block 0 to 3: the first match is the same as a list per bucket would give.
    """

    def __init__(self, distance: int) -> None:
        if not 0 <= distance < _BLOCKS:
            raise ValueError(f"near_distance must be 0..{_BLOCKS - 1}, got {distance}")
        self.distance = distance
        self.sims = array("Q")  # simhash of each row (as unsigned 64 bits)
        self.ids: list[str] = []  # article id of each row
        size = 1 << _BLOCK_BITS
        self.heads = [array("q", [-1]) * size for _ in range(_BLOCKS)]  # first row per value
        self.tails = [array("q", [-1]) * size for _ in range(_BLOCKS)]  # last row per value
        self.next = [array("q") for _ in range(_BLOCKS)]  # next row with the same value

    @staticmethod
    def _keys(h: int) -> list[int]:
        return [(h >> (i * _BLOCK_BITS)) & _BLOCK_MASK for i in range(_BLOCKS)]

    def match(self, h: int) -> str | None:
        sims = self.sims
        for heads, nxt, key in zip(self.heads, self.next, self._keys(h), strict=True):
            row = heads[key]
            while row >= 0:
                if hamming(h, sims[row]) <= self.distance:
                    return self.ids[row]
                row = nxt[row]
        return None

    def add(self, h: int, aid: str) -> None:
        row = len(self.ids)
        self.sims.append(h & _MASK64)
        self.ids.append(aid)
        for heads, tails, nxt, key in zip(
            self.heads, self.tails, self.next, self._keys(h), strict=True
        ):
            nxt.append(-1)
            if heads[key] < 0:
                heads[key] = row
            else:
                nxt[tails[key]] = row
            tails[key] = row


class DedupeRun(Iterator[pa.RecordBatch]):
    """The iterator :func:`dedupe` returns; ``stats`` fills in as it is consumed."""

    def __init__(
        self,
        batches: Iterable[pa.RecordBatch],
        seen: set[str] | frozenset[str],
        near_distance: int | None,
        near: Literal["link", "drop"] = "link",
    ) -> None:
        self.stats = DedupeStats()
        self._link = near == "link"
        self._links: dict[int, str] = {}  # row in the current batch -> article_id it copies
        self._seen = seen
        self._ids: set[str] = set()
        self._hashes: set[bytes | str] = set()
        self._near = None if near_distance is None else _NearIndex(near_distance)
        self._gen = self._run(iter(batches))

    def __next__(self) -> pa.RecordBatch:
        return next(self._gen)

    def _keep(self, i: int, aid: str, chash_hex: str, sim: int) -> bool:
        s = self.stats
        chash = compact_key(chash_hex)
        if aid in self._seen:
            s.seen += 1
        elif aid in self._ids:
            s.duplicate_id += 1
        elif chash in self._hashes:
            s.duplicate_content += 1
        elif self._near is not None and (kept := self._near.match(sim)) is not None:
            s.near_duplicate += 1
            s.near_pairs.append((aid, kept))
            if self._link:  # kept, linked to the earlier row; not an original for later rows
                self._ids.add(aid)
                self._hashes.add(chash)
                self._links[i] = kept
                return True
        else:
            self._ids.add(aid)
            self._hashes.add(chash)
            if self._near is not None:
                self._near.add(sim, aid)
            return True
        return False

    def _run(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for raw in batches:
            # Non-null columns in schema v1.
            ids = cast(list[str], raw.column("article_id").to_pylist())
            hashes = cast(list[str], raw.column("content_hash").to_pylist())
            sims = cast(list[int], raw.column("simhash").to_pylist())
            self._links = {}
            mask = [
                self._keep(i, *row) for i, row in enumerate(zip(ids, hashes, sims, strict=True))
            ]
            batch = _linked(raw, self._links) if self._links else raw
            self.stats.rows_in += len(mask)
            kept = sum(mask)
            self.stats.rows_out += kept
            if kept == len(mask):
                yield batch
            elif kept:
                yield batch.filter(pa.array(mask, type=pa.bool_()))
        s = self.stats
        log.info(
            "dedupe: %d in, %d out (seen %d, same id %d, same content %d, near %d)",
            s.rows_in, s.rows_out, s.seen, s.duplicate_id, s.duplicate_content, s.near_duplicate,
        )  # fmt: skip


def _linked(batch: pa.RecordBatch, links: dict[int, str]) -> pa.RecordBatch:
    """``batch`` with ``duplicate_of`` set on the rows in ``links`` (others unchanged)."""
    i = batch.schema.get_field_index("duplicate_of")
    if i < 0:  # a v1 batch has no column for it
        return batch
    old = batch.column(i).to_pylist()
    new = pa.array([links.get(r, v) for r, v in enumerate(old)], pa.string())
    return batch.set_column(i, batch.schema.field(i), new)


def dedupe(
    batches: Iterable[pa.RecordBatch],
    *,
    seen: set[str] | frozenset[str] = frozenset(),
    near_distance: int | None = 3,
    near: Literal["link", "drop"] = "link",
) -> DedupeRun:
    """Lazily filter article batches; read ``.stats`` after iterating.

    Batches with no surviving rows are not yielded. Order is preserved. Near-duplicates are
    linked through ``duplicate_of`` (``near="link"``) or dropped (``near="drop"``).
    """
    return DedupeRun(batches, seen, near_distance, near)
