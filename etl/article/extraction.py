"""Extraction: page bytes → article text and metadata (trafilatura, tuned for news).

One parse per page: bytes are decoded (:mod:`etl.article.charset`), parsed once, metadata is read
from the tree (:mod:`etl.article.metadata`), captions are collected, then trafilatura extracts
the body from the same tree with widget blocks pruned by the XPath rules in
``etl/article/rules/prune.yaml`` (global plus per-domain). The fast path skips trafilatura's
fallback extractors; pages whose fast result is short are extracted again with them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from lxml.etree import XPath, XPathError
from lxml.html import fromstring
from trafilatura.utils import load_html

from etl.article.cascade import choose_body
from etl.article.charset import decode_page
from etl.article.metadata import extract_meta
from etl.config import ExtractSettings
from etl.errors import ConfigError, ExtractError
from etl.records import Extracted, Page, Removed
from etl.urls import domain as url_domain

log = logging.getLogger("etl.article.extraction")

_WS = re.compile(r"[ \t\u00a0]+")


@dataclass(frozen=True)
class PruneRules:
    """XPath expressions removed from the tree before extraction, global and per domain."""

    global_: tuple[str, ...]
    domains: dict[str, tuple[str, ...]]
    captions: tuple[str, ...]
    ids: dict[str, str] = field(default_factory=dict)  # xpath → rule id (for explanations)

    def for_domain(self, domain: str | None) -> list[str]:
        rules = list(self.global_)
        if domain:
            parts = domain.split(".")
            for i in range(len(parts) - 1):
                rules.extend(self.domains.get(".".join(parts[i:]), ()))
        return rules


@cache
def load_prune_rules(path: Path) -> PruneRules:
    """Read and check the prune-rule file (every XPath must compile)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), f"cannot read prune rules: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "prune rules must be a mapping (global, domains, captions)")
    probe = fromstring("<html><body><div><p>x</p></div></body></html>")
    ids: dict[str, str] = {}

    def xpaths(entries: Any, where: str) -> tuple[str, ...]:
        if entries is not None and not isinstance(entries, list):
            raise ConfigError(str(path), f"{where}: must be a list of rules")
        out = []
        for i, entry in enumerate(entries or []):
            expr = entry.get("xpath") if isinstance(entry, dict) else None
            rule = f"{where}[{i}]" + (f" ({entry.get('id')})" if isinstance(entry, dict) else "")
            if not isinstance(expr, str):
                raise ConfigError(str(path), f"{rule}: needs an `xpath` string")
            try:  # evaluated once too: unknown functions only fail at evaluation
                XPath(expr)(probe)
            except XPathError as exc:
                raise ConfigError(str(path), f"{rule}: bad xpath {expr!r}: {exc}") from None
            out.append(expr)
            if isinstance(entry.get("id"), str):
                ids.setdefault(expr, entry["id"])
        return tuple(out)

    domains = data.get("domains") or {}
    if not isinstance(domains, dict):
        raise ConfigError(str(path), "domains: must be a mapping of domain to rules")
    return PruneRules(
        global_=xpaths(data.get("global"), "global"),
        domains={str(d).lower(): xpaths(r, f"domains.{d}") for d, r in domains.items()},
        captions=xpaths(data.get("captions"), "captions"),
        ids=ids,
    )


def explain_prune(tree: Any, exprs: list[str], ids: dict[str, str]) -> tuple[Removed, ...]:
    """What the prune rules take out of ``tree`` (rule ``prune:<id>``, the block's text), for
    the human report; outermost blocks only, empty ones skipped. Does not change the tree."""
    out: list[Removed] = []
    taken: set[Any] = set()
    for expr in exprs:
        for node in tree.xpath(expr):
            if not hasattr(node, "iterancestors") or any(a in taken for a in node.iterancestors()):
                continue
            taken.add(node)
            text = " ".join(t.strip() for t in node.itertext() if t.strip())
            if text:
                short = text if len(text) <= 300 else text[:299] + "…"
                out.append(Removed(f"prune:{ids.get(expr, 'xpath')}", short))
    return tuple(out)


def _text(node: Any) -> str:
    return _WS.sub(" ", node.text_content() if hasattr(node, "text_content") else str(node)).strip()


def _captions(tree: Any, exprs: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for expr in exprs:
        for node in tree.xpath(expr):
            text = _text(node)
            if text and text not in out:
                out.append(text)
    return tuple(out)


def _utc(t: datetime) -> datetime:
    """Aware times converted to UTC; naive ones are taken to be UTC (as normalize does)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _pick_date(
    dates: list[tuple[datetime, str]], page: Page, now: datetime, min_year: int
) -> tuple[datetime | None, str | None]:
    ceiling = _utc(page.fetched_at or now) + timedelta(minutes=5)
    candidates = list(dates)
    if page.published_hint is not None:
        at = (
            0
            if not candidates
            else next(
                (i for i, (_, src) in enumerate(candidates) if src in ("url", "text")),
                len(candidates),
            )
        )
        candidates.insert(at, (_utc(page.published_hint), "feed"))
    for when, source in candidates:
        if when.year >= min_year and when <= ceiling:
            return when, source
        log.debug("%s: %s date %s outside the sanity window", page.url or page.id, source, when)
    return None, None


def _language(text: str, hint: str | None) -> str | None:
    if len(text) < 120 and hint:
        return hint
    import py3langid

    lang, _ = py3langid.classify(text[:3000])
    return str(lang)


def extract(page: Page, settings: ExtractSettings, *, now: datetime | None = None) -> Extracted:
    """Extract one page. Raises :class:`ExtractError` (terminal) naming the page."""
    subject = page.url or page.raw_ref or page.id  # a local file: its path
    if len(page.body) > settings.max_page_bytes:
        raise ExtractError(subject, f"page too large ({len(page.body)} bytes)", kind="too-large")
    html, encoding, decode_errors = decode_page(page.body, page.content_type, subject=subject)
    tree = load_html(html)
    if tree is None:
        raise ExtractError(subject, "not an HTML document (parser found no tree)", kind="parse")
    meta, dates = extract_meta(tree, page.url)
    rules = load_prune_rules(settings.prune_file)
    domain = url_domain(page.url) or url_domain(meta.canonical_url)
    prune = rules.for_domain(domain if settings.domain_rules else None)
    text, extraction = choose_body(tree, page.url, settings, prune)
    if not text:
        raise ExtractError(subject, "no article text found", kind="no-text")
    published, source = _pick_date(dates, page, now or datetime.now(UTC), settings.min_year)
    modified = meta.modified_at
    if modified is not None and (
        modified.year < settings.min_year or (published and modified < published)
    ):
        modified = None
    return Extracted(
        text=text,
        title=meta.title,
        authors=meta.authors or page.authors_hint,
        published_at=published,
        date_source=source,
        modified_at=modified,
        sitename=meta.sitename,
        description=meta.description,
        categories=meta.categories,
        tags=meta.tags,
        image_url=meta.image_url,
        language=_language(text, page.language_hint or meta.html_lang),
        canonical_url=meta.canonical_url,
        captions=_captions(tree, rules.captions),
        encoding=encoding,
        decode_errors=decode_errors,
        pruned=explain_prune(tree, prune, rules.ids) if settings.explain else (),
        extraction=extraction,
    )
