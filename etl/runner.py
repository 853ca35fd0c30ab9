"""One interval, step by step: plan → discover → fetch → process → publish → validate.

These are the functions the Airflow tasks call (one step per task, mapped per source) and that
``newsetl run`` calls in a row. Steps talk through the lake, never through memory: each returns
a small JSON-able dict of keys and counts (what travels in XCom), and each can be retried alone.

Per source and interval, the raw zone holds ``raw/dt=D/source=S/<interval>.warc.gz`` (every
response: listings first, then articles) and its index ``<interval>.pages.jsonl`` (the article
responses' ``raw_ref`` with the listing's hints). Work in progress lives under
``_staging/<interval>/`` and is removed by publish. When the raw archive of an interval exists
and ``refetch`` is off, discover and fetch are skipped and process *replays* the archive with the
current rules: no network.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from etl.config import Settings, SourceConfig, SourcesFile, load_sources
from etl.errors import ConfigError, QualityError
from etl.fetch import Fetcher, FetchLog, FetchPolicy, validators_from_json, validators_to_json
from etl.lake import Lake, open_lake
from etl.lakefs import read_columns
from etl.netguard import Resolver, system_resolver
from etl.pipeline import Failure, failure_log, process_pages, rules_for
from etl.records import Article, Interval, Page
from etl.schema import ARTICLE_VERSION, article_schema, fetch_log_schema
from etl.sources import Candidate, discover
from etl.store import publish_interval, read_manifest, read_table, seen_ids, write_table
from etl.warc import WarcArchive, raw_key, raw_loader, read_warc

log = logging.getLogger("etl.runner")


@dataclass(frozen=True)
class Run:
    """Everything a step needs: settings, the sources file, the interval, the lake."""

    settings: Settings
    sources: SourcesFile
    interval: Interval
    lake: Lake
    refetch: bool = False
    resolver: Resolver = system_resolver

    @classmethod
    def open(cls, settings: Settings, interval: Interval, *, refetch: bool = False) -> Run:
        if settings.sources is None:
            raise ConfigError("sources", "no sources file: set NEWSETL_SOURCES or pass --sources")
        return cls(
            settings,
            load_sources(settings.sources),
            interval,
            open_lake(settings.lake_settings),
            refetch,
        )

    def source(self, source_id: str) -> SourceConfig:
        for s in self.sources.sources:
            if s.id == source_id:
                return s
        raise ConfigError(str(self.settings.sources), f"no source with id {source_id!r}")

    def staging(self, *parts: str) -> str:
        return "/".join(("_staging", self.interval.id, *parts))

    def client(self) -> httpx.Client:
        return httpx.Client(trust_env=False, follow_redirects=False)


def plan(run: Run) -> list[str]:
    """Validated source ids of the run (the sources file was checked when the run opened)."""
    return [s.id for s in run.sources.sources]


def _index_key(source_id: str, interval: Interval) -> str:
    return raw_key(source_id, interval).removesuffix(".warc.gz") + ".pages.jsonl"


def _raw_log_key(source_id: str, interval: Interval) -> str:
    return raw_key(source_id, interval).removesuffix(".warc.gz") + ".fetch_log.parquet"


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, default=str, ensure_ascii=False) + "\n" for r in rows).encode()


def _read_jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def _put_log(run: Run, key: str, rows: list[FetchLog]) -> None:
    if rows:
        table = pa.Table.from_pylist(
            [r.as_row(run.interval.dt) for r in rows], schema=fetch_log_schema()
        )
        write_table(run.lake, key, table)


def _seen(run: Run) -> frozenset[str]:
    """The seen index as discovery needs it (ids of listed URLs included)."""
    return seen_ids(run.lake, days=run.settings.seen_days, exclude=run.interval, with_urls=True)


def discover_step(run: Run, source_id: str) -> dict[str, Any]:
    """List a source's candidates for the interval (or decide to replay / read a WARC source)."""
    src = run.source(source_id)
    out: dict[str, Any] = {"source": source_id, "interval": run.interval.id}
    if src.kind == "warc":
        return {**out, "mode": "warc"}
    if not run.refetch and run.lake.exists(_index_key(source_id, run.interval)):
        log.info("source %s %s: raw archive exists, replaying it", source_id, run.interval.id)
        return {**out, "mode": "replay"}
    seen = _seen(run)
    state_key = f"_state/validators/{source_id}.json"
    validators = (
        validators_from_json(run.lake.get_bytes(state_key)) if run.lake.exists(state_key) else {}
    )
    policy = FetchPolicy.from_config(run.sources)
    with tempfile.TemporaryDirectory(prefix="newsetl-discover-") as tmp:
        with WarcArchive(run.interval, Path(tmp)) as archive, run.client() as client:
            fetcher = Fetcher(client, policy, archive=archive, resolver=run.resolver)
            candidates = list(
                discover(
                    src,
                    run.interval,
                    fetcher=fetcher,
                    seen=seen,
                    validators=validators,
                    load_raw=raw_loader(_lake_opener(run.lake)),
                )
            )
            files = archive.files()
        for _, path in files:
            run.lake.put_file(run.staging("discover", f"{source_id}.warc.gz"), path)
    run.lake.put_bytes(state_key, validators_to_json(validators))
    _put_log(run, run.staging("fetch_log", f"{source_id}-discover.parquet"), fetcher.log)
    key = run.staging("candidates", f"{source_id}.jsonl")
    run.lake.put_bytes(key, _jsonl([asdict(c) for c in candidates]))
    log.info("source %s %s: %d candidates", source_id, run.interval.id, len(candidates))
    return {**out, "mode": "fetch", "candidates": key, "count": len(candidates)}


def _candidate(row: dict[str, Any]) -> Candidate:
    listed = row.get("listed_at")
    return Candidate(
        **{
            **row,
            "listed_at": datetime.fromisoformat(listed) if listed else None,
            "authors_hint": tuple(row.get("authors_hint") or ()),
        }
    )


def fetch_step(run: Run, discovered: dict[str, Any]) -> dict[str, Any]:
    """Fetch a source's candidates; write the raw WARC and its page index to the raw zone."""
    source_id = discovered["source"]
    if discovered.get("mode") != "fetch":
        return discovered
    candidates = [_candidate(r) for r in _read_jsonl(run.lake.get_bytes(discovered["candidates"]))]
    raw = raw_key(source_id, run.interval)
    head_key = run.staging("discover", f"{source_id}.warc.gz")
    head = run.lake.get_bytes(head_key) if run.lake.exists(head_key) else b""
    by_url = {c.url: c for c in candidates}
    index: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="newsetl-fetch-") as tmp:
        with WarcArchive(run.interval, Path(tmp)) as archive, run.client() as client:
            fetcher = Fetcher(
                client, FetchPolicy.from_config(run.sources), archive=archive, resolver=run.resolver
            )
            for result in fetcher.fetch_all(candidates):
                if result.page is None or result.page.raw_ref is None:
                    continue
                cand = (
                    result.candidate if result.candidate is not None else by_url.get(result.log.url)
                )
                index.append(
                    {
                        "raw_ref": _shift(result.page.raw_ref, len(head)),
                        "url": result.page.url,
                        "published_hint": cand.listed_at if cand else None,
                        "authors_hint": list(cand.authors_hint) if cand else [],
                        "language_hint": cand.language_hint if cand else None,
                        "rules": cand.rules if cand else None,
                    }
                )
            files = archive.files()
        final = Path(tmp) / "raw.warc.gz"
        with final.open("wb") as out:
            out.write(head)
            for _, path in files:
                out.write(path.read_bytes())
        run.lake.put_file(raw, final)
    head_log = run.staging("fetch_log", f"{source_id}-discover.parquet")
    # this step's records sit after the listings' in the raw file: so must their rows' raw_refs
    rows = [replace(r, raw_ref=_shift(r.raw_ref, len(head))) for r in fetcher.log]
    if run.lake.exists(head_log):  # the listings' rows travel with the raw archive from now on
        earlier = read_table(run.lake, head_log, schema=fetch_log_schema())
        rows = [
            FetchLog(**{k: v for k, v in r.items() if k != "dt"}) for r in earlier.to_pylist()
        ] + rows
    _put_log(run, _raw_log_key(source_id, run.interval), rows)
    run.lake.delete([head_log])
    run.lake.put_bytes(_index_key(source_id, run.interval), _jsonl(index))
    return {**discovered, "pages": len(index)}


def _shift(raw_ref: str | None, by: int) -> str | None:
    """``raw_ref`` of a record moved ``by`` bytes later in its file (files are concatenated)."""
    if raw_ref is None or not by:
        return raw_ref
    key, _, offset = raw_ref.rpartition("#")
    return f"{key}#{int(offset) + by}"


def _lake_opener(lake: Lake) -> Any:
    def opener(key: str) -> IO[bytes]:
        return io.BytesIO(lake.get_bytes(key))

    return opener


def _pages(run: Run, src: SourceConfig, mode: str) -> Iterator[Page]:
    if mode == "warc":
        yield from read_warc(src, run.interval, seen=_seen(run))
        return
    index = _read_jsonl(run.lake.get_bytes(_index_key(src.id, run.interval)))
    if not index:
        return
    raw = run.lake.get_bytes(raw_key(src.id, run.interval))  # one download per source
    load = raw_loader(lambda _key: io.BytesIO(raw))
    for entry in index:
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
            _pages(run, src, fetched["mode"]), run.settings, workers=run.settings.workers
        ):
            if isinstance(r, Failure):
                failures.append(r)
            else:
                hits.update(x.rule for x in r.cleaned.removed)
                yield r

    key = run.staging("articles", f"{src.id}.parquet")
    rows = 0
    with tempfile.TemporaryDirectory(prefix="newsetl-process-") as tmp:
        path = Path(tmp) / "part.parquet"
        with pq.ParquetWriter(path, article_schema(), compression="zstd") as writer:
            for batch in normalize(
                articles(),
                dt=run.interval.dt,
                rules_version=rules_for(run.settings, src.rules).version,
            ):
                writer.write_batch(batch)
                rows += batch.num_rows
        run.lake.put_file(key, path)
    log_key = run.staging("fetch_log", f"{src.id}-process.parquet")
    if failures:
        write_table(run.lake, log_key, failure_log(failures, source_id=src.id, dt=run.interval.dt))
    return {
        **fetched,
        "articles": key,
        "rows": rows,
        "failed": len(failures),
        "rule_hits": dict(hits),
    }


def publish_step(run: Run, processed: list[dict[str, Any]]) -> dict[str, Any]:
    """The exactly-once switch: dedupe the staged articles and publish the interval."""
    from etl.dedupe import dedupe

    seen = seen_ids(run.lake, days=run.settings.seen_days, exclude=run.interval)
    staged = [p["articles"] for p in processed if p.get("articles")]

    def batches() -> Iterator[pa.RecordBatch]:
        for key in staged:
            yield from read_table(run.lake, key, schema=article_schema()).to_batches()

    logs = [k for k in run.lake.list(run.staging("fetch_log") + "/") if k.endswith(".parquet")]
    for p in processed:  # the fetch rows of each source's raw archive (kept for replays)
        key = _raw_log_key(p["source"], run.interval)
        if p.get("mode") in ("fetch", "replay") and run.lake.exists(key):
            logs.append(key)
    fetch_log = (
        pa.concat_tables([read_table(run.lake, k, schema=fetch_log_schema()) for k in logs])
        if logs
        else pa.Table.from_pylist([], schema=fetch_log_schema())
    )
    deduped = dedupe(batches(), seen=seen)
    hits: Counter[str] = Counter()
    for p in processed:
        hits.update(p.get("rule_hits") or {})
    manifest = publish_interval(
        run.lake,
        run.interval,
        deduped,
        n_shards=run.settings.n_shards,
        fetch_log=fetch_log,
        manifest_extra=lambda: {
            "sources": {
                # the per-source figures; not the staging keys, which publish removes below
                p["source"]: {
                    k: v for k, v in p.items() if k not in ("rule_hits", "articles", "candidates")
                }
                for p in processed
            },
            "rule_hits": dict(hits.most_common()),
            "dedupe": deduped.stats.as_dict(),
            "urls_tried": fetch_log.num_rows,
            "published_by": "newsetl",
        },
    )
    leftovers = run.lake.list(run.staging() + "/")
    if leftovers:
        run.lake.delete(leftovers)
    return {
        "interval": manifest.interval,
        "dt": manifest.dt,
        "articles": manifest.articles,
        "keys": [f.key for f in manifest.shards],
        "manifest": manifest.key,
        "urls_tried": fetch_log.num_rows,
        "deleted": list(manifest.deleted),
    }


def validate_step(run: Run) -> dict[str, Any]:
    """The quality gate over the published interval: schema, empty-text and duplicate rates."""
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


def run_interval(run: Run) -> dict[str, Any]:
    """All steps in a row (``newsetl run``)."""
    processed = []
    for source_id in plan(run):
        discovered = discover_step(run, source_id)
        fetched = fetch_step(run, discovered)
        processed.append(process_step(run, fetched))
    published = publish_step(run, processed)
    return {**published, "quality": validate_step(run), "sources": processed}
