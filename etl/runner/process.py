"""The process step: a source's pages (raw zone replay or WARC files) → staged article Parquet."""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from etl.article import process_pages, rules_for
from etl.config import SourceConfig
from etl.discover import SourceFiles, read_warc
from etl.fetch import raw_loader
from etl.lake import (
    write_table,
)
from etl.records import Article, Failure, Page
from etl.runner.discover import seen_for
from etl.runner.ingestion import failure_log
from etl.runner.rawzone import read_index
from etl.runner.run import Run
from etl.schema import article_schema
from etl.workdir import workdir

__all__ = ["process_step"]

log = logging.getLogger("etl.runner.process")


def _pages(run: Run, src: SourceConfig, mode: str) -> Iterator[Page]:
    if mode == "warc":
        files = SourceFiles(run.settings.lake_settings)  # s3:// input: the lake's S3 settings
        yield from read_warc(src, run.interval, seen=seen_for(run), files=files)
        return
    index = read_index(run.lake, src.id, run.interval)
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
    from etl.article import normalize

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
    version = rules_for(run.settings, src.rules).version
    with workdir("process") as tmp:
        path = Path(tmp) / "part.parquet"
        with pq.ParquetWriter(path, article_schema(), compression="zstd") as writer:
            for batch in normalize(articles(), dt=run.interval.dt, rules_version=version):
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
        "rules_version": version,
    }
