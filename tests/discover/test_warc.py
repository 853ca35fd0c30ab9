"""etl.discover.warc: the raw archive written by the fetcher, and WARC files as a source."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

import pytest

from etl.config import SourceConfig
from etl.discover.files import SourceFiles
from etl.discover.warc import read_warc
from etl.errors import ConfigError, SourceError
from etl.fetch.archive import Exchange, WarcArchive, raw_loader, read_record
from etl.lake.layout import raw_key
from etl.lake.settings import LakeSettings
from etl.records import Interval
from etl.urls import article_id
from tests.support.fetch_helpers import warc_records
from tests.support.sites import Response, Site
from tests.support.warc_sites import s3_lake_settings

INTERVAL = Interval(datetime(2026, 1, 5, 10, tzinfo=UTC), datetime(2026, 1, 5, 11, tzinfo=UTC))
IN = datetime(2026, 1, 5, 10, 30, tzinfo=UTC)


def html(n: int) -> bytes:
    return f"<html><body><p>Story {n}</p></body></html>".encode()


def exchange(
    url: str,
    body: bytes,
    *,
    at: datetime = IN,
    status: int = 200,
    ctype: str = "text/html; charset=utf-8",
    extra: tuple[tuple[str, str], ...] = (),
    truncated: str | None = None,
) -> Exchange:
    return Exchange(
        url,
        [("Host", url.split("/")[2]), ("User-Agent", "t (+https://x.test)")],
        status,
        "OK" if status == 200 else "Err",
        [("Content-Type", ctype), *extra],
        body,
        at,
        truncated,
    )


def cc_news(tmp_path: Path) -> Path:
    """A CC-NEWS-like WARC (written with our own writer), in a folder of its own."""
    with WarcArchive(INTERVAL, tmp_path / "work") as archive:
        for ex in [
            exchange("https://a.example.com/news/1", html(1)),
            exchange("https://b.example.org/news/2", html(2)),  # other domain
            exchange("https://a.example.com/news/3", html(3), at=IN - timedelta(hours=2)),
            exchange("https://a.example.com/news/4.pdf", b"%PDF-1.4", ctype="application/pdf"),
            exchange("https://a.example.com/news/5", html(5), status=404),
            exchange("https://www.a.example.com/news/1?utm_source=x", html(1)),  # same article
            exchange("https://a.example.com/news/seen", html(6)),
            exchange(
                "https://a.example.com/news/7",
                gzip.compress(html(7)),
                extra=(("Content-Encoding", "gzip"),),
            ),
            exchange("https://a.example.com/live/8", html(8)),  # excluded by pattern
            exchange("https://a.example.com/news/9", b"x" * 5000),  # bigger than max_bytes
        ]:
            archive.write("cc", ex)
        ((_, path),) = archive.files()
    folder = tmp_path / "cc-news"
    folder.mkdir()
    return path.rename(folder / "CC-NEWS-20260105103000-00001.warc.gz")


def warc_source(location: str, **kw: object) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "id": "cc",
            "kind": "warc",
            "path": location,
            "domains": ["*.example.com"],
            "exclude": ["/live/"],
            **kw,
        }
    )


def test_archive_layout_records_and_truncation(tmp_path: Path) -> None:
    with WarcArchive(INTERVAL, tmp_path) as archive:
        ref1 = archive.write("site-a", exchange("https://a.test/1", html(1)))
        ref2 = archive.write("site-a", exchange("https://a.test/2", b"abc", truncated="length"))
        ref3 = archive.write("site-b", exchange("https://b.test/3", html(3), status=500))
        files = dict(archive.files())
    assert set(files) == {raw_key("site-a", INTERVAL), raw_key("site-b", INTERVAL)}
    assert raw_key("site-a", INTERVAL) == (
        "raw/dt=2026-01-05/source=site-a/20260105T1000Z-20260105T1100Z.warc.gz"
    )
    records = warc_records(files[raw_key("site-a", INTERVAL)])
    assert [r.kind for r in records] == ["warcinfo", "request", "response", "request", "response"]
    by_offset = {r.offset: r for r in records}
    assert by_offset[int(ref1.split("#")[1])].payload == html(1)
    assert by_offset[int(ref2.split("#")[1])].truncated == "length"
    assert ref3.startswith(raw_key("site-b", INTERVAL) + "#")
    load = raw_loader(lambda key: (tmp_path / key).open("rb"))
    page = load(ref3)
    assert (page.url, page.http_status, page.body, page.raw_ref) == (
        "https://b.test/3",
        500,
        html(3),
        ref3,
    )
    with pytest.raises(SourceError):
        load("no-offset-here")


def test_read_warc_keeps_html_in_interval_domain_and_unseen(tmp_path: Path) -> None:
    path = cc_news(tmp_path)
    seen = frozenset({article_id("https://a.example.com/news/seen")})
    pages = list(read_warc(warc_source(str(path.parent)), INTERVAL, seen=seen, max_bytes=1000))
    assert [p.url for p in pages] == [
        "https://a.example.com/news/1",
        "https://a.example.com/news/7",
    ]
    first, gz = pages
    assert first.body == html(1) and gz.body == html(7)  # content-encoding undone
    assert first.url is not None and first.id == article_id(first.url) and first.source_id == "cc"
    assert first.fetched_at == IN.replace(microsecond=0) and first.http_status == 200
    assert first.raw_ref is not None and first.raw_ref.startswith(str(path) + "#")
    with path.open("rb") as fh:
        again = read_record(fh, int(first.raw_ref.rsplit("#", 1)[1]))
    assert again.url == first.url and again.body == first.body


def test_read_warc_globs_caps_and_other_intervals(tmp_path: Path) -> None:
    path = cc_news(tmp_path)
    pattern = str(path.parent / "CC-NEWS-*.warc.gz")
    capped = list(read_warc(warc_source(pattern, max_articles=1), INTERVAL, seen=frozenset()))
    assert [p.url for p in capped] == ["https://a.example.com/news/1"]
    earlier = Interval(INTERVAL.start - timedelta(hours=2), INTERVAL.start - timedelta(hours=1))
    old = list(read_warc(warc_source(str(path)), earlier, seen=frozenset()))
    assert [p.url for p in old] == ["https://a.example.com/news/3"]


class CountingReader(io.RawIOBase):
    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self.fh.read(len(b))
        b[: len(data)] = data
        self.read_bytes += len(data)
        return len(data)

    def close(self) -> None:
        self.fh.close()
        super().close()


def test_read_warc_streams_records_instead_of_loading_the_file(tmp_path: Path) -> None:
    with WarcArchive(INTERVAL, tmp_path) as archive:
        for i in range(400):
            body = f"<html><p>{i}</p>".encode() + bytes(range(256)) * 40 + b"</html>"
            archive.write("big", exchange(f"https://a.example.com/news/{i}", body))
        ((_, path),) = archive.files()
    readers: list[CountingReader] = []

    def opener(p: str) -> IO[bytes]:
        readers.append(CountingReader(Path(p).open("rb")))  # noqa: SIM115 (an opener)
        # a RawIOBase whose readinto takes a bytearray (not any buffer): hence the cast
        return io.BufferedReader(cast(io.RawIOBase, readers[-1]))

    pages = read_warc(warc_source(str(path)), INTERVAL, seen=frozenset(), opener=opener)
    first = next(pages)
    assert first.url == "https://a.example.com/news/0"
    assert readers[0].read_bytes < path.stat().st_size / 4  # one record in, not the file
    assert sum(1 for _ in pages) == 399
    assert isinstance(pages, Generator)  # read_warc is a generator: closing it closes the file
    pages.close()


# -- WARC input on S3: the lake's settings, and nothing else ------------------------------------


@pytest.fixture
def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS credentials, region, profile or endpoint in the environment (instance metadata
    stays off and the shared config files stay empty): boto3's default chain finds nothing, so
    whatever reaches the S3 server got there through the lake's settings."""
    from tests.support.s3_server import AWS_UNSET

    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
    for name in (*names, *AWS_UNSET):
        monkeypatch.delenv(name, raising=False)
    import boto3

    assert boto3.session.Session().get_credentials() is None


def test_read_warc_lists_an_s3_prefix_and_a_glob_with_the_lakes_settings(
    tmp_path: Path, s3_server: Any, no_aws_env: None
) -> None:
    """CC-NEWS style input on S3: a prefix means every WARC under it, a glob filters keys; the
    endpoint, keys, region and path style come only from the lake's settings."""
    path = cc_news(tmp_path)
    bucket = s3_server.new_bucket("ccnews")
    client = s3_server.client()
    client.upload_file(str(path), bucket, f"crawl-data/CC-NEWS/2026/{path.name}")
    client.put_object(Bucket=bucket, Key="crawl-data/CC-NEWS/2026/warc.paths.gz", Body=b"x")
    client.put_object(Bucket=bucket, Key="crawl-data/other/x.warc.gz", Body=b"not a warc")
    local = [p.url for p in read_warc(warc_source(str(path)), INTERVAL, seen=frozenset())]
    files = SourceFiles(s3_lake_settings(s3_server, s3_server.new_bucket("lake")))
    for location in (
        f"s3://{bucket}/crawl-data/CC-NEWS/2026/",
        f"s3://{bucket}/crawl-data/CC-NEWS/*/CC-NEWS-*.warc.gz",
        f"s3://{bucket}/crawl-data/CC-NEWS/2026/{path.name}",
    ):
        pages = list(read_warc(warc_source(location), INTERVAL, seen=frozenset(), files=files))
        assert [p.url for p in pages] == local and local
        ref = pages[0].raw_ref
        assert ref is not None
        assert ref.startswith(f"s3://{bucket}/crawl-data/CC-NEWS/2026/{path.name}#")
    # without the lake's settings there is no S3 access at all (no default chain to fall to)
    with pytest.raises(ConfigError, match="lake's S3 settings"):
        list(read_warc(warc_source(f"s3://{bucket}/crawl-data/"), INTERVAL, seen=frozenset()))


def test_missing_s3_warc_key_or_bucket_is_a_source_error_naming_the_uri(
    s3_server: Any, no_aws_env: None
) -> None:
    bucket = s3_server.new_bucket("ccnews")
    files = SourceFiles(s3_lake_settings(s3_server, bucket))
    gone = f"s3://{bucket}/crawl-data/CC-NEWS/2026/CC-NEWS-missing.warc.gz"
    no_bucket = "s3://no-such-bucket-newsetl/crawl-data/CC-NEWS/2026/"
    for location, what in ((gone, "no such object"), (no_bucket, "no such bucket")):
        with pytest.raises(SourceError) as info:
            list(read_warc(warc_source(location), INTERVAL, seen=frozenset(), files=files))
        err = info.value
        assert err.subject == location and location in str(err)
        assert what in err.message and err.kind == "not-found" and not err.transient
    # a local file that is not there says so too
    with pytest.raises(SourceError, match=r"/no/such/file\.warc\.gz") as info:
        list(read_warc(warc_source("/no/such/file.warc.gz"), INTERVAL, seen=frozenset()))
    assert info.value.kind == "not-found"


def test_a_corrupt_s3_warc_is_a_source_error(s3_server: Any, no_aws_env: None) -> None:
    bucket = s3_server.new_bucket("ccnews")
    s3_server.client().put_object(Bucket=bucket, Key="cc/bad.warc.gz", Body=b"\x1f\x8bnot gzip")
    files = SourceFiles(s3_lake_settings(s3_server, bucket))
    with pytest.raises(SourceError, match=f"s3://{bucket}/cc/bad.warc.gz"):
        list(read_warc(warc_source(f"s3://{bucket}/cc/"), INTERVAL, seen=frozenset(), files=files))


def test_a_run_reads_its_s3_warc_source_through_the_news_lake_connection(
    tmp_path: Path, s3_server: Any, no_aws_env: None
) -> None:
    """The whole run (discover → fetch → process → publish) with the lake and a WARC source on
    the S3 server, everything S3 given only by an Airflow-style ``news_lake`` connection."""
    from etl.config import load_settings
    from etl.lake.opener import open_lake
    from etl.lake.tables import read_articles
    from etl.runner.interval import run_interval
    from etl.runner.run import Run
    from tests.support.s3_server import CREDENTIALS

    pages = Path(__file__).resolve().parents[1] / "cases" / "pages"
    with WarcArchive(INTERVAL, tmp_path / "work") as archive:
        for name in ("article_en", "article_de"):
            body = (pages / f"{name}.html").read_bytes()
            archive.write("cc", exchange(f"https://a.example.com/news/{name}", body))
        ((_, warc),) = archive.files()
    src_bucket, lake_bucket = s3_server.new_bucket("ccnews"), s3_server.new_bucket("lake")
    s3_server.client().upload_file(str(warc), src_bucket, "cc/CC-NEWS-1.warc.gz")
    sources = tmp_path / "sources.yaml"
    source = {"id": "cc", "kind": "warc", "path": f"s3://{src_bucket}/cc/"}
    sources.write_text(json.dumps({"user_agent": "t (+https://x.test)", "sources": [source]}))
    conn = {
        "conn_type": "aws",
        "login": CREDENTIALS["aws_access_key_id"],
        "password": CREDENTIALS["aws_secret_access_key"],
        "extra": {"endpoint_url": s3_server.endpoint, "region_name": "us-east-1"},
    }
    settings = load_settings({}, lake=f"s3://{lake_bucket}/lake", sources=sources, lake_conn=conn)
    run_interval(Run.open(settings, INTERVAL))
    rows = read_articles(open_lake(settings.lake_settings)).to_pylist()
    assert sorted(r["url"] for r in rows) == [
        "https://a.example.com/news/article_de",
        "https://a.example.com/news/article_en",
    ]
    assert all(
        str(r["raw_ref"]).startswith(f"s3://{src_bucket}/cc/CC-NEWS-1.warc.gz#") for r in rows
    )


def test_s3_throttling_and_5xx_are_transient_source_errors(site: Site, no_aws_env: None) -> None:
    """An S3 endpoint (a local site standing in for one) that answers 503 SlowDown: the read
    fails with a transient SourceError naming the URI, so the task is retried."""
    error = (
        b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
    )
    site.routes["/cc/x.warc.gz"] = Response(503, error, content_type="application/xml")
    settings = LakeSettings(
        uri="s3://lake",
        endpoint_url=site.base,
        region="us-east-1",
        path_style=True,
        access_key_id="k",
        secret_access_key="s",
        max_attempts=1,
    )
    with pytest.raises(SourceError) as info:
        list(
            read_warc(
                warc_source("s3://cc/x.warc.gz"),
                INTERVAL,
                seen=frozenset(),
                files=SourceFiles(settings),
            )
        )
    assert info.value.subject == "s3://cc/x.warc.gz" and info.value.transient
    assert "SlowDown" in info.value.message


def test_an_s3_warc_that_stalls_mid_body_is_a_transient_source_error(
    tmp_path: Path, site: Site, no_aws_env: None
) -> None:
    """The object starts to arrive, then the server stalls past the read timeout: the pages
    before the stall are read, then a transient SourceError names the object (Airflow retries)."""
    data = cc_news(tmp_path).read_bytes()
    half = len(data) // 2
    site.routes["/cc/x.warc.gz"] = Response(
        200, [data[:half], data[half:]], content_type="application/octet-stream", chunk_delay_s=3
    )
    settings = LakeSettings(
        uri="s3://lake",
        endpoint_url=site.base,
        region="us-east-1",
        path_style=True,
        access_key_id="k",
        secret_access_key="s",
        max_attempts=1,
        read_timeout_s=0.5,
    )
    source = warc_source("s3://cc/x.warc.gz")
    with pytest.raises(SourceError) as info:
        list(read_warc(source, INTERVAL, seen=frozenset(), files=SourceFiles(settings)))
    assert info.value.subject == "s3://cc/x.warc.gz" and info.value.transient
    assert "read failed" in info.value.message and "timeout" in info.value.message.lower()
