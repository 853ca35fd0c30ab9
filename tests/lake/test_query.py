"""``newsetl query``: lazy views over a local or S3 lake, output formats, a mixed v1+v2 lake."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from etl.cli import app
from etl.lake.opener import open_lake
from etl.lake.query import query_batches, run_query
from etl.lake.settings import LakeSettings
from etl.lake.store import publish_interval
from tests.support.article_factory import batches, make_article
from tests.support.counting_proxy import CountingProxy
from tests.support.query_lakes import _fill, _interval, _v1_file
from tests.support.s3_server import lake_settings


def _s3(endpoint: str, bucket: str) -> LakeSettings:
    return lake_settings(endpoint, bucket, path_style=True)


def _listed_prefixes(proxy: CountingProxy) -> list[str]:
    """The ``prefix`` of every LIST request the S3 server got."""
    out = []
    for method, path in proxy.requests:
        query = parse_qs(urlsplit(path).query)
        if method == "GET" and "list-type" in query:
            out.append(query.get("prefix", [""])[0])
    return out


def test_one_day_query_on_s3_reads_only_that_day(s3_server: Any) -> None:
    """The S3 server sees requests about the queried day only: one listing of its prefix (not
    of the whole lake), its compaction pointer, and GETs of its files (no HEAD per file); and
    a small share of the bytes."""
    bucket = s3_server.new_bucket()
    lake = open_lake(_s3(s3_server.endpoint, bucket))
    article_bytes = _fill(lake, range(1, 31), n=40, hours=(6,))  # 30 days
    with CountingProxy(s3_server.port) as proxy:
        settings = _s3(proxy.endpoint, bucket)
        _cols, rows = run_query(
            settings,
            "SELECT count(*), sum(word_count), min(dt), max(dt) FROM articles "
            "WHERE dt = '2026-11-04'",
        )
        assert rows == [(40, 40 * 200, "2026-11-04", "2026-11-04")]
        objects = [p for p in proxy.gets() if "/articles/" in p]
        assert objects, proxy.requests
        assert all("/articles/dt=2026-11-04/" in p for p in objects), objects
        assert _listed_prefixes(proxy) == ["news/articles/dt=2026-11-04/"], proxy.requests
        others = [p for p in proxy.gets() if "/articles/" not in p and p != f"/{bucket}"]
        assert others == [f"/{bucket}/news/_compact/dt=2026-11-04.json"], proxy.requests
        assert not [r for r in proxy.requests if r[0] != "GET"], proxy.requests  # no HEAD
        one_day = proxy.bytes_down
        assert one_day < article_bytes / 20, (one_day, article_bytes)
        # A range lists its days only; a query of the fetch_log lists no article file at all.
        proxy.reset()
        _cols, rows = run_query(
            settings,
            "SELECT count(*) FROM articles a WHERE a.dt BETWEEN '2026-11-09' AND '2026-11-10'",
        )
        assert rows == [(80,)]
        assert _listed_prefixes(proxy) == [
            "news/articles/dt=2026-11-09/",
            "news/articles/dt=2026-11-10/",
        ]
        proxy.reset()
        run_query(settings, "SELECT count(*) FROM fetch_log")
        assert not [p for p in _listed_prefixes(proxy) if "articles" in p], proxy.requests


def test_query_on_s3_fetches_only_the_columns_it_names(s3_server: Any) -> None:
    """Projection pushdown: a count of ids never downloads the text (ranged reads)."""
    bucket = s3_server.new_bucket()
    lake = open_lake(_s3(s3_server.endpoint, bucket))
    _fill(lake, range(1, 2), n=300, words=650, hours=(6,))
    with CountingProxy(s3_server.port) as proxy:
        settings = _s3(proxy.endpoint, bucket)
        _, rows = run_query(settings, "SELECT count(DISTINCT article_id) FROM articles")
        assert rows == [(300,)]
        ids_only = proxy.bytes_down
        proxy.reset()
        _, rows = run_query(settings, "SELECT sum(length(text)) > 0 FROM articles")
        assert rows == [(True,)]
        assert ids_only < proxy.bytes_down / 4, (ids_only, proxy.bytes_down)


def test_query_streams_batches_and_mixes_schema_versions(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    _fill(lake, range(1, 3), n=5)
    _v1_file(lake, 3, 4)
    sql = (
        "SELECT dt, schema_version, count(*) AS n, count(duplicate_of) AS dups, "
        "count(extraction) AS ex FROM articles GROUP BY ALL ORDER BY dt"
    )
    _, rows = run_query(str(tmp_path / "lake"), sql)
    assert rows == [
        ("2026-11-01", 2, 10, 0, 0),
        ("2026-11-02", 2, 10, 0, 0),
        ("2026-11-03", 1, 4, 0, 0),
    ]
    with query_batches(str(tmp_path / "lake"), "SELECT * FROM articles", batch_rows=3) as reader:
        sizes = [b.num_rows for b in reader]
    assert sum(sizes) == 24 and max(sizes) <= 3 and len(sizes) >= 8
    assert "duplicate_of" in reader.schema.names


def _run(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("q") / "lake"
    lake = open_lake(str(root))
    arts = [make_article(f"https://news.example.com/x/{i}", seed=i) for i in range(3)]
    arts[1] = make_article("https://news.example.com/x/1", text='He said "hi",\tthen\nleft', seed=1)
    publish_interval(lake, _interval(5, 10), batches(arts, dt="2026-11-05"))
    return root


SQL = "SELECT url, text, authors, published_at FROM articles ORDER BY url"


def test_query_formats(small_lake: Path, tmp_path: Path) -> None:
    tsv = _run("query", "--lake", small_lake, "SELECT url FROM articles ORDER BY url")
    assert tsv.exit_code == 0 and tsv.stdout.splitlines()[0] == "url"  # a pipe: tsv by default

    csv_out = _run("query", "--lake", small_lake, "--format", "csv", SQL)
    import csv

    rows = list(csv.reader(io.StringIO(csv_out.stdout)))
    assert rows[0] == ["url", "text", "authors", "published_at"] and len(rows) == 4
    assert rows[2][1] == 'He said "hi",\tthen\nleft'
    assert json.loads(rows[1][2]) == ["Ada Lovelace", "Charles Babbage"]

    js = _run("query", "--lake", small_lake, "-f", "json", SQL)
    lines = [json.loads(line) for line in js.stdout.splitlines()]
    assert [r["url"] for r in lines] == [f"https://news.example.com/x/{i}" for i in range(3)]
    assert lines[1]["authors"] == ["Ada Lovelace", "Charles Babbage"]

    table = _run("query", "--lake", small_lake, "--format", "table", SQL)
    out = table.stdout.splitlines()
    assert out[0].split() == ["url", "text", "authors", "published_at"]
    assert out[-1] == "(3 rows)" and len(out) == 6 and all("\t" not in line for line in out)

    target = tmp_path / "out.parquet"
    pq_out = _run("query", "--lake", small_lake, "-f", "parquet", "-o", target, SQL)
    assert pq_out.exit_code == 0, pq_out.stderr
    assert "3 rows" in pq_out.stderr
    back = pq.read_table(target)
    assert back.column_names == ["url", "text", "authors", "published_at"] and back.num_rows == 3
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]  # no partial file left

    jfile = tmp_path / "r.jsonl"
    assert _run("query", "--lake", small_lake, "-f", "json", "-o", jfile, SQL).exit_code == 0
    assert len(jfile.read_text().splitlines()) == 3


def test_query_bad_format_and_bad_sql(small_lake: Path, tmp_path: Path) -> None:
    bad = _run("query", "--lake", small_lake, "--format", "xml", "SELECT 1")
    assert bad.exit_code == 2 and "expected one of" in bad.stderr
    target = tmp_path / "keep.csv"
    target.write_text("old")
    failed = _run("query", "--lake", small_lake, "-f", "csv", "-o", target, "SELECT nope FROM x")
    assert failed.exit_code == 2 and "query failed" in failed.stderr
    assert target.read_text() == "old"  # a failed query never replaces the file
