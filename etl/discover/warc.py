"""WARC files as a source (the raw archive the fetcher writes is :mod:`etl.fetch.archive`).

:func:`read_warc` streams the WARC files of a ``warc`` source (local paths, folders,
globs or ``s3://`` objects, reached with the lake's S3 settings through
:class:`~etl.discover.files.SourceFiles`; Common Crawl's CC-NEWS files are the model) and yields a
:class:`~etl.records.Page` per HTML response whose ``WARC-Date`` falls in the interval and whose
URL passes the source's patterns and is not in the seen index. Memory stays flat: one record at
a time, each capped at ``max_bytes``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from warcio.archiveiterator import ArchiveIterator

from etl.config import SourceConfig
from etl.discover.files import SourceFiles, read_errors, source_error
from etl.fetch import Opener, record_page
from etl.records import Interval, Page, parse_w3c_date
from etl.urls import article_id, url_filter

__all__ = ["read_warc"]

log = logging.getLogger("etl.discover.warc")


def read_warc(
    source: SourceConfig,
    interval: Interval,
    *,
    seen: frozenset[str],
    files: SourceFiles | None = None,
    opener: Opener | None = None,
    max_bytes: int = 20 * 1024 * 1024,
) -> Iterator[Page]:
    """Pages of a ``warc`` source for ``interval``, streamed record by record.

    ``files`` expands the source's location and opens its files: pass
    ``SourceFiles(lake_settings)`` so that ``s3://`` input is read with the lake's S3 settings
    (the default reads local files only). ``opener`` replaces how one file is opened. A file
    that cannot be opened or read raises :class:`SourceError` naming it (transient for S3
    throttling, 5xx and dropped connections).
    """
    files = files or SourceFiles()
    open_file = opener or files.open
    location = source.path or source.url or ""
    allowed = url_filter(source.include, source.exclude, source.domains)
    kept: set[str] = set()
    counts = dict.fromkeys(("records", "kept", "date", "filtered", "seen", "other"), 0)
    paths = files.expand(location)
    if not paths:
        log.warning("warc source %s: %s matches no WARC file; nothing read", source.id, location)
    for path in paths:
        try:
            stream = open_file(path)
        except read_errors() as exc:
            raise source_error(path, "open", exc) from exc
        with stream:
            it = ArchiveIterator(stream)
            try:
                for record in it:
                    if record.rec_type != "response":
                        continue
                    counts["records"] += 1
                    url = record.rec_headers.get_header("WARC-Target-URI") or ""
                    date = parse_w3c_date(record.rec_headers.get_header("WARC-Date"))
                    if date is None or date not in interval:
                        counts["date"] += 1
                        continue
                    try:
                        aid = article_id(url)
                    except ValueError:
                        counts["filtered"] += 1
                        continue
                    if not allowed(url):
                        counts["filtered"] += 1
                        continue
                    if aid in seen or aid in kept:
                        counts["seen"] += 1
                        continue
                    ref = f"{path}#{it.offset}"  # start of this record (before reading it)
                    page = record_page(record, ref=ref, max_bytes=max_bytes, source=source)
                    if page is None:
                        counts["other"] += 1
                        continue
                    kept.add(aid)
                    counts["kept"] += 1
                    yield page
                    if source.max_articles is not None and len(kept) >= source.max_articles:
                        break
            except read_errors() as exc:
                raise source_error(path, "read", exc) from exc
        if source.max_articles is not None and len(kept) >= source.max_articles:
            break
    log.info("warc source %s %s: %s", source.id, interval.id, counts)
