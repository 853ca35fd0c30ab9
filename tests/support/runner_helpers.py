"""Helpers of the runner tests: article pages, feeds, sources files, runs, lake reading."""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from warcio.archiveiterator import ArchiveIterator

from etl.config import Settings
from etl.fetch.archive import read_record
from etl.lake.manifest import read_manifest
from etl.records import Interval
from etl.runner.run import Run
from tests.support.sites import Response

UA = "newsetl-test/0.1 (+https://example.org/newsetl-tests)"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


HOUR9 = Interval(utc(2022, 5, 14, 9), utc(2022, 5, 14, 10))  # the Kharkiv article: 09:30Z


HOUR10 = Interval(utc(2022, 5, 14, 10), utc(2022, 5, 14, 11))


def paragraphs(*texts: str) -> str:
    return "".join(f"<p>{t}</p>" for t in texts)


def article_html(title: str, body: str, *, author: str = "Morgan Ellis") -> bytes:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title} | Harbour Gazette</title></head><body>"
        "<header><nav><a href='/'>Home</a> <a href='/local/'>Local</a></nav></header>"
        f"<main><article><h1>{title}</h1><p class='byline'>By {author}</p>{body}</article></main>"
        "<footer><p>© Harbour Gazette</p></footer></body></html>"
    ).encode()


FERRY = article_html(
    "Harbour ferry returns after winter refit",
    paragraphs(
        "The harbour ferry returned to service on Monday after a three-month refit that "
        "replaced both engines and rebuilt the passenger lounge, the port authority said.",
        "Commuters lined up at the north terminal before dawn for the first crossing, which left "
        "on schedule at a quarter past six and reached the island twenty minutes later.",
        "The authority said the new engines burn about a third less fuel than the old pair, and "
        "that the vessel should now run for another fifteen years before it needs replacing.",
        "Fares will stay at their current level until the end of the year, but a review of the "
        "fee schedule is planned for next spring, according to the authority's chair.",
    ),
)


LIBRARY = article_html(
    "Library extends weekend opening hours in three branches",
    paragraphs(
        "The city library will open its three largest branches on Sunday afternoons from next "
        "month, after a pilot last autumn drew more visitors than its organisers expected.",
        "Librarians counted nearly two thousand people over eight Sundays, many of them families "
        "using the children's rooms and students looking for a quiet place to revise.",
        "The board approved the extra hours on Tuesday evening and said the cost would be covered "
        "by savings from a new heating contract signed earlier in the year.",
    ),
    author="Priya Raman",
)


STORM = article_html(
    "Overnight storm topples trees across the east end",
    paragraphs(
        "Crews spent Wednesday clearing fallen trees and branches after gusts of more than ninety "
        "kilometres an hour swept through the east end overnight, cutting power to many homes.",
        "The utility said most customers had their electricity back by noon, although a handful "
        "of streets near the river were expected to stay dark until late in the evening.",
        "No injuries were reported. The city asked residents to stay away from downed lines and "
        "to report blocked storm drains before more rain arrives at the weekend.",
        "Forecasters said the system was unusually strong for the season and that a second, "
        "weaker front could bring showers and cooler temperatures on Friday afternoon.",
        "Parks staff closed two trails in the ravine while arborists check the remaining trees, "
        "and the annual spring cleanup planned for Saturday has been postponed by a week.",
    ),
    author="Jonah Whitford",
)


NO_TEXT = (
    b"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Harbour Gazette</title>"
    b"</head><body><header><nav><a href='/'>Home</a> <a href='/local/'>Local</a></nav></header>"
    b"<main><div class='spinner'></div></main><footer></footer></body></html>"
)


PDF = b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n" + b"\x00" * 256


def rss(base: str, items: Iterable[tuple[str, str]]) -> Response:
    """An RSS feed of ``(path, RFC-822 date)`` items."""
    entries = "".join(
        f"<item><title>{path}</title><link>{base}{path}</link><guid>{base}{path}</guid>"
        f"<pubDate>{date}</pubDate></item>"
        for path, date in items
    )
    body = (
        "<?xml version='1.0' encoding='UTF-8'?><rss version='2.0'><channel>"
        f"<title>Harbour Gazette</title><link>{base}/</link><description>news</description>"
        f"{entries}</channel></rss>"
    )
    return Response(200, body.encode(), content_type="application/rss+xml")


def html(body: bytes) -> Response:
    return Response(200, body, content_type="text/html; charset=utf-8")


def sources_file(tmp_path: Path, *entries: dict[str, Any], **fetch: Any) -> Path:
    """A sources.yaml for loopback sites: private addresses allowed, no delays, fast retries."""
    data = {
        "allow_private_addresses": True,
        "user_agent": UA,
        "fetch": {
            "backoff_base_s": 0.01,
            "backoff_max_s": 0.05,
            "connect_timeout_s": 2.0,
            "read_timeout_s": 2.0,
            "total_timeout_s": 5.0,
            **fetch,
        },
        "sources": [{"per_host_delay_s": 0.0, **e} for e in entries],
    }
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def open_run(
    tmp_path: Path,
    sources: Path,
    interval: Interval = HOUR9,
    *,
    refetch: bool = False,
    attempt: str | None = None,
    **kw: Any,
) -> Run:
    settings = Settings(lake=str(tmp_path / "lake"), sources=sources, **kw)
    return Run.open(settings, interval, refetch=refetch, attempt=attempt)


def table(run: Run, key: str) -> pa.Table:
    return pq.read_table(io.BytesIO(run.lake.get_bytes(key)))


def articles(run: Run, interval: Interval | None = None) -> list[dict[str, Any]]:
    """The published rows of ``interval`` (default: the run's), as listed by its manifest."""
    iv = interval or run.interval
    manifest = read_manifest(run.lake, iv)
    assert manifest is not None, f"{iv.id} not published"
    return [r for s in manifest["shards"] for r in table(run, s["key"]).to_pylist()]


def fetch_log(run: Run, interval: Interval | None = None) -> list[dict[str, Any]]:
    iv = interval or run.interval
    return table(run, f"fetch_log/dt={iv.dt}/{iv.id}.parquet").to_pylist()


def log_key(row: dict[str, Any]) -> tuple[str, str, str]:
    return (row["purpose"], row["url"], row["source_id"] or "")


def warc_records(data: bytes) -> list[tuple[str, str, str | None]]:
    """``(WARC-Type, target URI, HTTP status)`` of every record of a WARC file."""
    out = []
    for rec in ArchiveIterator(io.BytesIO(data)):
        status = rec.http_headers.get_statuscode() if rec.rec_type == "response" else None
        out.append((rec.rec_type, rec.rec_headers.get_header("WARC-Target-URI") or "", status))
    return out


def record_at(run: Run, raw_ref: str) -> Any:
    """The Page a ``raw_ref`` (``<lake key>#<offset>``) points to, read back from the lake."""
    key, _, offset = raw_ref.rpartition("#")
    return read_record(io.BytesIO(run.lake.get_bytes(key)), int(offset), ref=raw_ref)
