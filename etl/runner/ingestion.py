"""``newsetl ingest``: local pages → the article core → one published interval.

:func:`ingest` streams pages through :func:`~etl.article.process_pages`, normalizes the articles,
and publishes them with a fetch_log row for every page that failed (:func:`failure_log`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from etl.article import Item, process_pages, rules_for
from etl.config import Settings
from etl.lake import Lake, Manifest
from etl.records import Article, Failure, Interval
from etl.schema import fetch_log_schema
from etl.urls import identify

__all__ = ["RunSummary", "failure_log", "ingest"]


@dataclass
class RunSummary:
    """What an ingest/run wrote: the manifest, the pages that failed, which rules fired."""

    manifest: Manifest
    failures: list[Failure] = field(default_factory=list)
    rule_hits: Counter[str] = field(default_factory=Counter)
    titles: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)


def failure_log(failures: Iterable[Failure], *, source_id: str | None, dt: str) -> pa.Table:
    """Failed pages as fetch_log rows (the lake keeps a row for every page tried)."""
    schema = fetch_log_schema()
    rows = [
        {"url": f.subject, "source_id": source_id, "error_class": f.kind, "error": f.error,
         "attempts": 1, "purpose": "extract", "dt": dt}
        for f in failures
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=schema)


def ingest(
    items: Iterable[Item],
    settings: Settings,
    *,
    interval: Interval,
    lake: Lake,
    source_id: str | None = None,
    workers: int = 1,
    on_result: Callable[[Article | Failure], None] | None = None,
    attempt: str | None = None,
) -> RunSummary:
    """Pages → article core → one published interval (exactly-once: reruns replace it)."""
    from etl.article import normalize
    from etl.lake import SeenRecheck, manifest_extra, new_attempt, publish, seen_ids

    failures: list[Failure] = []
    hits: Counter[str] = Counter()
    titles: list[str] = []
    versions: set[str] = set()

    def articles() -> Iterator[Article]:
        for result in process_pages(items, settings, workers=workers):
            if on_result is not None:
                on_result(result)
            if isinstance(result, Failure):
                failures.append(result)
                continue
            page = result.page
            if identify(page.url, result.extracted.canonical_url) is None:
                # normalize would raise on it and abort the whole interval: a failed page instead
                subject = page.url or page.raw_ref or page.id
                failures.append(
                    Failure(
                        page.id,
                        subject,
                        "no-url",
                        f"{subject}: no absolute http(s) URL to identify the article",
                    )
                )
                continue
            hits.update(r.rule for r in result.cleaned.removed)
            titles.append(result.extracted.title or result.page.id)
            versions.add(rules_for(settings, result.page.rules).version)
            # normalize holds a batch of articles: not their page bytes, so memory stays flat
            yield replace(result, page=replace(page, body=b""))

    seen = seen_ids(lake, days=settings.seen_days, exclude=interval)
    rules_version = rules_for(settings).version
    rows = normalize(articles(), dt=interval.dt, rules_version=rules_version)

    def figures() -> dict[str, Any]:
        return {
            "mode": "ingest",
            "pages": len(titles) + len(failures),
            "rows": len(titles),
            "failed": len(failures),
        }

    sid = source_id or "local"
    manifest = publish(
        lake,
        interval,
        rows,
        seen=seen,
        quality=settings.quality,
        attempt=attempt or new_attempt("ingest"),
        n_shards=settings.n_shards,
        fetch_log=lambda: failure_log(failures, source_id=source_id, dt=interval.dt),
        extra=lambda: manifest_extra(
            {sid: figures()},
            hits,
            rules_versions=sorted(versions),
            urls_tried=len(titles) + len(failures),
        ),
        rule_hits=hits,
        recheck=SeenRecheck(settings.seen_days, settings.lease),
    )
    return RunSummary(manifest, failures, hits, titles, dict(manifest.extra["dedupe"]))
