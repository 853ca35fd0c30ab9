"""sources.yaml validation, listing parsers, and discovery against a local news site."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from etl.config import SourceConfig, SourcesFile, load_sources
from etl.discover.documents import discover
from etl.discover.listings import parse_feed, parse_sitemap, parse_url_list
from etl.errors import ConfigError, SourceError
from etl.fetch.archive import WarcArchive, raw_loader
from etl.fetch.fetcher import Fetcher
from etl.fetch.models import FetchPolicy, Validators
from etl.records import Candidate, Interval, parse_w3c_date
from etl.urls import article_id
from tests.support.fetch_helpers import policy
from tests.support.sites import Response, Site, SiteRequest, serve_directory

INTERVAL = Interval(datetime(2026, 1, 5, 10, tzinfo=UTC), datetime(2026, 1, 5, 11, tzinfo=UTC))
NOW = datetime(2026, 1, 5, 11, 5, tzinfo=UTC)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# -- sources.yaml ---------------------------------------------------------------------------------


def test_sources_file_errors_name_the_source_and_the_field(tmp_path: Path) -> None:
    f = tmp_path / "sources.yaml"
    f.write_text(
        "sources:\n"
        "  - {id: good, kind: rss, url: 'https://example.com/feed.xml'}\n"
        "  - {id: bad-regex, kind: rss, url: 'https://example.com/f', include: ['(open']}\n"
        "  - {id: no-contact, kind: rss, url: 'https://example.com/f', user_agent: 'bot/1'}\n"
        "  - {id: no-url, kind: sitemap}\n"
        "  - {id: slow, kind: urls, path: list.txt, per_host_delay_s: -1}\n"
        "  - {id: Bad_Id, kind: rss, url: 'https://example.com/f'}\n"
        "fetch: {max_concurrency: 0}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_sources(f)
    msg = str(err.value)
    assert str(f) in msg
    assert "source 'bad-regex' field include" in msg and "regular expression" in msg
    assert "source 'no-contact' field user_agent" in msg and "contact" in msg
    assert "source 'no-url'" in msg and "needs `url`" in msg
    assert "source 'slow' field per_host_delay_s" in msg
    assert "source 'Bad_Id' field id" in msg
    assert "fetch.max_concurrency" in msg


def test_sources_file_options_reach_the_fetch_policy(tmp_path: Path) -> None:
    f = tmp_path / "sources.yaml"
    f.write_text(
        "allow_private_addresses: true\n"
        "user_agent: 'newsetl-test/1 (+https://example.org/bot)'\n"
        "fetch: {max_concurrency: 7, per_host_concurrency: 1, max_bytes: 4096}\n"
        "sources:\n"
        "  - id: demo\n    kind: rss\n    url: http://127.0.0.1:8000/feed.xml\n"
        "    include: ['/news/']\n    domains: ['127.0.0.1']\n    language: en-GB\n"
        "    max_articles: 5\n    rules: demo-site\n    per_host_delay_s: 0.2\n"
    )
    sources = load_sources(f)
    p = FetchPolicy.from_config(sources)
    assert (p.max_concurrency, p.per_host_concurrency, p.max_bytes) == (7, 1, 4096)
    assert p.allow_private_addresses and p.user_agent.startswith("newsetl-test/1")
    src = sources.sources[0]
    assert (src.include, src.domains, src.language, src.max_articles) == (
        ("/news/",),
        ("127.0.0.1",),
        "en-GB",
        5,
    )
    assert not FetchPolicy.from_config(SourcesFile(sources=())).allow_private_addresses


# -- parsers --------------------------------------------------------------------------------------

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="fr"><title>A</title>
<entry><title>Un</title><link rel="alternate" href="/a/1"/><id>urn:1</id>
<updated>2026-01-05T10:20:00+01:00</updated><author><name>Zoe</name></author>
<author><name>Yan</name></author></entry>
<entry><title>Deux</title><link href="https://example.com/a/2"/><id>urn:2</id>
<published>2026-01-05T10:30:00Z</published><updated>2026-01-06T00:00:00Z</updated></entry>
</feed>"""

RSS1 = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://example.com/"><title>R</title><link>https://example.com/</link></channel>
<item rdf:about="https://example.com/r/1"><title>One</title><link>https://example.com/r/1</link>
<dc:date>2026-01-05T10:05:00Z</dc:date><dc:creator>Ann</dc:creator></item>
</rdf:RDF>"""

RSS091 = b"""<?xml version="1.0"?><rss version="0.91"><channel><title>Old</title>
<language>de</language><item><title>Alt</title><link>https://example.com/o/1</link></item>
</channel></rss>"""


def test_feeds_of_every_flavour_give_links_dates_and_authors() -> None:
    atom = parse_feed(ATOM, "https://example.com/feed.atom")
    assert [(e.url, e.date, e.date_kind, e.authors) for e in atom.entries] == [
        ("https://example.com/a/1", utc(2026, 1, 5, 9, 20), "feed-updated", ("Zoe", "Yan")),
        ("https://example.com/a/2", utc(2026, 1, 5, 10, 30), "feed-published", ()),
    ]
    assert atom.problem is None
    rss1 = parse_feed(RSS1, "https://example.com/index.rdf")
    assert [(e.url, e.date, e.authors) for e in rss1.entries] == [
        ("https://example.com/r/1", utc(2026, 1, 5, 10, 5), ("Ann",))
    ]
    old = parse_feed(RSS091, "https://example.com/rss")
    assert [(e.url, e.date, e.language) for e in old.entries] == [
        ("https://example.com/o/1", None, "de")
    ]


def test_garbage_is_not_a_feed() -> None:
    with pytest.raises(SourceError) as err:
        parse_feed(b"\x00\x01 definitely not xml", "https://example.com/feed")
    assert err.value.kind == "parse"


SITEMAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
 <url><loc>https://example.com/n/1</loc><lastmod>2026-01-05T12:00:00+00:00</lastmod>
  <news:news><news:publication><news:name>Ex</news:name><news:language>en</news:language>
  </news:publication><news:publication_date>2026-01-05T10:10:00Z</news:publication_date>
  <news:title>Headline one</news:title></news:news></url>
 <url><loc>https://example.com/n/2</loc><lastmod>2026-01-04</lastmod></url>
 <url><loc>https://example.com/n/3</loc></url>
</urlset>"""

INDEX = b"""<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>/s/a.xml.gz</loc><lastmod>2026-01-05</lastmod></sitemap>
<sitemap><loc>https://example.com/s/b.xml</loc></sitemap></sitemapindex>"""


def test_sitemaps_news_sitemaps_indexes_and_gzip() -> None:
    entries = list(parse_sitemap(gzip.compress(SITEMAP), "https://example.com/sitemap.xml"))
    assert [(e.url, e.date, e.date_kind, e.title, e.language) for e in entries] == [
        (
            "https://example.com/n/1",
            utc(2026, 1, 5, 10, 10),
            "news-publication-date",
            "Headline one",
            "en",
        ),
        ("https://example.com/n/2", utc(2026, 1, 4), "lastmod", None, None),
        ("https://example.com/n/3", None, None, None, None),
    ]
    children = list(parse_sitemap(INDEX, "https://example.com/sitemap_index.xml"))
    assert [(c.url, c.is_sitemap, c.date) for c in children] == [
        ("https://example.com/s/a.xml.gz", True, utc(2026, 1, 5)),
        ("https://example.com/s/b.xml", True, None),
    ]


def test_malformed_sitemap_yields_entries_before_the_break_then_raises() -> None:
    broken = SITEMAP.replace(b"<url><loc>https://example.com/n/3</loc></url>", b"<url><loc>x</url>")
    got = []
    with pytest.raises(SourceError) as err:
        for e in parse_sitemap(broken, "https://example.com/sitemap.xml"):
            got.append(e.url)
    assert err.value.kind == "parse"
    assert got == ["https://example.com/n/1", "https://example.com/n/2"]


def test_url_lists_and_w3c_dates() -> None:
    lines = ["# comment", "", "https://example.com/a 2026-01-05T10:30:00+02:00", "/b", "  "]
    entries = list(parse_url_list(lines))
    assert [(e.url, e.date) for e in entries] == [
        ("https://example.com/a", utc(2026, 1, 5, 8, 30)),
        ("/b", None),  # as written: discovery drops what is not an absolute URL
    ]
    assert parse_w3c_date("2026-01") == utc(2026, 1, 1)
    assert parse_w3c_date("2026-01-05T10:00:00.123Z") == utc(2026, 1, 5, 10, 0, 0, 123000)
    assert parse_w3c_date("yesterday") is None


# -- discovery against a local site ---------------------------------------------------------------


def rss(base: str) -> bytes:
    def item(title: str, link: str, date: str | None, extra: str = "") -> str:
        when = f"<pubDate>{date}</pubDate>" if date else ""
        return f"<item><title>{title}</title><link>{link}</link>{when}{extra}</item>"

    items = [
        item(
            "One",
            f"{base}/news/one.html?utm_source=rss&amp;utm_medium=feed",
            "Mon, 05 Jan 2026 10:15:00 GMT",
            "<dc:creator>Ann Author</dc:creator>",
        ),
        item("One again", f"{base}/news/one.html#comments", "Mon, 05 Jan 2026 10:15:00 GMT"),
        item("One, AMP", f"{base}/news/one.html/amp", "Mon, 05 Jan 2026 10:15:00 GMT"),
        item("Old", f"{base}/news/old.html", "Sun, 04 Jan 2026 09:00:00 GMT"),
        item("At the end", f"{base}/news/later.html", "Mon, 05 Jan 2026 11:00:00 GMT"),
        item("Undated", "/news/undated.html", None),
        item("Seen", f"{base}/news/seen.html", "Mon, 05 Jan 2026 10:30:00 +0000"),
        item("Live", f"{base}/live/blog.html", "Mon, 05 Jan 2026 10:40:00 GMT"),
    ]
    return (
        '<?xml version="1.0"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        "<channel><title>Test news</title><language>en-gb</language>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with httpx.Client(trust_env=False) as client:
        yield Fetcher(client, policy())


def source(site: Site, **kw: object) -> SourceConfig:
    base = {
        "id": "demo",
        "kind": "rss",
        "url": site.url("/feed.xml"),
        "per_host_delay_s": 0.0,
        "exclude": [r"/live/"],
    }
    return SourceConfig.model_validate({**base, **kw})


def test_rss_discovery_keeps_the_interval_and_folds_url_variants(
    site: Site, fetcher: Fetcher
) -> None:
    site.routes["/feed.xml"] = Response(200, rss(site.base), content_type="application/rss+xml")
    seen = frozenset({article_id(site.url("/news/seen.html"))})
    got = list(discover(source(site, rules="demo"), INTERVAL, fetcher=fetcher, seen=seen, now=NOW))
    first = site.url("/news/one.html?utm_source=rss&utm_medium=feed")
    assert [c.url for c in got] == [first, site.url("/news/undated.html")]
    one = got[0]
    assert one == Candidate(
        url=one.url,
        canonical_url=site.url("/news/one.html"),
        article_id=article_id(site.url("/news/one.html")),
        source_id="demo",
        listed_at=utc(2026, 1, 5, 10, 15),
        date_kind="feed-published",
        title_hint="One",
        authors_hint=("Ann Author",),
        language_hint="en-gb",
        rules="demo",
        per_host_delay_s=0.0,
    )
    assert got[1].listed_at is None
    feed_rows = [row for row in fetcher.log if row.purpose == "feed"]
    assert len(feed_rows) == 1 and feed_rows[0].status == 200 and feed_rows[0].error_class is None


def test_undated_items_are_left_to_recent_runs_and_max_articles_caps(
    site: Site, fetcher: Fetcher
) -> None:
    site.routes["/feed.xml"] = Response(200, rss(site.base), content_type="application/rss+xml")
    much_later = datetime(2026, 3, 1, tzinfo=UTC)
    backfill = list(
        discover(source(site), INTERVAL, fetcher=fetcher, seen=frozenset(), now=much_later)
    )
    assert [c.url.rsplit("/", 1)[1] for c in backfill] == [
        "one.html?utm_source=rss&utm_medium=feed",
        "seen.html",
    ]
    capped = list(
        discover(source(site, max_articles=1), INTERVAL, fetcher=fetcher, seen=frozenset(), now=NOW)
    )
    assert len(capped) == 1
    lang = list(
        discover(source(site, language="fr"), INTERVAL, fetcher=fetcher, seen=frozenset(), now=NOW)
    )
    assert {c.language_hint for c in lang} == {"fr"}


def test_malformed_feed_keeps_what_parses_and_logs_the_problem(
    site: Site, fetcher: Fetcher
) -> None:
    body = (
        f"<rss version='2.0'><channel><item><link>{site.base}/news/ok.html</link>"
        "<pubDate>Mon, 05 Jan 2026 10:20:00 GMT</pubDate></item><item><title>broken & "
        "</channel>"
    ).encode()
    site.routes["/feed.xml"] = Response(200, body, content_type="application/rss+xml")
    got = list(discover(source(site), INTERVAL, fetcher=fetcher, seen=frozenset(), now=NOW))
    assert [c.url for c in got] == [site.url("/news/ok.html")]
    (row,) = [row for row in fetcher.log if row.purpose == "feed"]
    assert row.error_class == "parse" and row.status == 200


def test_missing_feed_raises_a_source_error_naming_the_source(site: Site, fetcher: Fetcher) -> None:
    with pytest.raises(SourceError) as err:
        list(discover(source(site), INTERVAL, fetcher=fetcher, seen=frozenset(), now=NOW))
    assert err.value.subject == "demo" and err.value.kind == "http-4xx"
    assert not err.value.transient
    assert [row.status for row in fetcher.log if row.purpose == "feed"] == [404]


def sitemap_site(site: Site) -> None:
    b = site.base
    site.routes["/robots.txt"] = Response(
        200,
        f"User-agent: *\nAllow: /\nSitemap: {b}/sitemap_index.xml\n".encode(),
        content_type="text/plain",
    )
    site.routes["/sitemap_index.xml"] = Response(
        200,
        f"""<sitemapindex
        xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
        <sitemap><loc>{b}/sitemap-news.xml</loc><lastmod>2026-01-05T10:50:00Z</lastmod></sitemap>
        <sitemap><loc>{b}/sitemap-2026-01.xml.gz</loc></sitemap>
        <sitemap><loc>{b}/sitemap-2025.xml</loc><lastmod>2025-12-31</lastmod></sitemap>
        <sitemap><loc>{b}/sitemap-broken.xml</loc></sitemap>
        </sitemapindex>""".encode(),
        content_type="application/xml",
    )
    site.routes["/sitemap-news.xml"] = Response(
        200,
        f"""<urlset
        xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
        <url><loc>{b}/news/n1.html</loc><news:news><news:publication><news:name>T</news:name>
        <news:language>en</news:language></news:publication>
        <news:publication_date>2026-01-05T10:45:00Z</news:publication_date>
        <news:title>News one</news:title></news:news></url>
        <url><loc>{b}/news/n0.html</loc><news:news>
        <news:publication_date>2026-01-05T09:45:00Z</news:publication_date></news:news></url>
        </urlset>""".encode(),
        content_type="application/xml",
    )
    monthly = f"""<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
        <url><loc>{b}/2026/01/m1.html</loc><lastmod>2026-01-05T10:01:00+00:00</lastmod></url>
        <url><loc>{b}/2026/01/m2.html</loc><lastmod>2026-01-02</lastmod></url>
        </urlset>""".encode()
    site.routes["/sitemap-2026-01.xml.gz"] = Response(
        200, gzip.compress(monthly), content_type="application/gzip"
    )
    site.routes["/sitemap-2025.xml"] = Response(500, b"must not be asked")
    site.routes["/sitemap-broken.xml"] = Response(
        200,
        f"""<urlset
        xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
        <url><loc>{b}/news/b1.html</loc><lastmod>2026-01-05T10:30:00Z</lastmod></url>
        <url><loc>{b}/news/b2.html</loc><lastmod>2026-01-05T10:31:00Z</url>
        </urlset>""".encode(),
        content_type="application/xml",
    )


def test_sitemap_discovery_from_robots_through_index_news_and_gzip(
    site: Site, fetcher: Fetcher
) -> None:
    sitemap_site(site)
    src = source(site, kind="sitemap", url=site.url("/robots.txt"))
    got = list(discover(src, INTERVAL, fetcher=fetcher, seen=frozenset(), now=NOW))
    assert [(c.url.removeprefix(site.base), c.date_kind) for c in got] == [
        ("/news/n1.html", "news-publication-date"),
        ("/2026/01/m1.html", "lastmod"),
        ("/news/b1.html", "lastmod"),  # before the malformed part of the broken sitemap
    ]
    assert got[0].title_hint == "News one" and got[0].language_hint == "en"
    assert site.requests("/sitemap-2025.xml") == []  # last modified before the interval
    rows = {row.url.removeprefix(site.base): row for row in fetcher.log}
    assert rows["/sitemap-broken.xml"].error_class == "parse"
    assert rows["/sitemap-news.xml"].error_class is None
    assert rows["/robots.txt"].purpose == "robots"


def test_conditional_get_reuses_the_archived_body_on_304(site: Site, tmp_path: Path) -> None:
    body = rss(site.base)

    def feed(req: SiteRequest) -> Response:
        if req.header("if-none-match") == '"v1"':
            return Response(304, b"", {"ETag": '"v1"'}, content_type=None)
        return Response(200, body, {"ETag": '"v1"'}, content_type="application/rss+xml")

    site.routes["/feed.xml"] = feed
    validators: dict[str, Validators] = {}
    load = raw_loader(lambda key: (tmp_path / key).open("rb"))
    with httpx.Client(trust_env=False) as client, WarcArchive(INTERVAL, tmp_path) as archive:
        fetcher = Fetcher(client, policy(), archive=archive)

        def run(**kw: Any) -> list[str]:
            return [
                c.url
                for c in discover(
                    source(site),
                    INTERVAL,
                    fetcher=fetcher,
                    seen=frozenset(),
                    now=NOW,
                    validators=validators,
                    **kw,
                )
            ]

        first = run()
        assert validators[site.url("/feed.xml")].etag == '"v1"'
        assert validators[site.url("/feed.xml")].raw_ref is not None
        assert not any(row.error_class for row in fetcher.log)
        archive.files()  # flush, so the loader can read the record back
        second = run(load_raw=load)
        third = run()  # no loader: the 304 is followed by an unconditional GET
        assert not any(row.error_class for row in fetcher.log)  # the reloaded feed parsed fine
    assert first == second == third and len(first) == 3
    sent = [(r.header("if-none-match"), r.status) for r in site.requests("/feed.xml")]
    assert sent == [(None, 200), ('"v1"', 304), ('"v1"', 304), (None, 200)]


def test_url_lists_local_and_over_http(site: Site, fetcher: Fetcher, tmp_path: Path) -> None:
    listing = (
        f"# picked by hand\n{site.base}/news/x.html 2026-01-05T10:59:00Z\n"
        f"{site.base}/news/y.html 2026-01-05T09:00:00Z\nnot a url\n"
        f"{site.base}/news/z.html\n"
    )
    path = tmp_path / "list.txt"
    path.write_text(listing)
    local = source(site, kind="urls", url=None, path=str(path))
    got = [c.url for c in discover(local, INTERVAL, fetcher=fetcher, seen=frozenset(), now=NOW)]
    assert got == [site.url("/news/x.html"), site.url("/news/z.html")]
    site.routes["/list.txt"] = Response(200, listing.encode(), content_type="text/plain")
    remote = source(site, kind="urls", url=site.url("/list.txt"))
    assert [
        c.url for c in discover(remote, INTERVAL, fetcher=fetcher, seen=frozenset(), now=NOW)
    ] == got
    assert [row.purpose for row in fetcher.log if row.url.endswith("/list.txt")] == ["urls"]


def test_url_list_on_s3_is_read_with_the_lakes_settings(
    site: Site, fetcher: Fetcher, s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``urls`` source in a bucket: read through the lake's S3 settings (no AWS_* variables
    at all); a missing key is a SourceError naming the source and the s3:// URI."""
    from etl.discover.files import SourceFiles
    from etl.lake.settings import LakeSettings
    from tests.support.s3_server import CREDENTIALS, REGION

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    bucket = s3_server.new_bucket("lists")
    listing = f"{site.base}/news/x.html 2026-01-05T10:59:00Z\n{site.base}/news/z.html\n"
    s3_server.client().put_object(Bucket=bucket, Key="lists/today.txt", Body=listing.encode())
    files = SourceFiles(
        LakeSettings(
            uri=f"s3://{bucket}/lake",
            endpoint_url=s3_server.endpoint,
            region=REGION,
            path_style=True,
            access_key_id=CREDENTIALS["aws_access_key_id"],
            secret_access_key=CREDENTIALS["aws_secret_access_key"],
        )
    )
    src = source(site, kind="urls", url=None, path=f"s3://{bucket}/lists/today.txt")
    got = discover(src, INTERVAL, fetcher=fetcher, seen=frozenset(), now=NOW, opener=files)
    assert [c.url for c in got] == [site.url("/news/x.html"), site.url("/news/z.html")]
    missing = source(site, kind="urls", url=None, path=f"s3://{bucket}/lists/gone.txt")
    with pytest.raises(SourceError) as err:
        list(discover(missing, INTERVAL, fetcher=fetcher, seen=frozenset(), now=NOW, opener=files))
    assert f"s3://{bucket}/lists/gone.txt" in str(err.value) and err.value.kind == "not-found"


def test_warc_sources_are_read_not_discovered(site: Site, fetcher: Fetcher) -> None:
    src = SourceConfig(id="cc", kind="warc", path="/data/cc-news/*.warc.gz")
    with pytest.raises(SourceError) as err:
        list(discover(src, INTERVAL, fetcher=fetcher, seen=frozenset()))
    assert "read_warc" in str(err.value)


# -- a static site served from a folder ({{BASE}} substituted), discovered and fetched end to end --


def test_directory_site_feed_and_sitemap_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "site"
    (root / "news" / "a").mkdir(parents=True)
    (root / "news" / "a" / "index.html").write_text(
        '<html><head><link rel="canonical" href="{{BASE}}/news/a/"></head><body>A</body></html>'
    )
    (root / "doc.pdf").write_bytes(b"%PDF-1.4 {{BASE}}")
    (root / "robots.txt").write_text(
        "User-agent: *\nDisallow: /private/\nSitemap: {{BASE}}/sm.xml\n"
    )
    (root / "feed.xml").write_text(
        '<rss version="2.0"><channel><item><link>{{BASE}}/news/a/?utm_source=rss</link>'
        "<pubDate>Mon, 05 Jan 2026 10:10:00 GMT</pubDate></item>"
        "<item><link>{{BASE}}/private/b/</link><pubDate>Mon, 05 Jan 2026 10:11:00 GMT</pubDate>"
        "</item></channel></rss>"
    )
    (root / "sm.xml").write_text(
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>{{BASE}}/news/a/'
        "</loc><lastmod>2026-01-05T10:10:00Z</lastmod></url></urlset>"
    )
    site = serve_directory(root)
    try:
        with httpx.Client(trust_env=False) as client:
            assert client.get(site.url("/doc.pdf")).content == b"%PDF-1.4 {{BASE}}"  # binary
            assert client.get(site.url("/../../etc/passwd")).status_code == 404
            fetcher = Fetcher(client, policy())
            feed = SourceConfig(
                id="feed", kind="rss", url=site.url("/feed.xml"), per_host_delay_s=0.0
            )
            maps = SourceConfig(
                id="maps", kind="sitemap", url=site.url("/robots.txt"), per_host_delay_s=0.0
            )
            cands = [
                c
                for s in (feed, maps)
                for c in discover(s, INTERVAL, fetcher=fetcher, seen=frozenset(), now=NOW)
            ]
            results = list(fetcher.fetch_all(cands))
    finally:
        site.close()
    assert [c.canonical_url for c in cands] == [
        site.url("/news/a"),
        site.url("/private/b"),
        site.url("/news/a"),
    ]
    pages = [r.page for r in results if r.page is not None]
    assert len(pages) == 2 and {p.source_id for p in pages} == {"feed", "maps"}
    assert b'href="http://127.0.0.1' in pages[0].body  # {{BASE}} was substituted
    assert [r.log.error_class for r in results if r.page is None] == ["robots"]
    assert {row.purpose for row in fetcher.log} == {"robots", "feed", "sitemap", "article"}
