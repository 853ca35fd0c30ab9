"""Which article files readers see around a compaction (etl.lake.dayview), as a hostile reviewer
of issue 9 tries it: a reader whose listing and pointer read straddle a compaction's switch, a
pointer naming files that are gone, a pointer that is not one. Never a day read short."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from etl.errors import StoreError
from etl.lake.base import Lake
from etl.lake.compact import compact_day
from etl.lake.dayview import visible_article_keys
from etl.lake.layout import pointer_key
from etl.lake.opener import open_lake
from etl.lake.query import run_query
from etl.lake.seen_recheck import seen_ids
from etl.lake.store import publish_interval
from etl.lake.tables import read_articles
from etl.records import Interval
from tests.support.article_factory import batches, make_article, prose
from tests.support.cli_helpers import newsetl

DT = "2026-11-25"


def _iv(hour: int) -> Interval:
    start = datetime(2026, 11, 25, hour, tzinfo=UTC)
    return Interval(start, start + timedelta(hours=1))


def _day(lake: Lake) -> set[str]:
    ids: set[str] = set()
    for hour in (1, 2, 3):
        arts = [
            make_article(f"https://wire.example.com/{hour}/{i}", text=prose(hour * 100 + i, 60))
            for i in range(4)
        ]
        m = publish_interval(lake, _iv(hour), batches(arts, batch_rows=50))
        assert m.articles == 4
        ids |= {r["article_id"] for b in batches(arts, batch_rows=50) for r in b.to_pylist()}
    return ids


class _CompactsAfterListing:
    """A lake on which a compaction of the day runs whole right after the day is first listed
    (before the reader reads the day's pointer)."""

    def __init__(self, inner: Lake) -> None:
        self.inner, self.fired = inner, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _after(self, prefix: str) -> None:
        # the day's folder, the lake's, or (the seen index: one LIST a month) the day's month
        if not self.fired and prefix in (
            f"articles/dt={DT}/",
            "articles/",
            f"articles/dt={DT[:7]}",
        ):
            self.fired = True
            compact_day(self.inner, DT)

    def list(self, prefix: str = "") -> list[str]:
        keys = self.inner.list(prefix)
        self._after(prefix)
        return keys

    def list_versions(self, prefix: str = "") -> builtins.list[tuple[str, str]]:
        keys: builtins.list[tuple[str, str]] = self.inner.list_versions(prefix)  # type: ignore[attr-defined]
        self._after(prefix)
        return keys


def _other_day() -> Interval:
    start = datetime(2026, 11, 26, 5, tzinfo=UTC)
    return Interval(start, start + timedelta(hours=1))


@pytest.mark.parametrize("whole_lake", [False, True])
def test_a_reader_straddling_a_compaction_switch_reads_the_whole_day(
    tmp_path: Path, whole_lake: bool
) -> None:
    """It listed the hourly files, the compaction wrote its files, switched and deleted the
    hourly ones, then the reader read the pointer: hourly files replaced, compacted files not
    in its listing, so the day read as empty (a query short, a seen index without the day's
    ids, so a run re-fetched and re-published them)."""
    lake = open_lake(str(tmp_path / "lake"))
    ids = _day(lake)
    racing = _CompactsAfterListing(lake)
    keys = visible_article_keys(cast(Lake, racing), None if whole_lake else DT)
    assert racing.fired and keys and all("/compact-" in k for k in keys)
    racing = _CompactsAfterListing(open_lake(str(tmp_path / "lake2")))
    _day(racing.inner)
    got = cast("list[str]", read_articles(cast(Lake, racing), DT).column("article_id").to_pylist())
    assert racing.fired and sorted(got) == sorted(ids)
    racing = _CompactsAfterListing(open_lake(str(tmp_path / "lake3")))
    _day(racing.inner)
    assert seen_ids(cast(Lake, racing), days=1, exclude=_other_day()) == ids
    assert racing.fired


def test_a_pointer_naming_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    """A compacted file deleted by hand (or lost): the day silently read short before."""
    root = tmp_path / "lake"
    lake = open_lake(str(root))
    _day(lake)
    result = compact_day(lake, DT)
    lake.delete([result.files[0]])
    with pytest.raises(StoreError, match=r"compact-.*-000\.parquet: named by _compact/dt="):
        visible_article_keys(lake, DT)
    with pytest.raises(StoreError, match="named by"):
        seen_ids(lake, days=1, exclude=_other_day())
    for sql in (
        "SELECT count(*) FROM articles",
        f"SELECT count(*) FROM articles WHERE dt = '{DT}'",
    ):
        run = newsetl("query", "--lake", root, sql)
        assert run.exit_code == 2 and result.files[0] in run.stderr, run.stdout
    with pytest.raises(StoreError):
        run_query(str(root), "SELECT count(*) FROM articles")


@pytest.mark.parametrize(
    "garbage", [b'"x"', b"[]", b"null", b"{}", b'{"generation": "g"}', b'{"files": "a"}', b"7"]
)
def test_a_pointer_that_is_not_one_is_an_error_naming_its_key(
    tmp_path: Path, garbage: bytes
) -> None:
    """Valid JSON of the wrong shape was a KeyError/TypeError traceback, or (``{}``, ``[]``,
    ``null``) read as "not compacted" although the hourly files it replaced are gone."""
    root = tmp_path / "lake"
    lake = open_lake(str(root))
    _day(lake)
    compact_day(lake, DT)
    lake.put_bytes(pointer_key(DT), garbage)
    with pytest.raises(StoreError, match=r"_compact/dt=2026-11-25\.json: not a compaction pointer"):
        visible_article_keys(lake, DT)
    run = newsetl("query", "--lake", root, "SELECT count(*) FROM articles")
    assert run.exit_code == 2 and "_compact/dt=2026-11-25.json: not a compaction pointer" in (
        run.stderr
    ), run.stdout


def test_compaction_of_a_day_whose_pointer_names_a_missing_file_stops(tmp_path: Path) -> None:
    """The compaction read the day without the lost file and switched to a pointer without it:
    the day's count dropped for good, with no error anywhere."""
    lake = open_lake(str(tmp_path / "lake"))
    _day(lake)
    first = compact_day(lake, DT)
    lake.delete([first.files[0]])
    arts = [make_article("https://wire.example.com/9/0", text=prose(900, 60))]
    publish_interval(lake, _iv(9), batches(arts, batch_rows=50))  # something new to compact
    with pytest.raises(StoreError, match=r"named by _compact/dt=2026-11-25\.json but missing"):
        compact_day(lake, DT)
    assert lake.get_bytes(pointer_key(DT)).count(first.files[0].encode()) == 1  # unchanged
