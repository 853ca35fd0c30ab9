"""Work that divides: a large source's fetch and process work as chunks, one mapped task each.

A source with a ``chunk_size`` (per source in sources.yaml, or the file's default) is split
after discovery, deterministically (the same source, interval and inputs give the same chunks
with the same ids, ``0000``, ``0001``, … in order), so that an Airflow retry of one chunk redoes
that chunk alone:

* a ``warc`` source by WARC file and, within a file, by byte ranges cut at record boundaries:
  a new chunk starts at the record after every ``chunk_size`` response records
  (:func:`etl.discover.plan_warc`; the offsets come from one scan of the file's record
  headers with warcio; a file that is one gzip stream, not a member per record, cannot be cut
  and is one chunk).
  A chunk reads only its range (a ranged GET on S3) and its ``raw_ref`` offsets are the file's;
* a listed source (feed, sitemap, URL list) by batches of candidates grouped by registrable
  domain (:func:`plan_candidates`, :func:`etl.urls.site`): sites in name order, packed into
  batches of at most ``chunk_size`` candidates, a site never split (a site with more candidates
  is a batch of its own), so each host's candidates are fetched by one task and the in-process
  per-host politeness (:class:`etl.fetch.HostGate`) holds across workers.

Raw zone of a chunked listed source: every chunk is a zone of its own,
``raw/dt=D/source=S/<interval>.chunk-<id>.{warc.gz,fetch_log.parquet,pages.jsonl}``, written by
:func:`etl.runner.fetch.fetch_into_raw` exactly as an unchunked source's (attempt-keyed refetch,
pending URLs, merge on retry); chunk ``0000`` (the *head*) also archives the listings. Publish
then writes the source's *directory* ``<interval>.chunks.json`` (the chunk ids, the attempt),
the switch saying which chunk zones make the source's archive: a later run replays or resumes
those chunks (:func:`replay_chunks`); without it (a run that crashed before publish) the source
is discovered again and each chunk merges into the zone an earlier try left under its id.
A source whose candidates fit one chunk is not chunked at all (the zone of old).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

from etl.config import SourceConfig, SourcesFile
from etl.discover import chunk_id
from etl.lake import raw_chunks_key, raw_zone
from etl.runner.rawzone import jsonl, read_index
from etl.runner.results import Chunk, Discovered, Mode, Processed
from etl.urls import site

if TYPE_CHECKING:
    from etl.runner.run import Run

__all__ = [
    "chunk_size",
    "merge_items",
    "part_name",
    "plan_candidates",
    "replay_chunks",
    "split_candidates",
    "split_items",
    "write_directories",
]

log = logging.getLogger("etl.runner.chunks")

_D = TypeVar("_D", bound=Discovered)
_P = TypeVar("_P", bound=Processed)


def chunk_size(sources: SourcesFile, src: SourceConfig) -> int | None:
    """The source's ``chunk_size``, else the file's; None: not chunked."""
    return src.chunk_size if src.chunk_size is not None else sources.chunk_size


def part_name(item: Mapping[str, Any]) -> str:
    """``<source>`` or ``<source>.chunk-<id>``: the name of an item's staged files."""
    chunk = item.get("chunk")
    return f"{item['source']}.chunk-{chunk}" if chunk else str(item["source"])


# -- listed sources ---------------------------------------------------------------------------


def site_key(url: str) -> str:
    """The registrable domain of ``url`` (its host when it has none; the URL if unparsable)."""
    try:
        return site(url)
    except ValueError:
        return (urlsplit(url).hostname or url).lower()


def plan_candidates(rows: Sequence[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """Candidate rows in batches of at most ``size`` (a bigger site alone), one site per batch
    at most: sites in name order, each site's rows in listing order."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, not {size}")
    sites: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        sites.setdefault(site_key(str(row["url"])), []).append(row)
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    for key in sorted(sites):
        group = sites[key]
        if current and len(current) + len(group) > size:
            batches.append(current)
            current = []
        current = current + group
    if current:
        batches.append(current)
    return batches


def split_candidates(
    run: Run, source_id: str, rows: Sequence[dict[str, Any]]
) -> list[Chunk] | None:
    """The chunk items of a discovered source (their candidates staged), or None when the
    source is not chunked or its candidates fit one chunk."""
    size = chunk_size(run.sources, run.source(source_id))
    if size is None:
        return None
    batches = plan_candidates(rows, size)
    if len(batches) < 2:
        return None
    items: list[Chunk] = []
    for n, batch in enumerate(batches):
        cid = chunk_id(n)
        key = run.staging("candidates", f"{source_id}.chunk-{cid}.jsonl")
        run.lake.put_bytes(key, jsonl(batch))
        items.append(
            {"chunk": cid, "mode": "fetch", "candidates": key, "count": len(batch), "head": n == 0}
        )
    log.info(
        "source %s %s: %d candidates in %d chunks",
        source_id,
        run.interval.id,
        len(rows),
        len(items),
    )
    return items


def replay_chunks(run: Run, source_id: str) -> list[Chunk] | None:
    """The chunk items of a source whose chunked archive exists (mode ``replay``, or ``resume``
    for a chunk with pending URLs); None without a directory (or with ``refetch`` by another
    attempt, or when a chunk's index is missing: the source is discovered again)."""
    key = raw_chunks_key(source_id, run.interval)
    if not run.lake.exists(key):
        return None
    try:
        directory = json.loads(run.lake.get_bytes(key))
        chunks = [str(c) for c in directory["chunks"]]
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable chunk directory (%s): discovering again", key, exc)
        return None
    if run.refetch and directory.get("attempt") != run.attempt:
        return None
    items: list[Chunk] = []
    for n, cid in enumerate(chunks):
        index = read_index(run.lake, source_id, run.interval, chunk=cid, lenient=True)
        if index is None:
            log.warning("%s: chunk %s has no index: discovering again", key, cid)
            return None
        mode: Mode = "resume" if index.retry else "replay"
        items.append({"chunk": cid, "mode": mode, "count": 0, "head": n == 0})
    return items


def write_directories(run: Run, processed: Sequence[Processed]) -> None:
    """Write the directory of every chunked listed source of ``processed`` (the switch naming
    its chunk zones), then delete what else its raw zone holds for the interval (the zone of an
    unchunked run, chunk zones of another plan)."""
    by_source: dict[str, list[str]] = {}
    for p in processed:
        if p.get("chunk") and p.get("mode") not in ("warc", None):
            by_source.setdefault(str(p["source"]), []).append(str(p["chunk"]))
    for sid, chunks in by_source.items():
        key = raw_chunks_key(sid, run.interval)
        body = {"chunks": sorted(set(chunks)), "attempt": run.attempt}
        run.lake.put_bytes(key, (json.dumps(body) + "\n").encode())
        keep = tuple(raw_zone(sid, run.interval, c) + "." for c in body["chunks"])
        stem = raw_zone(sid, run.interval)
        stale = [k for k in run.lake.list(stem + ".") if k != key and not k.startswith(keep)]
        if stale:
            run.lake.delete(stale)
            log.info("raw zone %s %s: removed %s", sid, run.interval.id, stale)


# -- items --------------------------------------------------------------------------------------


def split_items(items: Sequence[_D]) -> list[_D]:
    """One item per chunk (a discovered item without ``chunks`` stays one item)."""
    out: list[_D] = []
    for item in items:
        chunks = cast("Discovered", item).get("chunks")
        if not chunks:
            out.append(item)
            continue
        base = {k: v for k, v in item.items() if k not in ("chunks", "candidates", "count")}
        out += [cast("_D", {**base, **c}) for c in chunks]
    return out


_CHUNK_KEYS = ("chunk", "head", "path", "from_byte", "to_byte", "candidates", "articles")


def merge_items(items: Sequence[_P]) -> list[_P]:
    """One dict per source (in order) of items that may be chunks: numbers summed, lists
    joined, ``rule_hits`` added, ``mode`` the chunks' (``resume`` when they differ and any
    resumed), ``status`` incomplete when any chunk is; ``chunk_count`` counts them."""
    groups: dict[str, list[_P]] = {}
    for item in items:
        groups.setdefault(str(item.get("source")), []).append(item)
    out: list[_P] = []
    for parts in groups.values():
        if len(parts) == 1 and not parts[0].get("chunk"):
            out.append(parts[0])
            continue
        merged: dict[str, Any] = {}
        hits: Counter[str] = Counter()
        for part in parts:
            hits.update(cast("Processed", part).get("rule_hits") or {})
            for k, v in cast("Mapping[str, Any]", part).items():
                if k in _CHUNK_KEYS or k == "rule_hits":
                    continue
                if k not in merged:
                    merged[k] = list(v) if isinstance(v, list) else v
                elif isinstance(v, bool) or not isinstance(v, int | float | list):
                    continue
                elif isinstance(v, list):
                    merged[k] = [*merged[k], *v]
                elif isinstance(merged[k], int | float):
                    merged[k] = merged[k] + v
        modes = {str(p.get("mode")) for p in parts}
        if len(modes) > 1:
            merged["mode"] = "resume" if "resume" in modes else sorted(modes)[0]
        if any(p.get("status") == "incomplete" for p in parts):
            merged["status"] = "incomplete"
        if any(p.get("mode") == "error" for p in parts):
            merged["mode"] = "error"
        merged["rule_hits"] = dict(hits)
        merged["chunk_count"] = len(parts)
        out.append(cast("_P", merged))
    return out
