"""The seen index once per interval in the runner: ``plan`` stores it, discover tasks read it
with one GET, publish re-reads the lake (a cache seeded from it), and exactly-once holds when
the snapshot is stale (an interval published meanwhile, a compaction), missing or corrupt.
Real sites on 127.0.0.1; local and moto S3 lakes (S3 requests counted by a proxy)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from etl.config import Settings
from etl.lake import clear_seen_cache, compact_day, publish_interval, read_articles
from etl.lake.settings import LakeSettings
from etl.records import Interval
from etl.runner import (
    Run,
    discover_step,
    fetch_step,
    plan_step,
    process_step,
    publish_step,
    run_interval,
    split_items,
)
from etl.runner.run import SEEN_SNAPSHOT
from tests.support.article_factory import batches, make_article
from tests.support.counting_proxy import CountingProxy
from tests.support.runner_helpers import (
    FERRY,
    HOUR9,
    HOUR10,
    LIBRARY,
    STORM,
    articles,
    html,
    rss,
    sources_file,
)
from tests.support.sites import Site
from tests.support.warc_sites import s3_lake_settings

AT_0930 = "Sat, 14 May 2022 09:30:00 +0000"
AT_1015 = "Sat, 14 May 2022 10:15:00 +0000"


@pytest.fixture(autouse=True)
def _cold() -> Iterator[None]:
    clear_seen_cache()
    yield
    clear_seen_cache()


@pytest.fixture
def site() -> Iterator[Site]:
    """``/x`` listed by feed a at 09:30 (HOUR9) and by feed b at 10:15 (HOUR10)."""
    site = Site()

    def feed(items: list[tuple[str, str]]) -> Callable[[Any], Any]:
        return lambda _req: rss(site.base, items)

    site.routes.update(
        {
            "/a.xml": feed([("/x", AT_0930), ("/a1", AT_0930)]),
            "/b.xml": feed([("/x", AT_1015), ("/b1", AT_1015)]),
            "/x": html(FERRY),
            "/a1": html(LIBRARY),
            "/b1": html(STORM),
        }
    )
    with site:
        yield site


def _settings(tmp_path: Path, site: Site, lake: LakeSettings | None = None) -> Settings:
    src = sources_file(
        tmp_path,
        {"id": "a", "kind": "rss", "url": f"{site.base}/a.xml"},
        {"id": "b", "kind": "rss", "url": f"{site.base}/b.xml"},
    )
    ls = lake or LakeSettings(uri=str(tmp_path / "lake"))
    return Settings(lake=ls.uri, sources=src, lake_settings=ls)


class DagRun:
    """The DAG's tasks one by one, each a fresh Run with nothing cached (a process of its own)."""

    def __init__(self, settings: Settings, interval: Interval, attempt: str = "dag-1") -> None:
        self.settings, self.interval, self.attempt = settings, interval, attempt

    def task(self, fn: Callable[..., Any], *args: Any) -> Any:
        clear_seen_cache()
        return fn(Run.open(self.settings, self.interval, attempt=self.attempt), *args)

    def plan(self) -> list[str]:
        sources: list[str] = self.task(plan_step)
        return sources

    def rest(self, sources: list[str]) -> dict[str, Any]:
        found = [self.task(discover_step, s) for s in sources]
        fetched = [self.task(fetch_step, i) for i in split_items(found)]
        processed = [self.task(process_step, f) for f in fetched]
        published: dict[str, Any] = self.task(publish_step, processed)
        return published


def _shift(iv: Interval, hours: int) -> Interval:
    return Interval(iv.start + timedelta(hours=hours), iv.end + timedelta(hours=hours))


def _x_rows(settings: Settings) -> list[str]:
    """The published rows of /x, by URL (once, or the test failed)."""
    rows = read_articles(Run.open(settings, HOUR9).lake, "2022-05-14").to_pylist()
    return [r["url"] for r in rows if r["url"].endswith("/x")]


@pytest.mark.parametrize("store", ["local", "s3"])
@pytest.mark.parametrize("compact", [False, True], ids=["hourly", "compacted"])
@pytest.mark.parametrize("order", ["schedule", "backfill"])
def test_a_stale_snapshot_costs_a_fetch_never_a_duplicate(
    tmp_path: Path, site: Site, request: pytest.FixtureRequest, store: str, compact: bool,
    order: str,
) -> None:  # fmt: skip
    """One interval's ``plan`` stores the seen index; the other interval (the hour before on
    schedule, or the hour after beside a backfill) then publishes /x, and the day may be
    compacted (switching generations); the first interval's discover trusts its snapshot and
    fetches /x again, but its publish reads the lake: /x is published once. A rerun with
    everything cached in this process reproduces the interval."""
    lake = None
    if store == "s3":
        server = request.getfixturevalue("s3_server")
        lake = s3_lake_settings(server, server.new_bucket())
    settings = _settings(tmp_path, site, lake)
    mine, other = (HOUR10, HOUR9) if order == "schedule" else (HOUR9, HOUR10)
    own = "/b1" if mine == HOUR10 else "/a1"
    dag = DagRun(settings, mine)
    sources = dag.plan()
    run_interval(Run.open(settings, other))
    if compact:
        assert not compact_day(Run.open(settings, other).lake, "2022-05-14").skipped
    out = dag.rest(sources)
    assert len(site.requests("/x")) == 2  # the snapshot's price: one fetch publish drops
    assert out["articles"] == 1
    assert _x_rows(settings) == [site.url("/x")]
    assert [r["url"] for r in articles(Run.open(settings, mine))] == [site.url(own)]
    again = run_interval(Run.open(settings, mine))
    assert again["articles"] == 1 and _x_rows(settings) == [site.url("/x")]
    assert [r["url"] for r in articles(Run.open(settings, mine))] == [site.url(own)]


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated", "other window"])
def test_a_missing_or_corrupt_snapshot_means_reading_the_lake_not_nothing_seen(
    tmp_path: Path, site: Site, damage: str
) -> None:
    settings = _settings(tmp_path, site)
    run_interval(Run.open(settings, HOUR9))  # /x and /a1 published
    later = DagRun(settings, HOUR10)
    sources = later.plan()
    lake = Run.open(settings, HOUR10).lake
    key = f"_staging/{HOUR10.id}/{later.attempt}/{SEEN_SNAPSHOT}"
    good = lake.get_bytes(key)
    if damage == "missing":
        lake.delete([key])
    elif damage == "garbage":
        lake.put_bytes(key, b"PAR1 not a snapshot")
    elif damage == "truncated":
        lake.put_bytes(key, good[: len(good) // 2])
    else:  # a snapshot written for another interval
        other = DagRun(settings, _shift(HOUR9, 5), attempt="other")
        other.plan()
        lake.put_bytes(key, lake.get_bytes(f"_staging/{other.interval.id}/other/{SEEN_SNAPSHOT}"))
    found = later.task(discover_step, "b")
    assert found["count"] == 1  # /x was seen: only /b1 is a candidate
    out = later.rest(sources)
    assert len(site.requests("/x")) == 1 and out["articles"] == 1
    assert _x_rows(settings) == [site.url("/x")]


def test_s3_dag_run_reads_each_index_file_once_per_interval(
    tmp_path: Path, site: Site, s3_server: Any
) -> None:
    """Six earlier intervals on S3; an interval of two sources run as the DAG runs it (plan,
    discover x2, fetch, process, publish, each task a fresh process): each key-index file is
    GET once (by plan), discover reads the snapshot (one GET each), and the LISTs of the seen
    index do not grow with the days of the window. Before: every task read every file."""
    bucket = s3_server.new_bucket()
    direct = s3_lake_settings(s3_server, bucket)
    lake = Run.open(_settings(tmp_path, site, direct), HOUR10).lake
    for h in range(6):
        iv = _shift(HOUR9, -(h + 1))
        arts = [make_article(f"https://old.example.com/{h}/{i}") for i in range(2)]
        publish_interval(lake, iv, batches(arts, dt=iv.dt))
    with CountingProxy(s3_server.port) as proxy:
        proxied = replace(direct, endpoint_url=proxy.endpoint)
        settings = _settings(tmp_path, site, proxied)
        dag = DagRun(settings, HOUR10)
        out = dag.rest(dag.plan())
        paths = [p.split("?", 1)[0] for m, p in proxy.requests if m == "GET"]
        lists = [p for m, p in proxy.requests if m == "GET" and "list-type=2" in p]
    assert out["articles"] == 2
    index_gets = [p for p in paths if "/_index/" in p]
    assert len(index_gets) == len(set(index_gets)) == 6, index_gets
    snapshot_gets = [p for p in paths if p.endswith("/" + SEEN_SNAPSHOT)]
    assert len(snapshot_gets) == 3  # discover a, discover b, publish
    months = [f"prefix=lake%2F{d}%2Fdt%3D2022-05&" for d in ("articles", "_index", "_compact")]
    seen_lists = [p for p in lists if any(m in p for m in months)]
    assert len(seen_lists) == 3 * 3, seen_lists  # plan, publish, its re-check: one month each
