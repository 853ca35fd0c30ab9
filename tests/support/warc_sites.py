"""WARC files and sites of generated stories, shared by the runner, chunk and Airflow tests."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from etl.lake import LakeSettings
from tests.support.runner_helpers import article_html, html, paragraphs, rss, utc
from tests.support.sites import Response, Site, SiteRequest


def write_warc(path: Path, records: list[tuple[str, datetime, str, bytes]]) -> None:
    """A gzipped WARC of request + response records ``(url, date, content type, body)``."""
    with path.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for url, when, ctype, body in records:
            date = when.strftime("%Y-%m-%dT%H:%M:%SZ")
            target = "/" + url.split("/", 3)[3]
            req = writer.create_warc_record(
                url,
                "request",
                payload=io.BytesIO(b""),
                length=0,
                http_headers=StatusAndHeaders(
                    f"GET {target} HTTP/1.1", [("Host", "x")], is_http_request=True
                ),
                warc_headers_dict={"WARC-Date": date},
            )
            writer.write_record(req)
            headers = [("Content-Type", ctype), ("Content-Length", str(len(body)))]
            resp = writer.create_warc_record(
                url,
                "response",
                payload=io.BytesIO(body),
                length=len(body),
                http_headers=StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1"),
                warc_headers_dict={"WARC-Date": date},
            )
            writer.write_record(resp)


WORDS = [
    "harbour", "council", "ferry", "library", "storm", "bridge", "market", "school", "river",
    "budget", "tram", "park", "station", "clinic", "festival", "court", "mayor", "bakery",
    "theatre", "stadium", "canal",
]  # fmt: skip


def story(n: int) -> bytes:
    """A distinct article page (its text differs from every other ``n``)."""
    words = [WORDS[(n * 7 + i * 3) % len(WORDS)] for i in range(60)]
    text = " ".join(words)
    return article_html(
        f"Story {n} about the {WORDS[n % len(WORDS)]}",
        paragraphs(
            f"Reporters followed story number {n} through the week as {text}.",
            f"Officials said case {n} would be reviewed again, and residents asked about {text}.",
        ),
    )


NINE_O_ONE = utc(2022, 5, 14, 9, 1)


def warc_file(path: Path, n: int, start: datetime = NINE_O_ONE) -> list[str]:
    """A gzipped WARC of ``n`` request + response records (distinct articles); their URLs."""
    hosts = ["https://gazette.example", "https://herald.example", "https://courier.example"]
    records = []
    for i in range(n):
        url = f"{hosts[i % 3]}/news/story-{i}"
        records.append((url, start + timedelta(seconds=20 * i), "text/html", story(1000 + i)))
    write_warc(path, records)
    return [r[0] for r in records]


WHEN = "Sat, 14 May 2022 09:30:00 +0000"
DELAY = 0.3


def two_sites(n: int, flaky: dict[str, int] | None = None) -> tuple[Site, Site]:
    """Host A (127.0.0.1) serving a feed of ``n`` articles on A and ``n`` on host B
    (127.0.0.2); ``flaky`` maps a path of B to how many times it answers 503 first."""
    a, b = Site(host="127.0.0.1").start(), Site(host="127.0.0.2").start()
    robots = Response(200, b"User-agent: *\n", content_type="text/plain")
    busy = dict(flaky or {})

    def route(body: bytes, path: str) -> Any:
        def serve(_req: SiteRequest) -> Response:
            if busy.get(path, 0) > 0:
                busy[path] -= 1
                return Response(503, b"busy")
            return html(body)

        return serve

    items = []
    for i in range(n):
        a.routes[f"/a/{i}/"] = route(story(i), f"/a/{i}/")
        b.routes[f"/b/{i}/"] = route(story(100 + i), f"/b/{i}/")
        items += [(f"/a/{i}/", WHEN), (f"/b/{i}/", WHEN)]
    body = rss(a.base, items).body
    assert isinstance(body, bytes)
    feed = body.decode()
    for i in range(n):  # the feed's /b/ links point at host B
        feed = feed.replace(f"{a.base}/b/{i}/", f"{b.base}/b/{i}/")
    a.routes["/feed.xml"] = Response(200, feed.encode(), content_type="application/rss+xml")
    a.routes["/robots.txt"] = b.routes["/robots.txt"] = robots
    return a, b


def s3_lake_settings(s3_server: Any, bucket: str) -> LakeSettings:
    from tests.support.s3_server import lake_settings

    return lake_settings(s3_server.endpoint, bucket, prefix="lake", path_style=True)
