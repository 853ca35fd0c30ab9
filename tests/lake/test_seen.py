"""The seen index read once (etl.lake.seen): the same ids as reading every file, files read once
per process and version, reruns and compactions seen at once, the snapshot and its fallbacks.
Local and moto S3 lakes; S3 requests counted by a proxy in front of the server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from etl.lake.base import Lake
from etl.lake.compact import compact_day
from etl.lake.keyindex import key_tables
from etl.lake.opener import open_lake
from etl.lake.seen import window
from etl.lake.seen_cache import clear_seen_cache
from etl.lake.seen_recheck import seen_ids
from etl.lake.seen_snapshot import read_snapshot, snapshot_ids, write_snapshot
from etl.lake.settings import LakeSettings
from etl.lake.store import publish_interval
from etl.records import Interval
from etl.urls import article_id
from tests.support.article_factory import batches, make_article
from tests.support.counting_proxy import CountingProxy
from tests.support.query_lakes import _v1_file
from tests.support.s3_server import lake_settings

RUN = Interval(datetime(2026, 12, 1, 13, tzinfo=UTC), datetime(2026, 12, 1, 14, tzinfo=UTC))


def _iv(day: datetime, hour: int) -> Interval:
    start = day + timedelta(hours=hour)
    return Interval(start, start + timedelta(hours=1))


def _arts(tag: str, n: int) -> list[Any]:
    """Articles whose canonical link differs from their URL (so the URL ids matter)."""
    return [
        make_article(
            f"https://news.example.com/{tag}/{i}", canonical=f"https://www.example.org/{tag}/{i}"
        )
        for i in range(n)
    ]


def _publish(lake: Lake, iv: Interval, tag: str, n: int = 3, **kw: Any) -> None:
    publish_interval(lake, iv, batches(_arts(tag, n), dt=iv.dt), **kw)


def _s3(endpoint: str, bucket: str) -> LakeSettings:
    return lake_settings(endpoint, bucket, path_style=True)


@pytest.fixture(autouse=True)
def _cold() -> Iterator[None]:
    clear_seen_cache()
    yield
    clear_seen_cache()


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    if request.param == "local":
        return open_lake(str(tmp_path / "lake"))
    server = request.getfixturevalue("s3_server")
    return open_lake(_s3(server.endpoint, server.new_bucket()))


def _history(lake: Lake) -> None:
    """Across a month boundary: hourly intervals (two shards for one), the run's own interval,
    a later day, an interval without a key index (written before it existed), a compacted day."""
    for d in (27, 28, 29, 30):
        day = datetime(2026, 11, d, tzinfo=UTC)
        for h in (3, 15):
            _publish(lake, _iv(day, h), f"{d}-{h}", n_shards=2 if h == 3 else 1)
    dec1 = datetime(2026, 12, 1, tzinfo=UTC)
    _publish(lake, _iv(dec1, 2), "dec1-2")
    _publish(lake, RUN, "mine")  # never in its own seen index
    _publish(lake, _iv(datetime(2026, 12, 2, tzinfo=UTC), 9), "later")
    _v1_file(lake, 26, 4)  # 2026-11-26: no key index
    compact_day(lake, "2026-11-28")


def _reference(lake: Lake, days: int, with_urls: bool) -> frozenset[str]:
    """The seen index read file by file (etl.lake.keyindex.key_tables, as before)."""
    cols = ["article_id", "url", "canonical_url"] if with_urls else ["article_id"]
    ids: set[str] = set()
    for dt in window(RUN, days):
        for table in key_tables(lake, dt, columns=cols, skip_group=RUN.id):
            ids.update(cast("list[str]", table.column("article_id").to_pylist()))
            for name in cols[1:]:
                ids.update(article_id(u) for u in table.column(name).to_pylist() if u)
    return frozenset(ids)


def test_the_same_ids_as_reading_every_file(lake: Lake) -> None:
    _history(lake)
    for days in (0, 1, 7):
        for with_urls in (False, True):
            expected = _reference(lake, days, with_urls)
            assert seen_ids(lake, days=days, exclude=RUN, with_urls=with_urls) == expected
            clear_seen_cache()
            assert seen_ids(lake, days=days, exclude=RUN, with_urls=with_urls) == expected
    mine = {article_id(a.page.url) for a in _arts("mine", 3)}
    assert not mine & seen_ids(lake, days=7, exclude=RUN, with_urls=True)
    assert len(seen_ids(lake, days=7, exclude=RUN)) == 8 * 3 + 3 + 3 + 4


def test_a_rerun_or_a_compaction_is_seen_by_the_next_read_in_the_same_process(
    lake: Lake,
) -> None:
    """A file read once is not trusted past its version: a rerun of an interval (same key,
    new content), a compaction (new keys) and a deleted interval show at the next read."""
    day = datetime(2026, 11, 30, tzinfo=UTC)
    _publish(lake, _iv(day, 3), "first", 3)
    _publish(lake, _iv(day, 4), "other", 2)
    before = seen_ids(lake, days=1, exclude=RUN)
    assert len(before) == 5
    _publish(lake, _iv(day, 3), "rerun", 4)  # the same keys, other rows (and sizes)
    after = seen_ids(lake, days=1, exclude=RUN)
    assert after == _reference(lake, 1, False) and len(after) == 6
    compact_day(lake, "2026-11-30")
    assert seen_ids(lake, days=1, exclude=RUN) == after
    _publish(lake, _iv(day, 4), "again", 2)  # a rerun on a compacted day: released
    assert seen_ids(lake, days=1, exclude=RUN) == _reference(lake, 1, False)
    lake.delete(lake.list("articles/") + lake.list("_index/") + lake.list("_compact/"))
    assert seen_ids(lake, days=1, exclude=RUN) == frozenset()


def _requests(proxy: CountingProxy) -> list[str]:
    """``LIST <prefix>`` or ``<METHOD> <key>`` of every request, the bucket stripped."""
    out = []
    for method, path in proxy.requests:
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        if method == "GET" and "list-type" in query:
            out.append("LIST " + query.get("prefix", [""])[0].removeprefix("news/"))
        else:
            out.append(f"{method} {unquote(parts.path).split('/news/', 1)[-1]}")
    return out


def test_s3_a_second_read_costs_its_lists_alone(s3_server: Any) -> None:
    """On S3 the first read GETs each index file once; the next reads in the process (the
    re-check under the publish lease, the next source) are LISTs alone: a few per month of the
    window, not three requests a day. The old code read every file again each time."""
    bucket = s3_server.new_bucket()
    _history(open_lake(_s3(s3_server.endpoint, bucket)))
    with CountingProxy(s3_server.port) as proxy:
        lake = open_lake(_s3(proxy.endpoint, bucket))
        first = seen_ids(lake, days=7, exclude=RUN, with_urls=True)
        reads = _requests(proxy)
        index_gets = [r for r in reads if r.startswith("GET _index/")]
        assert len(index_gets) == len(set(index_gets)) == 9, reads  # 8 hourly, 1 compacted
        proxy.reset()
        for _ in range(3):
            assert seen_ids(lake, days=7, exclude=RUN, with_urls=True) == first
        again = _requests(proxy)
        assert all(r.startswith("LIST ") for r in again), again
        assert len(again) == 3 * 6, again  # 2 months x (articles/, _index/, _compact/)
        assert set(again) == {
            f"LIST {p}dt={m}" for p in ("articles/", "_index/", "_compact/")
            for m in ("2026-11", "2026-12")
        }  # fmt: skip


def test_snapshot_seeds_another_process_and_a_bad_one_falls_back(lake: Lake) -> None:
    _history(lake)
    key = f"_staging/{RUN.id}/a1/seen.parquet"
    assert write_snapshot(lake, key, days=7, exclude=RUN) == 10  # 9 indexes, 1 v1 file
    expected = seen_ids(lake, days=7, exclude=RUN, with_urls=True)
    clear_seen_cache()  # another process
    assert snapshot_ids(lake, key, days=7, exclude=RUN, with_urls=True) == expected
    assert snapshot_ids(lake, key, days=7, exclude=RUN) == seen_ids(lake, days=7, exclude=RUN)
    # a snapshot of another window, a missing one, a corrupt one: none, never "nothing seen"
    assert snapshot_ids(lake, key, days=6, exclude=RUN) is None
    assert snapshot_ids(lake, key, days=7, exclude=_iv(RUN.start, 1)) is None
    assert snapshot_ids(lake, key + ".missing", days=7, exclude=RUN) is None
    good = lake.get_bytes(key)
    for bad in (b"", b"garbage", good[: len(good) // 2], good[:-9] + b"\x00" * 9):
        lake.put_bytes(key, bad)
        clear_seen_cache()
        assert snapshot_ids(lake, key, days=7, exclude=RUN) is None
        assert not read_snapshot(lake, key, days=7, exclude=RUN)
        assert seen_ids(lake, days=7, exclude=RUN, with_urls=True) == expected


def test_s3_a_seeded_read_gets_no_index_file_and_a_stale_seed_is_not_trusted(
    s3_server: Any,
) -> None:
    """Seeded from a snapshot, a read GETs no index file; files changed since the snapshot
    (a rerun, a compaction) are read again, at their new version."""
    bucket = s3_server.new_bucket()
    direct = open_lake(_s3(s3_server.endpoint, bucket))
    _history(direct)
    key = f"_staging/{RUN.id}/a1/seen.parquet"
    write_snapshot(direct, key, days=7, exclude=RUN)
    _publish(direct, _iv(datetime(2026, 11, 30, tzinfo=UTC), 15), "rerun", 5)
    compact_day(direct, "2026-11-27")
    clear_seen_cache()
    with CountingProxy(s3_server.port) as proxy:
        lake = open_lake(_s3(proxy.endpoint, bucket))
        assert read_snapshot(lake, key, days=7, exclude=RUN)
        ids = seen_ids(lake, days=7, exclude=RUN)
        gets = [r for r in _requests(proxy) if r.startswith("GET _index/")]
    assert sorted(g.split("/")[1] for g in gets) == ["dt=2026-11-27", "dt=2026-11-30"], gets
    clear_seen_cache()
    assert ids == _reference(direct, 7, False)
