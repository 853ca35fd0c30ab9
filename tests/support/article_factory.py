"""Builders of Article records and normalized batches for the normalize/dedupe/store tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from etl.article.normalization import normalize
from etl.records import Article, Cleaned, Extracted, Page, Removed

DT = "2026-11-25"
_VOCAB = [f"word{i}" for i in range(3000)]


def prose(seed: int, n: int = 300) -> str:
    """Deterministic pseudo-text: ``n`` words drawn from a 3000-word vocabulary."""
    rng = random.Random(seed)
    words = [rng.choice(_VOCAB) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def make_article(
    url: str = "https://www.example.com/news/a",
    text: str | None = None,
    *,
    canonical: str | None = None,
    published: datetime | None = None,
    seed: int = 0,
    **page_kw: Any,
) -> Article:
    page_kw.setdefault("fetched_at", datetime(2026, 11, 25, 13, 5, tzinfo=UTC))
    page_kw.setdefault("source_id", "example-news")
    page_kw.setdefault("http_status", 200)
    page = Page(id=url.rsplit("/", 1)[-1] or "index", body=b"<html></html>", url=url, **page_kw)
    extracted = Extracted(
        text=text if text is not None else prose(seed),
        title=f"Title {seed}",
        authors=("Ada Lovelace", "Ada Lovelace", "Charles Babbage"),
        published_at=published,
        date_source="meta" if published else None,
        canonical_url=canonical,
        language="en",
        tags=("science",),
        captions=("A caption.",),
    )
    body = extracted.text
    cleaned = Cleaned(
        text=body,
        removed=(Removed(rule="share-links", text="Share on Facebook"),),
        captions=("A caption.", "Another caption."),
    )
    return Article(page=page, extracted=extracted, cleaned=cleaned)


def batches(articles: list[Article], *, batch_rows: int = 2, dt: str = DT) -> list[pa.RecordBatch]:
    return list(normalize(articles, dt=dt, rules_version="test-rules-1", batch_rows=batch_rows))
