"""The key index against the article files it stands for (issue 9 review): a publish killed
between its shards and its index must not leave an old index beside new shards. An id in the
files but not in the index is an article fetched and published again by the next interval that
lists it (a duplicate row); an id in the index but not in the files, an article never fetched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from etl.lake.base import Lake
from etl.lake.opener import open_lake
from etl.lake.seen_recheck import SeenRecheck, seen_ids
from etl.lake.store import publish_interval
from etl.lake.tables import read_articles
from etl.records import Interval
from tests.support.article_factory import batches, make_article, prose


def _iv(day: int, hour: int) -> Interval:
    start = datetime(2026, 11, day, hour, tzinfo=UTC)
    return Interval(start, start + timedelta(hours=1))


class Killed(Exception):
    pass


class _KilledAtIndex:
    """A lake whose process dies when it puts a key index."""

    def __init__(self, inner: Lake) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_file(self, key: str, path: Any) -> None:
        if key.startswith("_index/"):
            raise Killed(key)
        self.inner.put_file(key, path)


def test_a_rerun_killed_before_its_index_leaves_no_old_index_beside_new_shards(
    tmp_path: Path,
) -> None:
    """Hour 1 published 3 articles; its rerun (2 more, fetched once their URLs recovered) put
    its shard and died before its index: the old index (3 ids) stood for the new shard (5
    rows), so the seen index lacked 2 visible articles and the next hour re-published them."""
    lake = open_lake(str(tmp_path / "lake"))
    arts = [make_article(f"https://wire.example.com/{i}", text=prose(i, 60)) for i in range(5)]
    publish_interval(lake, _iv(25, 1), batches(arts[:3], batch_rows=50))
    with pytest.raises(Killed):
        publish_interval(cast(Lake, _KilledAtIndex(lake)), _iv(25, 1), batches(arts, batch_rows=50))
    visible = set(cast("list[str]", read_articles(lake).column("article_id").to_pylist()))
    assert len(visible) == 5
    assert seen_ids(lake, days=1, exclude=_iv(26, 5)) == visible
    # the next hour lists the same 5 articles: its publish re-checks the seen index
    later = publish_interval(
        lake, _iv(25, 2), batches(arts, batch_rows=50), recheck=SeenRecheck(days=1)
    )
    assert later.articles == 0
    ids = cast("list[str]", read_articles(lake).column("article_id").to_pylist())
    assert sorted(ids) == sorted(visible)  # each once


def test_a_rerun_with_fewer_shards_killed_at_its_index_leaves_no_shard_the_index_lacks(
    tmp_path: Path,
) -> None:
    """Hour 1 published 6 articles in 3 shards; its rerun wrote 2 other articles in 1 shard and
    died once its index was in, before its stale deletes: shards 1 and 2 of the first run
    (their ids not in the new index) stood beside it: visible rows the seen index lacked. The
    stale shards now go before the index."""
    lake = open_lake(str(tmp_path / "lake"))
    arts = [make_article(f"https://wire.example.com/{i}", text=prose(i, 60)) for i in range(8)]
    first = publish_interval(lake, _iv(25, 1), batches(arts[:6], batch_rows=50), n_shards=3)
    assert len(first.shards) == 3

    class _KilledAfterIndex(_KilledAtIndex):
        def put_file(self, key: str, path: Any) -> None:
            self.inner.put_file(key, path)
            if key.startswith("_index/"):
                raise Killed(key)

    with pytest.raises(Killed):
        publish_interval(cast(Lake, _KilledAfterIndex(lake)), _iv(25, 1),
                         batches(arts[6:], batch_rows=50), n_shards=1)  # fmt: skip
    visible = set(cast("list[str]", read_articles(lake).column("article_id").to_pylist()))
    assert seen_ids(lake, days=1, exclude=_iv(26, 5)) == visible
