"""``newsetl ingest`` and ``newsetl query`` (through typer's CliRunner)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from etl.cli import app
from tests.support.cli_helpers import (
    ARTICLES,
    BASE,
    KHARKIV,
    PAGES,
    SITE,
    run,
)

# --- ingest and query -------------------------------------------------------------------------


def test_ingest_then_query_round_trip(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    args: list[str | Path] = [
        "ingest",
        SITE,
        "--exclude",
        "index.html",
        "--base-url",
        BASE,
        "--lake",
        lake,
    ]
    result = run(*args, "--source-id", "seeds", "--start", "2024-06-01T12:00:00Z")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"wrote {len(ARTICLES)} articles in 1 file(s); 0 failed" in result.stdout
    assert "interval 20240601T1200Z-20240601T1300Z (dt=2024-06-01)" in result.stdout
    assert (lake / "_runs" / "20240601T1200Z-20240601T1300Z.json").is_file()

    count = run("query", "--lake", lake, "SELECT count(*) AS n FROM articles")
    assert count.exit_code == 0
    assert count.stdout.splitlines() == ["n", str(len(ARTICLES))]

    urls = run("query", "--lake", lake, "SELECT url, source_id FROM articles ORDER BY url")
    assert urls.stdout.splitlines()[1:] == [f"{BASE}{a}/\tseeds" for a in ARTICLES]

    # rerunning the same interval leaves the same rows
    again = run(*args, "--source-id", "seeds", "--start", "2024-06-01T12:00:00Z")
    assert again.exit_code == 0
    sql = "SELECT count(DISTINCT article_id), count(*) FROM articles"
    count = run("query", "--lake", lake, sql)
    assert count.stdout.splitlines()[1] == f"{len(ARTICLES)}\t{len(ARTICLES)}"


def test_ingest_with_failures_is_exit_1_and_logs_them(tmp_path: Path, mixed: Path) -> None:
    lake = tmp_path / "lake"
    result = run(
        "ingest",
        mixed,
        "--base-url",
        "https://pages.example/",
        "--lake",
        lake,
        "--start",
        "2024-06-01T12:00:00",
        "--end",
        "2024-06-01T12:30:00",
    )
    assert result.exit_code == 1
    assert "wrote 1 articles in 1 file(s); 3 failed" in result.stdout
    assert "✗ https://pages.example/b-empty.html: empty page" in result.stdout
    log = run(
        "query",
        "--lake",
        lake,
        "SELECT url, error_class FROM fetch_log ORDER BY url",
    )
    assert log.stdout.splitlines()[1:] == [
        "https://pages.example/b-empty.html\tempty",
        "https://pages.example/c-binary.html\tbinary",
        "https://pages.example/d-no-text.html\tno-text",
    ]


def test_ingest_without_a_url_fails_only_that_page(tmp_path: Path) -> None:
    folder = tmp_path / "pages"
    folder.mkdir()
    shutil.copy(SITE / KHARKIV / "index.html", folder / "kharkiv.html")  # has a canonical link
    shutil.copy(PAGES / "article_en.html", folder / "ferry.html")  # has none
    lake = tmp_path / "lake"
    result = run("ingest", folder, "--lake", lake, "--start", "2024-06-01T12:00:00Z")
    assert result.exit_code == 1
    assert "wrote 1 articles" in result.stdout
    assert "no absolute http(s) URL" in result.stdout
    q = run("query", "--lake", lake, "SELECT canonical_url FROM articles")
    assert q.stdout.splitlines()[1] == f"{BASE}{KHARKIV}"


def test_ingest_nothing_to_ingest_is_exit_2(tmp_path: Path) -> None:
    result = run("ingest", SITE, "--exclude", "*", "--lake", tmp_path / "lake")
    assert result.exit_code == 2
    assert "no .html or .html.gz pages found" in result.stderr
    assert not (tmp_path / "lake").exists()


def test_ingest_rejects_a_bad_interval(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["ingest", str(SITE), "--lake", str(tmp_path), "--start", "yesterday"]
    )
    assert result.exit_code == 2
    assert "not an ISO-8601 time" in result.stderr


def test_query_prints_values_verbatim(tmp_path: Path) -> None:
    sql = "SELECT '[bold]live[/bold] :thumbs_up: [red]x' AS s, NULL AS n"
    result = run("query", "--lake", tmp_path / "empty-lake", sql)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["s\tn", "[bold]live[/bold] :thumbs_up: [red]x\t"]


def test_query_on_an_empty_lake_has_empty_tables(tmp_path: Path) -> None:
    result = run(
        "query",
        "--lake",
        tmp_path,
        "SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM fetch_log)",
    )
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1] == "0\t0"


def test_bad_sql_is_exit_2_naming_the_lake(tmp_path: Path) -> None:
    result = run("query", "--lake", tmp_path, "SELECT nope FROM articles")
    assert result.exit_code == 2
    assert str(tmp_path) in result.stderr
    assert "query failed" in result.stderr


def test_query_reads_an_s3_lake_on_the_s3_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mixed: Path, s3_server: Any
) -> None:
    """``newsetl ingest`` then ``newsetl query`` on an ``s3://`` lake held by the real S3 server
    process (moto, reached through its endpoint): both views, read through the store."""
    bucket = s3_server.new_bucket("query")
    lake = f"s3://{bucket}/lake"
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.chdir(tmp_path)  # nothing may land in a local folder named like the lake
    ingested = run("ingest", mixed, "--base-url", "https://p.example/", "--lake", lake)
    assert ingested.exit_code == 1, ingested.output  # three of the four pages fail
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.startswith("lake/articles/") and k.endswith(".parquet") for k in keys)
    assert any(k.startswith("lake/fetch_log/") for k in keys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pages"]

    count = run("query", "--lake", lake, "SELECT count(*) AS n, min(url) AS url FROM articles")
    assert count.exit_code == 0, count.output
    assert count.stdout.splitlines() == ["n\turl", "1\thttps://p.example/a-good.html"]
    errors = run("query", "--lake", lake, "SELECT error_class FROM fetch_log ORDER BY 1")
    assert errors.exit_code == 0, errors.output
    assert errors.stdout.splitlines() == ["error_class", "binary", "empty", "no-text"]
    # the server is the only copy: another bucket is another (empty) lake
    other = run(
        "query", "--lake", f"s3://{s3_server.new_bucket('empty')}", "SELECT count(*) FROM articles"
    )
    assert other.exit_code == 0 and other.stdout.splitlines()[1:] == ["0"]
