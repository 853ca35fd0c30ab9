"""The publish and validate steps: this attempt's staged articles → one published interval."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from etl.errors import QualityError, StoreError
from etl.fetch import FetchLog
from etl.lake import (
    SeenRecheck,
    clean_old_staging,
    read_columns,
    read_manifest,
    read_pointer,
    read_snapshot,
    read_table,
    seen_ids,
)
from etl.runner.chunks import merge_items, part_name, write_directories
from etl.runner.rawzone import read_index, read_log
from etl.runner.results import Processed, Published, Validated
from etl.runner.run import SEEN_SNAPSHOT, Run
from etl.schema import ARTICLE_VERSION, article_schema, fetch_log_schema

__all__ = ["publish_step", "validate_step"]

log = logging.getLogger("etl.runner.publish")


_NOT_FIGURES = ("rule_hits", "articles", "candidates", "attempt", "interval")


def _raw_state(
    run: Run, processed: list[Processed]
) -> tuple[list[pa.Table], list[dict[str, Any]], list[dict[str, Any]]]:
    """Per source: the fetch_log tables (raw final rows, pending rows, this attempt's process
    failures), the pending URLs and the failed sources, read from the lake."""
    tables: list[pa.Table] = []
    pending: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    dt = run.interval.dt
    for p in processed:
        sid = p["source"]
        broken = p.get("mode") == "error"  # its index may be what failed
        index = (
            read_index(run.lake, sid, run.interval, lenient=broken, chunk=p.get("chunk"))
            if p.get("mode") != "warc"
            else None
        )
        rows: list[FetchLog] = []
        if index is not None:
            rows = read_log(run.lake, index) + [r for e in index.pending for r in e.log_rows()]
            pending += [e.summary() for e in index.retry]
            if index.failure:
                failed.append({"source": sid, **index.failure})
        if p.get("mode") == "error":
            failed.append({"source": sid, "error": p.get("error"), "transient": p.get("transient")})
        if rows:
            tables.append(
                pa.Table.from_pylist([r.as_row(dt) for r in rows], schema=fetch_log_schema())
            )
        key = run.staging("fetch_log", f"{part_name(p)}-process.parquet")
        if p.get("mode") != "error" and run.lake.exists(key):
            tables.append(read_table(run.lake, key, schema=fetch_log_schema()))
    return tables, pending, failed


def publish_step(run: Run, processed: list[Processed]) -> Published:
    """The exactly-once switch: dedupe this attempt's staged articles, gate, publish.

    The manifest says ``status`` (``incomplete`` while URLs are pending or a source failed
    transiently), ``pending``, ``failed_sources`` and the quality figures. A failed gate
    publishes nothing and raises :class:`QualityError` (rows in ``_quarantine/``).
    """
    from etl.lake import manifest_extra, publish

    write_directories(run, processed)  # chunked sources: the switch naming their chunk zones
    days = run.settings.seen_days
    if "seen" not in run.memo:  # a task of its own: what plan read is not read again
        read_snapshot(run.lake, run.staging(SEEN_SNAPSHOT), days=days, exclude=run.interval)
    seen = seen_ids(run.lake, days=days, exclude=run.interval)  # the lake as listed now
    mine = run.staging() + "/"
    staged = [p["articles"] for p in processed if str(p.get("articles") or "").startswith(mine)]

    def batches() -> Iterator[pa.RecordBatch]:
        for key in staged:
            yield from read_table(run.lake, key, schema=article_schema()).to_batches()

    tables, pending, failed = _raw_state(run, processed)
    fetch_log = (
        pa.concat_tables(tables) if tables else pa.Table.from_pylist([], schema=fetch_log_schema())
    )
    incomplete = bool(pending) or any(f.get("transient") for f in failed)
    hits: Counter[str] = Counter()
    for p in processed:
        hits.update(p.get("rule_hits") or {})
    extra = manifest_extra(
        {
            p["source"]: {k: v for k, v in p.items() if k not in _NOT_FIGURES}
            for p in merge_items(processed)
        },
        hits,
        rules_versions=[str(p["rules_version"]) for p in processed if p.get("rules_version")],
        urls_tried=fetch_log.num_rows,
    )
    try:
        manifest = publish(
            run.lake,
            run.interval,
            batches(),
            seen=seen,
            quality=run.settings.quality,
            attempt=run.attempt,
            n_shards=run.settings.n_shards,
            fetch_log=fetch_log,
            extra=extra,
            rule_hits=hits,
            status="incomplete" if incomplete else "complete",
            pending=pending,
            failed_sources=failed,
            recheck=SeenRecheck(run.settings.seen_days, run.settings.lease),
        )
    except QualityError:
        _drop_staging(run)
        raise
    _drop_staging(run)
    clean_old_staging(run.lake, max_age_s=run.settings.lease.staging_max_age_s)
    if incomplete:
        log.warning(
            "interval %s published incomplete: %d URLs pending, failed sources %s",
            run.interval.id,
            len(pending),
            [f["source"] for f in failed],
        )
    return {
        "interval": manifest.interval,
        "dt": manifest.dt,
        "articles": manifest.articles,
        "keys": [f.key for f in manifest.shards],
        "manifest": manifest.key,
        "urls_tried": fetch_log.num_rows,
        "deleted": list(manifest.deleted),
        "status": "incomplete" if manifest.status == "incomplete" else "complete",
        "pending": [p["url"] for p in pending],
        "failed_sources": failed,
        "attempt": run.attempt,
    }


def _drop_staging(run: Run) -> None:
    """Remove this attempt's staging (other attempts' leftovers are not this run's to touch)."""
    leftovers = run.lake.list(run.staging() + "/")
    if leftovers:
        run.lake.delete(leftovers)


def _shard_figures(
    run: Run, shards: list[dict[str, Any]], min_words: int
) -> tuple[int, float, float]:
    """Rows, empty-text rate and duplicate rate of the interval's published shards."""
    ids: list[str] = []
    short = 0
    for shard in shards:
        # the footer and two columns (ranged reads), never the whole shard
        schema, table = read_columns(run.lake, shard["key"], ["article_id", "word_count"])
        if not schema.equals(article_schema()):
            raise QualityError(
                shard["key"], f"file does not match article schema v{ARTICLE_VERSION}"
            )
        ids += [str(x) for x in table.column("article_id").to_pylist()]
        short += sum(1 for w in table.column("word_count").to_pylist() if (w or 0) < min_words)
    n = len(ids)
    return n, (short / n if n else 0.0), ((n - len(set(ids))) / n if n else 0.0)


def _compacted_figures(
    run: Run, manifest: dict[str, Any], pointer: dict[str, Any]
) -> tuple[int, float, float]:
    """The figures of an interval whose shards a compaction of its day folded in (and deleted):
    its rows as published and the gate's empty-text rate (from the manifest), the duplicate
    rate of the compacted day (its key index)."""
    ids = read_table(run.lake, str(pointer["index"]), columns=["article_id"]).column(0)
    day_dups = (len(ids) - len(set(ids.to_pylist()))) / len(ids) if len(ids) else 0.0
    quality = manifest.get("quality") or {}
    log.info("interval %s: validated through the compaction of its day", run.interval.id)
    return int(manifest.get("articles") or 0), float(quality.get("empty_rate") or 0.0), day_dups


def validate_step(run: Run) -> Validated:
    """Check the published interval: schema, empty-text and duplicate rates (the gate itself
    ran before publish); ``status``/``pending`` as the manifest says."""
    q = run.settings.quality
    max_empty_rate, max_duplicate_rate, min_words = (
        q.max_empty_rate,
        q.max_duplicate_rate,
        q.min_words,
    )

    manifest = read_manifest(run.lake, run.interval)
    if manifest is None:
        raise QualityError(run.interval.id, "no manifest: the interval was not published")
    try:
        n, empty_rate, dup_rate = _shard_figures(run, manifest["shards"], min_words)
    except StoreError as exc:
        pointer = read_pointer(run.lake, run.interval.dt) if exc.kind == "not-found" else None
        if pointer is None or run.interval.id not in pointer["replaced"]:
            raise
        n, empty_rate, dup_rate = _compacted_figures(run, manifest, pointer)
    figures: Validated = {
        "interval": run.interval.id,
        "articles": n,
        "empty_rate": round(empty_rate, 4),
        "duplicate_rate": round(dup_rate, 4),
        "status": "incomplete" if manifest.get("status") == "incomplete" else "complete",
        "pending": [p["url"] for p in manifest.get("pending") or []],
        "checked_at": datetime.now(UTC).isoformat(),
    }
    if empty_rate > max_empty_rate:
        raise QualityError(
            run.interval.id, f"empty-text rate {empty_rate:.1%} > {max_empty_rate:.1%}"
        )
    if dup_rate > max_duplicate_rate:
        raise QualityError(
            run.interval.id, f"duplicate rate {dup_rate:.1%} > {max_duplicate_rate:.1%}"
        )
    return figures
