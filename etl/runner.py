"""One interval, step by step: plan → discover → fetch → process → publish → validate.

These are the functions the Airflow tasks call (one step per task, mapped per source) and that
``newsetl run`` calls in a row. Steps talk through the lake, never through memory: each returns
a small JSON-able dict of keys and counts (what travels in XCom), and each can be retried alone.

Per source and interval, the raw zone (:mod:`etl.rawzone`) holds the WARC of every response and
its index ``<interval>.pages.jsonl``, the one switch naming the WARC, the fetch log, the pages and
the URLs still *pending* after a transient failure. Work in progress lives under
``_staging/<interval>/<attempt>/`` (:meth:`Run.staging`): each run attempt (a ``newsetl run``
invocation, a DAG run) stages apart and publish reads only its own attempt's files. When the raw
archive of an interval exists and ``refetch`` is off, discover and fetch are skipped and process
*replays* the archive with the current rules (no network), except for pending URLs: those alone
are fetched again (mode ``resume``; a pending listing is discovered again) and merged in.

A source whose discovery fails never sinks the others: the step returns mode ``failed``, the
failure is a fetch_log row, the raw index records it, and the manifest names the source in
``failed_sources`` (a transient failure leaves the interval ``incomplete``: the next try or run
discovers that source again).
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from etl.chunks import merge_items, part_name, split_items, write_directories
from etl.config import Settings, SourceConfig, SourcesFile, load_sources
from etl.deadline import http_client
from etl.discoverstep import discover_step, read_jsonl, seen_for
from etl.errors import ConfigError, EtlError, FetchTransient, QualityError, SourceError
from etl.fetch import FetchLog
from etl.fetchstep import candidate_of, fetch_into_raw
from etl.lake import Lake, open_lake
from etl.lakefs import read_columns
from etl.lease import clean_old_staging, interval_lease, new_holder
from etl.netguard import Resolver, system_resolver
from etl.pipeline import Failure, failure_log, process_pages, rules_for
from etl.publish import KEY_UNSAFE, new_attempt
from etl.rawzone import read_index, read_log
from etl.records import Article, Interval, Page
from etl.schema import ARTICLE_VERSION, article_schema, fetch_log_schema
from etl.source_files import SourceFiles
from etl.store import SeenRecheck, read_manifest, read_table, seen_ids, write_table
from etl.warc import raw_loader, read_warc
from etl.warcchunks import read_warc_chunk

__all__ = [
    "Run",
    "discover_step",
    "fetch_step",
    "new_attempt",
    "plan",
    "process_step",
    "publish_step",
    "raise_if_incomplete",
    "run_interval",
    "source_items",
    "source_steps",
    "staging_prefix",
    "validate_step",
]
from etl.workdir import workdir

log = logging.getLogger("etl.runner")


def staging_prefix(interval: Interval, attempt: str | None = None) -> str:
    """``_staging/<interval>/`` (every attempt's work) or ``_staging/<interval>/<attempt>/``."""
    return "/".join(("_staging", interval.id, *((attempt,) if attempt else ()))) + "/"


@dataclass(frozen=True)
class Run:
    """Everything a step needs: settings, the sources file, the interval, the lake, the attempt.

    ``attempt`` names this run attempt's staging (``_staging/<interval>/<attempt>/``): a fresh
    one per ``newsetl run``, one per DAG run (made in ``plan``, carried in the items).
    """

    settings: Settings
    sources: SourcesFile
    interval: Interval
    lake: Lake
    refetch: bool = False
    resolver: Resolver = system_resolver
    attempt: str = field(default_factory=new_attempt)
    # time.monotonic() after which no fetch starts (fetch.run_deadline_s from the opening)
    deadline: float = math.inf

    @classmethod
    def open(
        cls,
        settings: Settings,
        interval: Interval,
        *,
        refetch: bool = False,
        attempt: str | None = None,
    ) -> Run:
        if settings.sources is None:
            raise ConfigError("sources", "no sources file: set NEWSETL_SOURCES or pass --sources")
        sources = load_sources(settings.sources)
        if sources.quality is not None:  # the sources file's thresholds win
            settings = replace(settings, quality=sources.quality.settings())
        if attempt is not None and (not attempt or KEY_UNSAFE.search(attempt)):
            raise ConfigError("attempt", f"not a key-safe attempt id: {attempt!r}")
        limit = sources.fetch.run_deadline_s
        return cls(
            settings,
            sources,
            interval,
            open_lake(settings.lake_settings),
            refetch,
            attempt=attempt or new_attempt(),
            deadline=time.monotonic() + limit if limit is not None else math.inf,
        )

    def source(self, source_id: str) -> SourceConfig:
        for s in self.sources.sources:
            if s.id == source_id:
                return s
        raise ConfigError(str(self.settings.sources), f"no source with id {source_id!r}")

    def staging(self, *parts: str) -> str:
        """A key under this attempt's staging: ``_staging/<interval>/<attempt>/<parts>``."""
        return "/".join(("_staging", self.interval.id, self.attempt, *parts))

    def client(self) -> httpx.Client:
        return http_client()  # every request under a deadline (etl.deadline)


def plan(run: Run) -> list[str]:
    """Validated source ids of the run (the sources file was checked when the run opened)."""
    return [s.id for s in run.sources.sources]


def fetch_step(run: Run, discovered: dict[str, Any]) -> dict[str, Any]:
    """Fetch a source's candidates, or only its pending URLs, into its raw zone.

    Never raises for a transient failure of a URL: it archives what succeeded and returns
    ``status: incomplete`` with the ``pending`` URLs (see :func:`raise_if_incomplete`).
    """
    mode = discovered.get("mode")
    if mode not in ("fetch", "resume", "failed"):
        return discovered
    staged = []
    if mode == "fetch":
        data = run.lake.get_bytes(discovered["candidates"])
        staged = [candidate_of(r) for r in read_jsonl(data)]
    return fetch_into_raw(run, discovered, staged)


def raise_if_incomplete(result: dict[str, Any]) -> None:
    """A transient error naming what a step left pending (for Airflow to retry the task)."""
    source = result.get("source", "?")
    if result.get("mode") == "failed" and result.get("transient"):
        raise SourceError(source, str(result.get("error")), kind="listing", transient=True)
    pending = result.get("pending") or []
    if pending:
        shown = ", ".join(pending[:5]) + (
            f" and {len(pending) - 5} more" if len(pending) > 5 else ""
        )
        raise FetchTransient(source, f"{len(pending)} URLs pending: {shown}", kind="pending")


def _pages(run: Run, src: SourceConfig, item: dict[str, Any]) -> Iterator[Page]:
    mode, chunk = item["mode"], item.get("chunk")
    if mode == "warc":
        files = SourceFiles(run.settings.lake_settings)  # s3:// input: the lake's S3 settings
        if chunk is not None:  # one byte range of one file (etl.chunks)
            yield from read_warc_chunk(src, run.interval, item, seen=seen_for(run), files=files)
            return
        yield from read_warc(src, run.interval, seen=seen_for(run), files=files)
        return
    index = read_index(run.lake, src.id, run.interval, chunk=chunk)
    if index is None or not index.pages:
        return
    raw = run.lake.get_bytes(index.warc)  # one download per source
    load = raw_loader(lambda _key: io.BytesIO(raw))
    for entry in index.pages:
        page = load(entry["raw_ref"])
        hint = entry.get("published_hint")
        yield replace(
            page,
            source_id=src.id,
            published_hint=datetime.fromisoformat(hint) if hint else None,
            authors_hint=tuple(entry.get("authors_hint") or ()),
            language_hint=entry.get("language_hint") or src.language,
            rules=entry.get("rules") or src.rules,
        )


def process_step(run: Run, fetched: dict[str, Any]) -> dict[str, Any]:
    """Extract, clean and normalize a source's pages into a staged Parquet file."""
    from etl.normalize import normalize

    src = run.source(fetched["source"])
    failures: list[Failure] = []
    hits: Counter[str] = Counter()

    def articles() -> Iterator[Article]:
        for r in process_pages(
            _pages(run, src, fetched), run.settings, workers=run.settings.workers
        ):
            if isinstance(r, Failure):
                failures.append(r)
            else:
                hits.update(x.rule for x in r.cleaned.removed)
                yield r

    key = run.staging("articles", f"{part_name(fetched)}.parquet")
    rows = 0
    version = rules_for(run.settings, src.rules).version
    with workdir("process") as tmp:
        path = Path(tmp) / "part.parquet"
        with pq.ParquetWriter(path, article_schema(), compression="zstd") as writer:
            for batch in normalize(articles(), dt=run.interval.dt, rules_version=version):
                writer.write_batch(batch)
                rows += batch.num_rows
        run.lake.put_file(key, path)
    log_key = run.staging("fetch_log", f"{part_name(fetched)}-process.parquet")
    if failures:
        write_table(run.lake, log_key, failure_log(failures, source_id=src.id, dt=run.interval.dt))
    return {
        **fetched,
        "articles": key,
        "rows": rows,
        "failed": len(failures),
        "rule_hits": dict(hits),
        "rules_version": version,
    }


_NOT_FIGURES = ("rule_hits", "articles", "candidates", "attempt", "interval")


def _raw_state(
    run: Run, processed: list[dict[str, Any]]
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


def publish_step(run: Run, processed: list[dict[str, Any]]) -> dict[str, Any]:
    """The exactly-once switch: dedupe this attempt's staged articles, gate, publish.

    The manifest says ``status`` (``incomplete`` while URLs are pending or a source failed
    transiently), ``pending``, ``failed_sources`` and the quality figures. A failed gate
    publishes nothing and raises :class:`QualityError` (rows in ``_quarantine/``).
    """
    from etl.publish import manifest_extra, publish

    write_directories(run, processed)  # chunked sources: the switch naming their chunk zones
    seen = seen_ids(run.lake, days=run.settings.seen_days, exclude=run.interval)
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
        "status": manifest.status,
        "pending": [p["url"] for p in pending],
        "failed_sources": failed,
        "attempt": run.attempt,
    }


def _drop_staging(run: Run) -> None:
    """Remove this attempt's staging (other attempts' leftovers are not this run's to touch)."""
    leftovers = run.lake.list(run.staging() + "/")
    if leftovers:
        run.lake.delete(leftovers)


def validate_step(run: Run) -> dict[str, Any]:
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
    ids: list[str] = []
    short = 0
    for shard in manifest["shards"]:
        # the footer and two columns (ranged reads), never the whole shard
        schema, table = read_columns(run.lake, shard["key"], ["article_id", "word_count"])
        if not schema.equals(article_schema()):
            raise QualityError(
                shard["key"], f"file does not match article schema v{ARTICLE_VERSION}"
            )
        ids += [str(x) for x in table.column("article_id").to_pylist()]
        short += sum(1 for w in table.column("word_count").to_pylist() if (w or 0) < min_words)
    n = len(ids)
    empty_rate = short / n if n else 0.0
    dup_rate = (n - len(set(ids))) / n if n else 0.0
    figures = {
        "interval": run.interval.id,
        "articles": n,
        "empty_rate": round(empty_rate, 4),
        "duplicate_rate": round(dup_rate, 4),
        "status": manifest.get("status", "complete"),
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


def source_steps(
    run: Run, source_id: str, on_step: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """discover → fetch → process for one source (its chunks merged into one result); an error
    of this source is its result (mode ``error``), never the end of the run."""
    return merge_items(source_items(run, source_id, on_step))[0]


def source_items(
    run: Run, source_id: str, on_step: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """discover → fetch → process for one source, chunk after chunk (etl.chunks): one result
    per chunk (one for an unchunked source); an error is the result of its chunk (mode
    ``error``), never the end of the run."""
    step = on_step or (lambda _name: None)
    out: dict[str, Any] = {"source": source_id, "interval": run.interval.id}
    try:
        step(f"discover {source_id}")
        items = split_items([discover_step(run, source_id)])
    except EtlError as exc:
        return [_error_item(run, out, exc)]
    results = []
    for item in items:
        name = part_name(item)
        try:
            step(f"fetch {name}")
            fetched = fetch_step(run, item)
            step(f"process {name}")
            results.append(process_step(run, fetched))
        except EtlError as exc:
            results.append(_error_item(run, {**out, **_chunk_of(item)}, exc))
    return results


def _chunk_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"chunk": item["chunk"]} if item.get("chunk") else {}


def _error_item(run: Run, out: dict[str, Any], exc: EtlError) -> dict[str, Any]:
    log.error("source %s %s: %s", part_name(out), run.interval.id, exc)
    return {
        **out,
        "attempt": run.attempt,
        "mode": "error",
        "error": str(exc),
        "transient": exc.transient,
        "rows": 0,
        "failed": 0,
    }


def run_interval(
    run: Run, *, holder: str | None = None, on_step: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """All steps in a row (``newsetl run``): every source, then one publish and validate,
    holding the interval's lease throughout (a second run of the interval waits
    ``settings.lease.wait_s``, then fails naming this holder)."""
    holder = holder or new_holder("newsetl-run")
    step = on_step or (lambda _name: None)
    with interval_lease(
        run.lake, run.interval.id, holder=holder, settings=run.settings.lease, attempt=run.attempt
    ):
        processed = [i for sid in plan(run) for i in source_items(run, sid, on_step=step)]
        step("publish")
        published = publish_step(run, processed)
        step("validate")
        sources = merge_items(processed)
        return {**published, "quality": validate_step(run), "sources": sources}
