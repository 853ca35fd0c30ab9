"""Parsers for the documents that list articles: feeds, sitemaps, URL lists.

Pure functions from bytes to :class:`Listing` entries (no I/O). Dates are timezone-aware UTC.

* :func:`parse_feed` — RSS 0.9x/1.0/2.0 and Atom via feedparser (lenient with malformed XML: the
  entries before the break are kept and ``bozo`` is reported).
* :func:`parse_sitemap` — ``<urlset>`` and ``<sitemapindex>``, Google News extensions
  (``news:publication_date``, ``news:title``, ``news:language``), ``lastmod``, gzip-compressed
  bodies; a generator, raising :class:`~etl.errors.SourceError` (kind ``parse``) where the XML
  breaks, after yielding what came before.
* :func:`parse_url_list` — one URL per line, optionally followed by an ISO date; ``#`` comments.
"""

from __future__ import annotations

import calendar
import io
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urljoin
from xml.etree.ElementTree import ParseError, iterparse

import feedparser

from etl.errors import SourceError
from etl.records import parse_w3c_date

__all__ = ["Feed", "Listing", "parse_feed", "parse_sitemap", "parse_url_list"]

DateKind = Literal["feed-published", "feed-updated", "news-publication-date", "lastmod", "listed"]


@dataclass(frozen=True)
class Listing:
    """One entry of a feed, sitemap or URL list. ``is_sitemap``: a child of a sitemap index."""

    url: str
    date: datetime | None = None
    date_kind: DateKind | None = None
    title: str | None = None
    authors: tuple[str, ...] = ()
    language: str | None = None
    is_sitemap: bool = False


@dataclass(frozen=True)
class Feed:
    """A parsed feed: its entries, its language, and the parse problem if the XML was malformed."""

    entries: tuple[Listing, ...]
    language: str | None
    problem: str | None


def parse_feed(body: bytes, base_url: str, content_type: str | None = None) -> Feed:
    """Entries of an RSS/Atom feed; relative links are resolved against ``base_url``."""
    # without a Content-Type feedparser flags the feed; application/xml lets the XML declare
    # its own encoding (RFC 7303), which is right for a body read back from the archive too
    headers = {"content-location": base_url, "content-type": content_type or "application/xml"}
    parsed: Any = feedparser.parse(body, response_headers=headers)
    language = _clean(parsed.feed.get("language"))
    entries = []
    for e in parsed.entries:
        link = _entry_link(e, base_url)
        if not link:
            continue
        date, kind = _struct_date(e.get("published_parsed")), "feed-published"
        if date is None:
            date, kind = _struct_date(e.get("updated_parsed")), "feed-updated"
        authors = tuple(
            n for a in (e.get("authors") or ()) if (n := _clean(a.get("name") if a else None))
        ) or tuple(n for n in (_clean(e.get("author")),) if n)
        entries.append(
            Listing(
                url=link,
                date=date,
                date_kind=kind if date else None,  # type: ignore[arg-type]
                title=_clean(e.get("title")),
                authors=authors,
                language=language,
            )
        )
    problem = str(parsed.get("bozo_exception")) if parsed.get("bozo") else None
    if problem and not entries and not parsed.get("version"):
        raise SourceError(base_url, f"not a feed: {problem}", kind="parse")
    return Feed(entries=tuple(entries), language=language, problem=problem)


def parse_sitemap(
    body: bytes, base_url: str, max_bytes: int = 200 * 1024 * 1024
) -> Iterator[Listing]:
    """Entries of a sitemap or sitemap index (gzip-compressed or not), as they are parsed."""
    if body[:2] == b"\x1f\x8b":
        body = _gunzip(body, max_bytes, base_url)
    url: dict[str, str] = {}
    try:
        for event, el in iterparse(io.BytesIO(body), events=("start", "end")):
            tag = el.tag.rsplit("}", 1)[-1]
            if event == "start":
                if tag in ("url", "sitemap"):
                    url = {}
                continue
            text = (el.text or "").strip()
            if tag in ("loc", "lastmod", "publication_date", "title", "language") and text:
                url.setdefault(tag, text)
            elif tag in ("url", "sitemap"):
                entry = _sitemap_entry(url, base_url, is_sitemap=tag == "sitemap")
                if entry is not None:
                    yield entry
                el.clear()
    except ParseError as exc:
        raise SourceError(base_url, f"malformed sitemap XML: {exc}", kind="parse") from None


def parse_url_list(lines: Iterable[str]) -> Iterator[Listing]:
    """``URL [ISO-date]`` per line; blank lines and ``#`` comments are skipped.

    URLs are taken as written (absolute URLs expected; anything else is dropped at selection).
    """
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        date = parse_w3c_date(parts[1]) if len(parts) > 1 else None
        yield Listing(url=parts[0], date=date, date_kind="listed" if date else None)


def _sitemap_entry(fields: dict[str, str], base_url: str, *, is_sitemap: bool) -> Listing | None:
    loc = fields.get("loc")
    if not loc:
        return None
    date, kind = parse_w3c_date(fields.get("publication_date")), "news-publication-date"
    if date is None:
        date, kind = parse_w3c_date(fields.get("lastmod")), "lastmod"
    return Listing(
        url=urljoin(base_url, loc),
        date=date,
        date_kind=kind if date else None,  # type: ignore[arg-type]
        title=fields.get("title"),
        language=fields.get("language"),
        is_sitemap=is_sitemap,
    )


def _gunzip(body: bytes, limit: int, where: str) -> bytes:
    d = zlib.decompressobj(wbits=47)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise SourceError(where, f"bad gzip data: {exc}", kind="parse") from None
    if len(out) > limit:
        raise SourceError(where, f"gzip expands beyond {limit} bytes", kind="too-large")
    return out


def _entry_link(entry: Any, base_url: str) -> str | None:
    link = entry.get("link")
    if not link:
        for candidate in entry.get("links") or ():
            if candidate.get("rel", "alternate") == "alternate" and candidate.get("href"):
                link = candidate["href"]
                break
    if not link and entry.get("guidislink"):
        link = entry.get("id")
    return urljoin(base_url, link.strip()) if link and link.strip() else None


def _struct_date(value: time.struct_time | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(calendar.timegm(value), UTC)


def _clean(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    v = " ".join(value.split())
    return v or None
