"""Article metadata from the parsed page: JSON-LD first, then meta tags, then the URL and text.

Reads the lxml tree without changing it, so the same tree then goes to the text extractor (one
parse per page). Dates carry where they came from (``date_source``) and pass a sanity window.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from lxml.html import HtmlElement

log = logging.getLogger("etl.article.metadata")

ARTICLE_TYPES = {
    "article", "newsarticle", "reportagenewsarticle", "analysisnewsarticle", "blogposting",
    "liveblogposting", "opinionnewsarticle", "reviewnewsarticle", "backgroundnewsarticle",
    "posting", "socialmediaposting", "techarticle", "scholarlyarticle", "report",
}  # fmt: skip
_META_PUBLISHED = (
    "article:published_time", "og:article:published_time", "datepublished", "pubdate",
    "publishdate", "publish-date", "date", "dc.date", "dc.date.issued", "dcterms.created",
    "sailthru.date", "parsely-pub-date", "article.published", "publication_date",
)  # fmt: skip
_META_MODIFIED = ("article:modified_time", "og:updated_time", "datemodified", "dcterms.modified",
                  "last-modified", "article.updated")  # fmt: skip
_META_AUTHOR = ("author", "article:author", "parsely-author", "sailthru.author", "dc.creator",
                "byl", "twitter:creator")  # fmt: skip
_URL_DATE = re.compile(
    r"/((?:19|20)\d{2})[/-]?(0[1-9]|1[0-2])[/-]?(0[1-9]|[12]\d|3[01])(?:/|[^\d]|$)"
)
_BYLINE_XPATH = (
    "//*[@itemprop='author']//*[@itemprop='name'] | //*[@rel='author'] | "
    "//*[contains(concat(' ',normalize-space(@class),' '),' byline ')] | "
    "//*[contains(@class,'author-name') or contains(@class,'byline__name')]"
)
_BY = re.compile(r"^\s*(?:by|von|par|por|від|автор)[:\s]+", re.I)
_NOT_A_NAME = re.compile(
    r"\d|@|https?:|www\.|\b(?:staff|reporter|writer|correspondent|editor|contributor|updated|"
    r"published|posted|hours?|minutes?|ago|news|agency|desk|team|press|associated|reuters)\b",
    re.I,
)
_SPLIT_NAMES = re.compile(r"\s*(?:\||;|,|&|\band\b|\bund\b|\bі\b|\bи\b)\s*", re.I)


@dataclass(frozen=True)
class Meta:
    title: str | None = None
    authors: tuple[str, ...] = ()
    published_at: datetime | None = None
    date_source: str | None = None
    modified_at: datetime | None = None
    sitename: str | None = None
    description: str | None = None
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    image_url: str | None = None
    canonical_url: str | None = None
    html_lang: str | None = None


def _norm(s: object) -> str:
    return re.sub(r"\s+", " ", str(s)).strip() if s is not None else ""


def parse_date(value: object) -> datetime | None:
    """Parse an ISO-ish date string; naive values are taken as UTC."""
    s = _norm(value)
    if not s:
        return None
    s = s.replace("Z", "+00:00").replace(" ", "T", 1) if len(s) > 10 else s
    s = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", s)
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        m = re.match(r"((?:19|20)\d{2})-(\d{2})-(\d{2})", s)
        if not m:
            return None
        try:
            dt = datetime(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            return None
    return (dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt).astimezone(UTC)


def _jsonld_objects(tree: HtmlElement) -> Iterator[dict[str, Any]]:
    for node in tree.xpath("//script[@type='application/ld+json']"):
        try:
            data = json.loads(node.text_content() or "null", strict=False)
        except ValueError:
            continue
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(reversed(item))
            elif isinstance(item, dict):
                yield item
                if "@graph" in item:
                    stack.append(item["@graph"])


def _types(obj: dict[str, Any]) -> set[str]:
    t = obj.get("@type", ())
    return {str(x).lower() for x in (t if isinstance(t, list) else [t])}


def _names(value: object) -> list[str]:
    if isinstance(value, list):
        return [n for v in value for n in _names(v)]
    if isinstance(value, dict):
        return _names(value.get("name"))
    return [_norm(value)] if value else []


def _first_url(value: object) -> str | None:
    if isinstance(value, list):
        return next((u for v in value if (u := _first_url(v))), None)
    if isinstance(value, dict):
        return _first_url(value.get("url") or value.get("contentUrl"))
    return _norm(value) or None


def clean_authors(raw: list[str]) -> tuple[str, ...]:
    """``["By Jane Doe | Staff Reporter | 3 hours ago", "John Roe and Ann Poe"]`` → names."""
    out: list[str] = []
    for value in raw:
        for part in _SPLIT_NAMES.split(_BY.sub("", _norm(value))):
            name = _BY.sub("", part).strip(" .,:-–—")
            if not name or len(name) > 60 or len(name.split()) > 5 or _NOT_A_NAME.search(name):
                continue
            if name.lower() not in {o.lower() for o in out}:
                out.append(name)
    return tuple(out)


def _split_list(values: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for v in values:
        for part in re.split(r"\s*[,;|]\s*", v):
            p = part.strip()
            if p and p not in out:
                out.append(p)
    return tuple(out)


def extract_meta(tree: HtmlElement, url: str | None) -> tuple[Meta, list[tuple[datetime, str]]]:
    """Metadata of a page, plus its date candidates in order of trust ``(date, source)``."""
    metas: dict[str, list[str]] = {}
    for m in tree.xpath("//meta[@content]"):
        key = m.get("property") or m.get("name") or m.get("itemprop") or m.get("http-equiv")
        key = (key or "").strip().lower()
        if key:
            metas.setdefault(key, []).append(_norm(m.get("content")))

    def meta(*keys: str) -> str | None:
        return next((metas[k][0] for k in keys if metas.get(k) and metas[k][0]), None)

    article: dict[str, Any] = {}
    site_name = None
    for obj in _jsonld_objects(tree):
        types = _types(obj)
        if not article and types & ARTICLE_TYPES:
            article = obj
        if "organization" in types or "newsmediaorganization" in types:
            site_name = site_name or _norm(obj.get("name")) or None
    dates: list[tuple[datetime, str]] = []
    for value, source in (
        (article.get("datePublished"), "json-ld"),
        (meta(*_META_PUBLISHED), "meta"),
    ):
        if (d := parse_date(value)) is not None:
            dates.append((d, source))
    for t in tree.xpath("//time[@datetime]")[:3]:
        if (d := parse_date(t.get("datetime"))) is not None:
            dates.append((d, "text"))
    if url and (m := _URL_DATE.search(url)):
        with contextlib.suppress(ValueError):
            dates.append((datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=UTC), "url"))
    dates.sort(key=lambda x: ("json-ld", "meta", "url", "text").index(x[1]))
    modified = parse_date(article.get("dateModified")) or parse_date(meta(*_META_MODIFIED))

    authors = _names(article.get("author")) or [
        a for k in _META_AUTHOR for a in metas.get(k, []) if not a.startswith(("http", "@"))
    ]
    if not authors:
        authors = [_norm(e.text_content()) for e in tree.xpath(_BYLINE_XPATH)[:4]]
    publisher = article.get("publisher")
    sitename = meta("og:site_name", "application-name") or (
        _names(publisher)[0] if _names(publisher) else site_name
    )
    title = _norm(article.get("headline")) or meta("og:title", "twitter:title")
    if not title:
        h1 = tree.xpath("//h1")
        title = _norm(h1[0].text_content()) if h1 else _norm(tree.findtext(".//title"))
    canonical = next(iter(tree.xpath("//link[@rel='canonical']/@href")), None) or meta("og:url")
    if canonical and url:
        canonical = urljoin(url, canonical)
    section = article.get("articleSection")
    cats = _names(section) if isinstance(section, list) else ([_norm(section)] if section else [])
    kw = article.get("keywords")
    tags = _names(kw) if isinstance(kw, list) else ([_norm(kw)] if kw else [])
    image = _first_url(article.get("image")) or meta("og:image", "twitter:image")
    lang = tree.get("lang") or tree.get("xml:lang") or meta("content-language", "og:locale")
    return (
        Meta(
            title=title or None,
            authors=clean_authors(authors),
            modified_at=modified,
            sitename=sitename or None,
            description=_norm(article.get("description")) or meta("og:description", "description"),
            categories=_split_list(cats or metas.get("article:section", [])),
            tags=_split_list(
                tags
                or metas.get("article:tag", [])
                or metas.get("news_keywords", [])
                or metas.get("keywords", [])
            ),
            image_url=urljoin(url, image) if image and url else image,
            canonical_url=canonical,
            html_lang=(lang or "").replace("_", "-").split("-")[0].lower() or None,
        ),
        dates,
    )
