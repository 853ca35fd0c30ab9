"""Normalize: articles (page + extracted + cleaned) to Arrow record batches of the article schema.

Entry point :func:`normalize`. Everything a row derives is computed here: the identity
(:func:`etl.urls.identify`: canonical URL, article id, domain, a cross-site canonical link kept
apart), UTC timestamps, the word count, the content hash and
the 64-bit simhash used for near-duplicate detection.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from functools import cache
from itertools import islice
from typing import Any

import numpy as np
import pyarrow as pa

from etl.errors import ExtractError
from etl.records import Article
from etl.schema import article_schema, schema_version
from etl.urls import article_id as url_id
from etl.urls import identify

log = logging.getLogger("etl.article.normalization")

DEFAULT_BATCH_ROWS = 2000
_WORD = re.compile(r"\w+")
_DT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MASK64 = (1 << 64) - 1
# Odd 64-bit multipliers combining the three word hashes of a shingle, and the splitmix64
# finalizer constants that mix the combination.
_K = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_WORD_CACHE: dict[str, int] = {}
_WORD_CACHE_MAX = 1 << 18


def article_id(canonical: str) -> str:
    """The article's id: :func:`etl.urls.article_id` of its canonical URL.

    That is the first 32 hex characters of the SHA-256 of the URL in
    :func:`etl.urls.canonicalize` form (tracking parameters, ``www.``, scheme, trailing slash
    folded), the same key discovery gives a listed URL, so variants of one article share an id.
    """
    try:
        return url_id(canonical)
    except ValueError:
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def to_utc(t: datetime | None) -> datetime | None:
    """Aware datetimes converted to UTC; naive ones are taken to be UTC already."""
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def content_hash(text: str) -> str:
    """SHA-256 hex of the text, NFC-normalized, whitespace collapsed and case-folded."""
    norm = " ".join(unicodedata.normalize("NFC", text).split()).casefold()
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()


def _hash_word(word: str) -> int:
    h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    if len(_WORD_CACHE) < _WORD_CACHE_MAX:
        _WORD_CACHE[word] = h
    return h


def _fold(tokens: list[str]) -> list[str]:
    """Case-fold tokens in one C-level pass (case folding never introduces spaces)."""
    return " ".join(tokens).casefold().split(" ") if tokens else []


def simhash(text: str) -> int:
    """64-bit Charikar simhash over case-folded word 3-shingles, as a signed int64.

    Words are the ``\\w+`` tokens of the text, case-folded, each hashed with blake2b-64 (memoised
    in a bounded per-process cache: news vocabularies are Zipfian). Shingle hashes are combined
    and mixed with vectorised uint64 arithmetic and the per-bit majority vote is taken over the
    unpacked bit matrix. Fewer than three words make one shingle; no words hash to 0.
    """
    return _simhash(_fold(_WORD.findall(text)))


def _simhash(tokens: list[str]) -> int:
    if not tokens:
        return 0
    hashes = list(map(_WORD_CACHE.get, tokens))
    if None in hashes:
        hashes = [_hash_word(t) if h is None else h for t, h in zip(tokens, hashes, strict=True)]
    words = np.array(hashes, dtype=np.uint64)
    if len(words) < 3:  # one shingle of all the words
        words = np.concatenate([words, np.zeros(3 - len(words), dtype=np.uint64)])
    x = words[:-2] * _K[0] + words[1:-1] * _K[1] + words[2:] * _K[2]
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    x = x ^ (x >> _S31)
    # Bit k of the little-endian bytes is bit k of the integer, on any host.
    le = x.astype(np.dtype("<u8")).view(np.uint8).reshape(-1, 8)
    bits = np.unpackbits(le, axis=1, bitorder="little")
    majority = bits.sum(axis=0, dtype=np.int64) * 2 > len(x)
    packed = np.packbits(majority, bitorder="little").tobytes()
    return int.from_bytes(packed, "little", signed=True)


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit simhashes (signed or unsigned)."""
    return ((a ^ b) & _MASK64).bit_count()


@cache
def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _unique(*groups: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(s for g in groups for s in g if s))


def article_row(
    a: Article, *, dt: str | None, rules_version: str, strict: bool = True
) -> dict[str, Any]:
    """One article as a dict of the current article schema column values (Python objects).

    With ``strict`` (what :func:`normalize` uses) an article without an absolute http(s) URL
    raises :class:`ExtractError` (kind ``no-url``); without it (``newsetl extract`` on local
    files) the URL-derived columns are None. ``dt`` may be None outside a pipeline run.
    """
    page, ex, cl = a.page, a.extracted, a.cleaned
    ident = identify(page.url, ex.canonical_url)
    if ident is None and strict:
        raise ExtractError(
            page.url or page.id, "no absolute http(s) URL to identify the article", kind="no-url"
        )
    published, date_source = ex.published_at, ex.date_source
    if published is None and page.published_hint is not None:
        published, date_source = page.published_hint, "feed"
    text = cl.text
    tokens = _WORD.findall(text)
    return {
        "article_id": ident.article_id if ident else None,
        "url": page.url or (ident.canonical_url if ident else None),
        "canonical_url": ident.canonical_url if ident else None,
        "source_id": page.source_id,
        "domain": ident.domain if ident else None,
        "title": ex.title,
        "authors": _unique(ex.authors or page.authors_hint),
        "published_at": to_utc(published),
        "date_source": date_source if published is not None else None,
        "modified_at": to_utc(ex.modified_at),
        "fetched_at": to_utc(page.fetched_at),
        "language": ex.language or page.language_hint,
        "text": text,
        "captions": _unique(ex.captions, cl.captions),
        "description": ex.description,
        "sitename": ex.sitename,
        "categories": _unique(ex.categories),
        "tags": _unique(ex.tags),
        "image_url": ex.image_url,
        "word_count": len(tokens),
        "content_hash": content_hash(text),
        "simhash": _simhash(_fold(tokens)),
        "boilerplate_removed": [{"rule": r.rule, "text": r.text} for r in cl.removed],
        "http_status": page.http_status,
        "raw_ref": page.raw_ref,
        "extractor": {
            "newsetl": _version("newsetl"),
            "trafilatura": _version("trafilatura"),
            "rules": rules_version,
        },
        "canonical_link": ident.canonical_link if ident else None,
        "extraction": asdict(ex.extraction) if ex.extraction is not None else None,
        "duplicate_of": None,
        "schema_version": schema_version(article_schema()),
        "dt": dt,
    }


def normalize(
    articles: Iterable[Article],
    *,
    dt: str,
    rules_version: str,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Turn articles into record batches of at most ``batch_rows`` rows of the article schema.

    Streams: consumes ``articles`` lazily and yields each batch as soon as it is full.
    ``dt`` is the interval's partition value (YYYY-MM-DD); ``rules_version`` names the
    boilerplate rule set, recorded in ``extractor.rules``. An article with no absolute http(s)
    URL raises :class:`ExtractError` (kind ``no-url``).
    """
    if not _DT.match(dt):
        raise ValueError(f"dt must be YYYY-MM-DD, got {dt!r}")
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    schema = article_schema()
    it = iter(articles)
    total = 0
    while chunk := list(islice(it, batch_rows)):
        rows = [article_row(a, dt=dt, rules_version=rules_version) for a in chunk]
        total += len(rows)
        yield pa.RecordBatch.from_pylist(rows, schema=schema)
    log.debug("normalized %d articles for dt=%s", total, dt)


def to_table(articles: Iterable[Article], *, dt: str, rules_version: str) -> pa.Table:
    """All of :func:`normalize`'s batches as one table (empty table with the schema if none)."""
    batches = list(normalize(articles, dt=dt, rules_version=rules_version))
    return pa.Table.from_batches(batches, schema=article_schema())
