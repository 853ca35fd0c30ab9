"""Discovery: from a source in sources.yaml to the candidate articles of one interval.

:func:`discover` reads a source's listing documents — an RSS/Atom feed, a sitemap (index, Google
News, gzipped; or the ``Sitemap:`` lines of a robots.txt when the source URL is one), or a URL
list (local, in the lake, or over HTTP) — through the run's :class:`~etl.fetch.Fetcher` (so the
same politeness, robots.txt, WARC archive and ``fetch_log`` apply) and yields a
:class:`Candidate` per article to fetch. ``warc`` sources are not discovered: their records are
already pages, read with :func:`etl.discover.warc.read_warc`.

Selection, in order: the URL must canonicalize (:mod:`etl.urls`) and pass the source's
``include``/``exclude``/``domains``; a dated entry (feed date, news publication date, lastmod,
dated list line) must fall in ``[start, end)``; an undated one is kept only when the interval ended
within ``lookback_hours`` of now (an undated listing says nothing about an old interval); an
article whose ``article_id`` is in ``seen`` (the lake's recent article ids, never the interval's
own) or already listed in this run is skipped; at most ``max_articles`` are kept.

Conditional GET: pass a ``validators`` mapping (kept in the lake by the caller) and it is used and
updated; on ``304 Not Modified`` the body archived by the earlier fetch is read back through
``load_raw`` (a raw_ref → Page function) and parsed again; without it the document is refetched.
"""

from __future__ import annotations

import io
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from etl.config import SourceConfig, redact_url
from etl.discover.files import SourceFiles, read_errors, source_error
from etl.discover.listings import Listing, parse_feed, parse_sitemap, parse_url_list
from etl.errors import EtlError, SourceError
from etl.fetch import Fetcher, FetchResult, Opener, Validators
from etl.records import Candidate, Interval, Page
from etl.urls import article_id, canonicalize, url_filter

__all__ = ["discover"]

log = logging.getLogger("etl.discover.documents")

MAX_SITEMAP_DEPTH = 3
RawLoader = Callable[[str], Page | None]


def discover(
    source: SourceConfig,
    interval: Interval,
    *,
    fetcher: Fetcher,
    seen: frozenset[str],
    validators: MutableMapping[str, Validators] | None = None,
    load_raw: RawLoader | None = None,
    opener: Opener | None = None,
    now: datetime | None = None,
) -> Iterator[Candidate]:
    """Candidates of ``source`` for ``interval`` (see the module docstring).

    ``opener`` opens a ``urls`` source's file: ``SourceFiles(lake_settings)`` reads an
    ``s3://`` list with the lake's S3 settings (the default reads local files only).
    """
    if source.kind == "warc":
        msg = "a warc source holds pages, not links: read it with etl.discover.warc.read_warc"
        raise SourceError(source.id, msg, kind="config")
    docs = _Documents(source, fetcher, validators, load_raw)
    if source.kind == "rss":
        listings = docs.feed()
    elif source.kind == "sitemap":
        listings = docs.sitemaps(interval)
    else:
        listings = docs.url_list(opener or SourceFiles())
    yield from _select(listings, source, interval, seen, now or datetime.now(UTC))


def _select(
    listings: Iterable[Listing],
    source: SourceConfig,
    interval: Interval,
    seen: frozenset[str],
    now: datetime,
) -> Iterator[Candidate]:
    allowed = url_filter(source.include, source.exclude, source.domains)
    undated_ok = interval.end >= now - timedelta(hours=source.lookback_hours)
    kept: set[str] = set()
    counts: Counter[str] = Counter()
    try:
        for e in listings:
            counts["listed"] += 1
            try:
                canonical = canonicalize(e.url)
            except ValueError:
                counts["bad-url"] += 1
                log.debug("source %s: skipping %r (not an http(s) URL)", source.id, e.url)
                continue
            aid = article_id(canonical)
            reason = None
            if "@" in urlsplit(e.url).netloc:  # fetching it would send (and archive) the secret
                reason = "credentials"
                log.warning(
                    "source %s: skipping %s (a listed URL carrying credentials)",
                    source.id,
                    redact_url(e.url),
                )
            elif not allowed(e.url):
                reason = "filtered"
            elif e.date is not None and e.date not in interval:
                reason = "out-of-interval"
            elif e.date is None and not undated_ok:
                reason = "undated"
            elif aid in seen:
                reason = "seen"
            elif aid in kept:
                reason = "duplicate"
            if reason is not None:
                counts[reason] += 1
                continue
            kept.add(aid)
            counts["kept"] += 1
            yield Candidate(
                url=e.url,
                canonical_url=canonical,
                article_id=aid,
                source_id=source.id,
                listed_at=e.date,
                date_kind=e.date_kind,
                title_hint=e.title,
                authors_hint=e.authors,
                language_hint=source.language or e.language,
                rules=source.rules,
                per_host_delay_s=source.per_host_delay_s,
                user_agent=source.user_agent,
            )
            if source.max_articles is not None and len(kept) >= source.max_articles:
                counts["capped"] += 1
                break
    finally:
        log.info("source %s %s: %s", source.id, interval.id, dict(counts))


class _Documents:
    """Fetching and parsing a source's listing documents."""

    def __init__(
        self,
        source: SourceConfig,
        fetcher: Fetcher,
        validators: MutableMapping[str, Validators] | None,
        load_raw: RawLoader | None,
    ) -> None:
        self.source = source
        self.fetcher = fetcher
        self.validators = validators
        self.load_raw = load_raw

    def feed(self) -> Iterator[Listing]:
        url = self.source.url or ""
        got = self._get(url, "feed", required=True)
        assert got is not None
        body, res = got
        try:
            feed = parse_feed(body, res.log.final_url or url, res.log.content_type)
        except SourceError as exc:
            self._record(res, exc.message)
            raise SourceError(self.source.id, f"feed {url}: {exc.message}", kind="parse") from None
        if feed.problem:
            log.warning(
                "source %s: feed %s is malformed (%s); kept %d entries",
                self.source.id,
                url,
                feed.problem,
                len(feed.entries),
            )
        self._record(res, f"malformed feed: {feed.problem}" if feed.problem else None)
        yield from feed.entries

    def sitemaps(self, interval: Interval) -> Iterator[Listing]:
        url = self.source.url or ""
        roots = [url]
        if urlsplit(url).path == "/robots.txt":
            robots = self.fetcher.robots(
                url, source_id=self.source.id, user_agent=self.source.user_agent
            )
            err = robots.error
            if err is not None:
                msg = f"{url}: {err.message}"
                raise SourceError(self.source.id, msg, kind=err.kind, transient=err.transient)
            roots = list(robots.parser.sitemaps) if robots.parser is not None else []
            if not roots:
                log.warning("source %s: %s lists no Sitemap", self.source.id, url)
        queue = deque((u, 0) for u in roots)
        visited: set[str] = set()
        while queue:
            loc, depth = queue.popleft()
            if loc in visited:
                continue
            if len(visited) >= self.source.max_sitemaps:
                log.warning(
                    "source %s: max_sitemaps %d reached; %d sitemaps not read",
                    self.source.id,
                    self.source.max_sitemaps,
                    len(queue) + 1,
                )
                break
            visited.add(loc)
            got = self._get(loc, "sitemap", required=depth == 0)
            if got is None:
                continue
            body, res = got
            problem = None
            try:
                base = res.log.final_url or loc
                for e in parse_sitemap(body, base, self.fetcher.policy.max_document_bytes * 4):
                    if not e.is_sitemap:
                        yield e
                    elif depth + 1 > MAX_SITEMAP_DEPTH:
                        log.warning("source %s: sitemap %s nested too deep", self.source.id, e.url)
                    elif e.date is None or e.date >= interval.start:
                        queue.append((e.url, depth + 1))
            except SourceError as exc:
                problem = exc.message
                log.warning("source %s: %s", self.source.id, problem)
            finally:
                self._record(res, problem)

    def url_list(self, opener: Opener) -> Iterator[Listing]:
        where = self.source.path or self.source.url or ""
        if where.startswith(("http://", "https://")):
            got = self._get(where, "urls", required=True)
            assert got is not None
            body, res = got
            self._record(res, None)
            yield from parse_url_list(body.decode("utf-8", "replace").splitlines())
            return
        try:
            with opener(where) as fh:
                text = io.TextIOWrapper(fh, encoding="utf-8", errors="replace")
                yield from parse_url_list(text)
        except read_errors() as exc:
            err = source_error(where, "read", exc)
            msg = f"cannot read URL list {where}: {err.message}"
            raise SourceError(self.source.id, msg, kind=err.kind, transient=err.transient) from None

    def _get(self, url: str, purpose: str, *, required: bool) -> tuple[bytes, FetchResult] | None:
        """Body and result of a listing document (the caller records the row after parsing)."""
        s, fetcher = self.source, self.fetcher
        old = (
            self.validators.get(url) if self.validators is not None and s.conditional_get else None
        )

        def fetch(v: Validators | None) -> FetchResult:
            return fetcher.fetch_document(
                url,
                source_id=s.id,
                purpose=purpose,
                validators=v,
                spacing=s.per_host_delay_s,
                user_agent=s.user_agent,
                record=False,
            )

        res = fetch(old)
        if res.error is None and res.log.status == 304:
            cached = self._cached(url, old)
            if cached is not None:
                return cached, res
            fetcher.record(res.log)
            res = fetch(None)
        if res.error is not None or res.page is None:
            fetcher.record(res.log)
            err = res.error
            msg = f"{purpose} {url}: " + (f"{err.kind}: {err.message}" if err else "no body")
            if required or (err is not None and err.transient):
                raise SourceError(
                    s.id,
                    msg,
                    kind=err.kind if err else "source",
                    transient=err.transient if err else False,
                )
            log.warning("source %s: skipping %s", s.id, msg)
            return None
        if self.validators is not None and res.validators is not None:
            self.validators[url] = res.validators
        return res.page.body, res

    def _cached(self, url: str, old: Validators | None) -> bytes | None:
        if old is None or old.raw_ref is None or self.load_raw is None:
            return None
        try:
            page = self.load_raw(old.raw_ref)
        except (EtlError, OSError) as exc:
            log.warning("source %s: cannot reload %s (%s); refetching", self.source.id, url, exc)
            return None
        if page is None or page.url != url or page.http_status != 200:
            return None
        return page.body

    def _record(self, res: FetchResult, problem: str | None) -> None:
        row = res.log if problem is None else replace(res.log, error_class="parse", error=problem)
        self.fetcher.record(row)
