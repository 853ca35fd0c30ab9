"""``newsetl run`` (typer's CliRunner on etl.cli.app) against the seeds site on 127.0.0.1."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from etl.lake.manifest import read_manifest
from etl.lake.opener import open_lake
from etl.lake.tables import read_articles
from etl.records import Interval
from tests.support.cli_helpers import (
    newsetl,
)
from tests.support.sites import Response, Site, static_site

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds" / "site"
UA = "newsetl-test/0.1 (+https://example.org/newsetl-tests)"
START, END = "2022-05-14T09:00:00Z", "2022-05-14T10:00:00Z"
INTERVAL = Interval(datetime(2022, 5, 14, 9, tzinfo=UTC), datetime(2022, 5, 14, 10, tzinfo=UTC))
INTERVAL_ID = INTERVAL.id


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NEWSETL_LAKE", "NEWSETL_SOURCES", "NEWSETL_WORKERS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def seeds_site() -> Iterator[Site]:
    with static_site(SEEDS) as site:
        yield site


def write_sources(path: Path, sources: list[dict[str, Any]]) -> Path:
    data = {
        "allow_private_addresses": True,
        "user_agent": UA,
        "fetch": {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "max_attempts": 2},
        "sources": sources,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def seeds_sources(tmp_path: Path, site: Site) -> Path:
    return write_sources(
        tmp_path / "sources.yaml",
        [
            {"id": "seeds-sitemap", "kind": "sitemap", "url": f"{site.base}/sitemap.xml",
             "per_host_delay_s": 0},
            {"id": "seeds-feed", "kind": "rss", "url": f"{site.base}/feed.xml",
             "per_host_delay_s": 0},
        ],
    )  # fmt: skip


def test_run_prints_the_summary_and_publishes(tmp_path: Path, seeds_site: Site) -> None:
    sources, lake = seeds_sources(tmp_path, seeds_site), tmp_path / "lake"

    result = newsetl("run", "--sources", sources, "--lake", lake, "--start", START, "--end", END)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"interval {INTERVAL_ID} (dt=2022-05-14)" in out
    assert (
        "source seeds-sitemap: mode fetch, 1 listed, 1 fetched, 0 fetches failed, 1 articles, "
        "0 pages without an article"
    ) in out
    assert (
        "source seeds-feed: mode fetch, 1 listed, 1 fetched, 0 fetches failed, 1 articles, "
        "0 pages without an article"
    ) in out
    assert re.search(r"published 1 articles in 1 file\(s\); 8 fetch_log rows", out)
    rows = read_articles(open_lake(str(lake)), "2022-05-14").to_pylist()
    assert [r["url"] for r in rows] == [f"{seeds_site.base}/2022/05/14/russia-withdraw-kharkiv/"]

    again = newsetl("run", "--sources", sources, "--lake", lake, "--start", START, "--end", END)
    assert again.exit_code == 0, again.output
    assert "source seeds-feed: mode replay" in again.stdout
    assert "published 1 articles" in again.stdout

    refetched = newsetl(
        "run", "--sources", sources, "--lake", lake, "--start", START, "--refetch"
    )  # --end defaults to start + 1 h
    assert refetched.exit_code == 0, refetched.output
    assert "source seeds-sitemap: mode fetch, 1 listed, 1 fetched" in refetched.stdout
    assert len(read_articles(open_lake(str(lake)), "2022-05-14")) == 1


def test_run_takes_sources_and_lake_from_the_environment(tmp_path: Path, seeds_site: Site) -> None:
    sources, lake = seeds_sources(tmp_path, seeds_site), tmp_path / "env-lake"
    env = {"NEWSETL_SOURCES": str(sources), "NEWSETL_LAKE": str(lake)}

    result = newsetl("run", "--start", START, "--end", END, env=env)

    assert result.exit_code == 0, result.output
    assert f"lake {lake}" in result.stdout
    manifest = read_manifest(open_lake(str(lake)), INTERVAL)
    assert manifest is not None and manifest["articles"] == 1


def test_a_bad_field_in_the_sources_file_names_the_source_and_the_field(
    tmp_path: Path, seeds_site: Site
) -> None:
    sources = write_sources(
        tmp_path / "sources.yaml",
        [
            {"id": "seeds-feed", "kind": "rss", "url": f"{seeds_site.base}/feed.xml"},
            {"id": "broken", "kind": "rss", "url": f"{seeds_site.base}/feed.xml",
             "per_host_delay_s": -1},
        ],
    )  # fmt: skip
    lake = tmp_path / "lake"

    result = newsetl("run", "--sources", sources, "--lake", lake, "--start", START)

    assert result.exit_code != 0
    text = result.output
    assert str(sources) in text
    assert "source 'broken' field per_host_delay_s" in text
    assert not lake.exists()  # nothing fetched, nothing written


def test_no_sources_file_is_a_clear_error(tmp_path: Path) -> None:
    result = newsetl("run", "--lake", tmp_path / "lake", "--start", START)
    assert result.exit_code != 0
    assert "no sources file" in result.output
    assert "NEWSETL_SOURCES" in result.output and "--sources" in result.output

    missing = tmp_path / "nowhere.yaml"
    result = newsetl("run", "--sources", missing, "--lake", tmp_path / "lake", "--start", START)
    assert result.exit_code != 0
    assert str(missing) in result.output and "not found" in result.output


def test_a_bad_interval_is_a_usage_error(tmp_path: Path, seeds_site: Site) -> None:
    sources = seeds_sources(tmp_path, seeds_site)
    result = newsetl("run", "--sources", sources, "--start", END, "--end", START)
    assert result.exit_code == 2
    assert "not after start" in result.output


def test_a_transient_failure_exits_non_zero_and_says_so(tmp_path: Path, site: Site) -> None:
    site.routes["/feed.xml"] = Response(503, b"busy", content_type="text/plain")
    sources = write_sources(
        tmp_path / "sources.yaml",
        [{"id": "busy-feed", "kind": "rss", "url": site.url("/feed.xml"), "per_host_delay_s": 0}],
    )
    lake = tmp_path / "lake"

    result = newsetl("run", "--sources", sources, "--lake", lake, "--start", START)

    assert result.exit_code == 1  # published, but incomplete
    assert "busy-feed" in result.output and site.url("/feed.xml") in result.output
    assert "transient" in result.output and "INCOMPLETE" in result.output
    assert len(site.requests("/feed.xml")) == 2  # max_attempts
    manifest = read_manifest(open_lake(str(lake)), INTERVAL)
    assert manifest is not None and manifest["status"] == "incomplete"
    assert [p["url"] for p in manifest["pending"]] == [site.url("/feed.xml")]
