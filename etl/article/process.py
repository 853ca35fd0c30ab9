"""The article core: one page → extract → clean (an :class:`~etl.records.Article`), or a Failure.

``process_page`` is the per-page unit (a DAG task or a worker process calls it);
``process_pages`` streams many pages through it, in this process or in a pool of worker
processes, yielding each result as it is ready (memory stays flat: nothing is collected).
Normalizing, deduplicating and publishing the results is the caller's
(:mod:`etl.runner.ingestion`, :mod:`etl.runner.process`).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from etl.article.cleaning import RuleSet, clean, load_rules
from etl.article.extraction import extract
from etl.article.guards import PARSER_MAX_DEPTH, element_count, nesting_depth
from etl.article.localfile import read_local
from etl.config import DEFAULT_MAX_BYTES, Settings
from etl.errors import EtlError, ExtractError
from etl.records import Article, Failure, Page
from etl.urls import domain as url_domain

log = logging.getLogger("etl.article.process")

PAGE_SUFFIXES = (".html", ".htm", ".xhtml", ".html.gz", ".htm.gz")


def rules_for(settings: Settings, extra: str | None = None) -> RuleSet:
    paths = [settings.clean.rules_file]
    if extra:
        paths.append(settings.clean.rules_file.parent / f"{extra}.yaml")
    return load_rules(*paths)


def process_page(page: Page, settings: Settings) -> Article:
    """Extract and clean one page; raises :class:`ExtractError` when it holds no article."""
    limit = settings.extract.max_elements
    if len(page.body) > limit * 4 and (n := element_count(page.body)) > limit:
        subject = page.url or page.raw_ref or page.id
        msg = f"page has {n} elements, more than the {limit} newsetl extracts (time per page)"
        raise ExtractError(subject, msg, kind="too-complex")
    try:
        extracted = extract(page, settings.extract)
    except ExtractError as exc:
        if exc.kind == "no-text" and (depth := nesting_depth(page.body)) > PARSER_MAX_DEPTH:
            msg = (
                f"no article text: nesting too deep ({depth} levels; the HTML parser stops at "
                f"{PARSER_MAX_DEPTH})"
            )
            raise ExtractError(exc.subject, msg, kind="too-deep") from None
        raise
    domain = url_domain(page.url) or url_domain(extracted.canonical_url)
    if not settings.extract.domain_rules:  # global rules only (newsetl eval --global-only)
        domain = None
    cleaned = clean(
        extracted.text, rules_for(settings, page.rules), domain=domain, captions=extracted.captions
    )
    if not cleaned.text.strip():
        raise ExtractError(
            page.url or page.raw_ref or page.id,
            "no article text left after cleaning",
            kind="no-text",
        )
    return Article(page=page, extracted=extracted, cleaned=cleaned)


def page_id(path: Path) -> str:
    """File name without its extensions: ``abc.html.gz`` → ``abc``."""
    return path.name.split(".")[0]


def read_page(path: Path, *, url: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> Page:
    """A local file as a Page (``.gz`` inflated in a stream); ``too-large`` past ``max_bytes``,
    ``unreadable`` for a file that cannot be read or corrupt compressed data."""
    return Page(id=page_id(path), body=read_local(path, max_bytes), url=url, raw_ref=str(path))


@dataclass(frozen=True)
class LocalPage:
    """A saved page to read where it is processed (so a folder streams through, unread)."""

    path: Path
    url: str | None = None
    source_id: str | None = None
    fetched_at: datetime | None = None


Item = Path | Page | LocalPage


def find_pages(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named on the command line, and the page files inside named folders (sorted)."""
    for path in paths:
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and f.name.lower().endswith(PAGE_SUFFIXES):
                    yield f
        else:
            yield path


def _load(item: Item, settings: Settings) -> Page:
    cap = settings.extract.max_page_bytes
    if isinstance(item, Path):
        return read_page(item, max_bytes=cap)
    if isinstance(item, LocalPage):
        page = read_page(item.path, url=item.url, max_bytes=cap)
        ident = item.url or page.id
        return replace(page, source_id=item.source_id, fetched_at=item.fetched_at, id=ident)
    return item


def _attempt(item: Item, settings: Settings) -> Article | Failure:
    if isinstance(item, Path):
        subject, ident = str(item), page_id(item)
    elif isinstance(item, LocalPage):
        subject, ident = item.url or str(item.path), item.url or page_id(item.path)
    else:
        subject, ident = item.url or item.id, item.id
    try:
        return process_page(_load(item, settings), settings)
    except EtlError as exc:
        return Failure(ident, subject, exc.kind, str(exc))
    except Exception as exc:  # a parser bug on one page must not stop the others
        log.exception("unexpected failure on %s", subject)
        return Failure(ident, subject, "internal", f"{subject}: {type(exc).__name__}: {exc}")


_WORKER: tuple[Settings, Callable[[Article | Failure], Any] | None] | None = None


def _init_worker(settings: Settings, finish: Callable[[Article | Failure], Any] | None) -> None:
    global _WORKER  # noqa: PLW0603 - per-process state of a pool worker
    _WORKER = (settings, finish)


def _work(item: Item) -> Any:
    assert _WORKER is not None
    settings, finish = _WORKER
    result = _attempt(item, settings)
    return finish(result) if finish is not None else result


def warm_up() -> None:
    """Load lazy models once (before forking workers, so they share them)."""
    import py3langid

    py3langid.classify("warm up the language model")


def process_pages(
    items: Iterable[Item],
    settings: Settings,
    *,
    workers: int = 1,
    finish: Callable[[Article | Failure], Any] | None = None,
) -> Iterator[Any]:
    """Process pages (local paths or Pages) in order, yielding an Article or a Failure each.

    ``finish`` (a module-level function) turns each result into what is yielded, inside the
    worker process, so serialising output (JSON rows) is parallel too.
    """
    warm_up()
    if workers <= 1:
        for item in items:
            result = _attempt(item, settings)
            yield finish(result) if finish is not None else result
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(settings, finish)) as pool:
        yield from pool.imap(_work, items, chunksize=4)
