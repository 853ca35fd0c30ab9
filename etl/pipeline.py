"""The article core as one pipeline: pages → extract → clean → normalize → dedupe → publish.

``process_page`` is the per-page unit (a DAG task or a worker process calls it);
``process_pages`` streams many pages through it, in this process or in a pool of worker
processes, yielding each result as it is ready (memory stays flat: nothing is collected).
"""

from __future__ import annotations

import gzip
import logging
import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from etl.clean import RuleSet, clean, load_rules
from etl.config import Settings
from etl.errors import EtlError, ExtractError
from etl.extract import domain_of, extract
from etl.lake import Lake
from etl.records import Article, Interval, Page
from etl.store import Manifest

log = logging.getLogger("etl.pipeline")

PAGE_SUFFIXES = (".html", ".htm", ".xhtml", ".html.gz", ".htm.gz")


@dataclass(frozen=True)
class Failure:
    """A page that yielded no article: the row that says why (nothing is dropped silently)."""

    id: str
    subject: str
    kind: str
    error: str


def rules_for(settings: Settings, extra: str | None = None) -> RuleSet:
    paths = [settings.clean.rules_file]
    if extra:
        paths.append(settings.clean.rules_file.parent / f"{extra}.yaml")
    return load_rules(*paths)


def process_page(page: Page, settings: Settings) -> Article:
    """Extract and clean one page; raises :class:`ExtractError` when it holds no article."""
    extracted = extract(page, settings.extract)
    domain = domain_of(page.url) or domain_of(extracted.canonical_url)
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


def read_page(path: Path, *, url: str | None = None) -> Page:
    """A local file as a Page (``.gz`` files are decompressed)."""
    try:
        body = path.read_bytes()
        if path.suffix == ".gz":
            body = gzip.decompress(body)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ExtractError(str(path), f"cannot read file: {exc}", kind="unreadable") from None
    return Page(id=page_id(path), body=body, url=url, raw_ref=str(path))


def find_pages(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named on the command line, and the page files inside named folders (sorted)."""
    for path in paths:
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and f.name.lower().endswith(PAGE_SUFFIXES):
                    yield f
        else:
            yield path


def _attempt(item: Path | Page, settings: Settings) -> Article | Failure:
    subject = str(item) if isinstance(item, Path) else (item.url or item.id)
    ident = page_id(item) if isinstance(item, Path) else item.id
    try:
        page = read_page(item) if isinstance(item, Path) else item
        return process_page(page, settings)
    except EtlError as exc:
        return Failure(ident, subject, exc.kind, str(exc))
    except Exception as exc:  # a parser bug on one page must not stop the others
        log.exception("unexpected failure on %s", subject)
        return Failure(ident, subject, "internal", f"{subject}: {type(exc).__name__}: {exc}")


_WORKER: tuple[Settings, Callable[[Article | Failure], Any] | None] | None = None


def _init_worker(settings: Settings, finish: Callable[[Article | Failure], Any] | None) -> None:
    global _WORKER  # noqa: PLW0603 - per-process state of a pool worker
    _WORKER = (settings, finish)


def _work(item: Path | Page) -> Any:
    assert _WORKER is not None
    settings, finish = _WORKER
    result = _attempt(item, settings)
    return finish(result) if finish is not None else result


def warm_up() -> None:
    """Load lazy models once (before forking workers, so they share them)."""
    import py3langid

    py3langid.classify("warm up the language model")


def process_pages(
    items: Iterable[Path | Page],
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
    from etl.schema import fetch_log_schema

    schema = fetch_log_schema()
    rows = [
        {"url": f.subject, "source_id": source_id, "error_class": f.kind, "error": f.error,
         "attempts": 1, "purpose": "extract", "dt": dt}
        for f in failures
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=schema)


def ingest(
    items: Iterable[Path | Page],
    settings: Settings,
    *,
    interval: Interval,
    lake: Lake,
    source_id: str | None = None,
    workers: int = 1,
    on_result: Callable[[Article | Failure], None] | None = None,
) -> RunSummary:
    """Pages → article core → one published interval (exactly-once: reruns replace it)."""
    from etl.dedupe import dedupe
    from etl.normalize import canonical_url, normalize
    from etl.store import SeenRecheck, publish_interval, seen_ids

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
            if canonical_url(page.url, result.extracted.canonical_url) is None:
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
            yield result

    seen = seen_ids(lake, days=settings.seen_days, exclude=interval)
    rules_version = rules_for(settings).version
    run = dedupe(normalize(articles(), dt=interval.dt, rules_version=rules_version), seen=seen)
    manifest = publish_interval(
        lake,
        interval,
        run,
        n_shards=settings.n_shards,
        fetch_log=lambda: failure_log(failures, source_id=source_id, dt=interval.dt),
        recheck=SeenRecheck(settings.seen_days, settings.lease, stats=run.stats),
        manifest_extra=lambda: {
            "source_id": source_id,
            "pages": len(titles) + len(failures),
            "failed": len(failures),
            "rule_hits": dict(hits.most_common()),
            "rules_version": sorted(versions),
            "dedupe": run.stats.as_dict(),
        },
    )
    return RunSummary(manifest, failures, hits, titles, run.stats.as_dict())
