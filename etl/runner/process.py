"""The process step: a source's pages (raw zone replay or WARC files) → staged article Parquet."""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq

from etl.article import process_pages, rules_for
from etl.config import SourceConfig
from etl.discover import SourceFiles, read_warc, read_warc_chunk
from etl.fetch import raw_loader
from etl.lake import (
    write_table,
)
from etl.records import Article, Failure, Hints, Page
from etl.runner.chunks import part_name
from etl.runner.discover import seen_for
from etl.runner.ingestion import failure_log
from etl.runner.rawzone import read_index
from etl.runner.results import Fetched, Processed
from etl.runner.run import Run
from etl.schema import article_schema
from etl.workdir import workdir

__all__ = ["process_step"]

log = logging.getLogger("etl.runner.process")


def _pages(run: Run, src: SourceConfig, item: Fetched) -> Iterator[Page]:
    mode, chunk = item["mode"], item.get("chunk")
    if mode == "warc":
        files = SourceFiles(run.settings.lake_settings)  # s3:// input: the lake's S3 settings
        if chunk is not None:  # one byte range of one file (etl.runner.chunks)
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
        hints = Hints.from_entry(entry)  # the source's language and rules where it had none
        hints = replace(
            hints, language=hints.language or src.language, rules=hints.rules or src.rules
        )
        yield replace(load(entry["raw_ref"]), source_id=src.id, **hints.page_fields())


def process_step(run: Run, fetched: Fetched) -> Processed:
    """Extract, clean and normalize a source's pages into a staged Parquet file."""
    from etl.article import normalize

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
