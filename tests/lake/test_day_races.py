"""Hostile review of compaction against the writers that share its day (issue 9): a rerun or a
backfill publishing an interval of the day while a compaction of it runs, and two compactions
at once. After each, every article is visible exactly once and the seen index (key index)
holds exactly the ids of the visible article files: an id missing there is a re-fetch, an
article missing from the files is lost.

The races are made deterministic by a lake wrapper that runs the other writer at a chosen step
of the compaction (its first compacted file written, its pointer switch)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from etl.article.deduplication import dedupe
from etl.errors import EtlError
from etl.lake.arrowfs import arrow_filesystem
from etl.lake.base import Lake
from etl.lake.compact import compact_day
from etl.lake.layout import pointer_key
from etl.lake.opener import open_lake
from etl.lake.query import run_query
from etl.lake.seen_recheck import SeenRecheck, seen_ids
from etl.lake.settings import LakeSettings
from etl.lake.store import publish_interval
from etl.lake.tables import read_articles
from etl.records import Interval
from tests.support.article_factory import batches, make_article, prose
from tests.support.s3_server import lake_settings

DT = "2026-11-25"


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str | LakeSettings:
    """The lake: a folder, or a prefix on the S3 server."""
    if request.param == "local":
        return str(tmp_path / "lake")
    server = request.getfixturevalue("s3_server")
    return lake_settings(server.endpoint, server.new_bucket())


def _iv(hour: int) -> Interval:
    start = datetime(2026, 11, 25, hour, tzinfo=UTC)
    return Interval(start, start + timedelta(hours=1))


def _arts(hour: int, first: int, n: int) -> list[Any]:
    return [
        make_article(
            f"https://wire.example.com/{hour}/{i}",
            text=prose(hour * 1000 + i, 80),
            source_id="wire",
            published=datetime(2026, 11, 25, hour, i, tzinfo=UTC),
        )
        for i in range(first, first + n)
    ]


def _publish(lake: Lake, hour: int, arts: list[Any]) -> None:
    """What a run (or a rerun, a backfill) of the hour does: seen index, dedupe, publish."""
    seen = seen_ids(lake, days=1, exclude=_iv(hour))
    rows = dedupe(batches(arts, batch_rows=50), seen=seen)
    publish_interval(lake, _iv(hour), rows, recheck=SeenRecheck(days=1))


def _day(lake: Lake) -> set[str]:
    for hour in (1, 2, 3):
        _publish(lake, hour, _arts(hour, 0, 4))
    return _visible_ids(lake)


def _visible_ids(lake: Lake) -> set[str]:
    ids = cast("list[str]", read_articles(lake, DT).column("article_id").to_pylist())
    assert len(ids) == len(set(ids)), "a row twice"
    return set(ids)


def _check(root: str | LakeSettings, expected: set[str]) -> None:
    """Every article exactly once (through ``newsetl query`` too), and the seen index of a run
    of another day agrees with the files."""
    lake = open_lake(root)
    _, rows = run_query(root, "SELECT count(*), count(DISTINCT article_id) FROM articles")
    assert rows == [(len(expected), len(expected))]
    assert _visible_ids(lake) == expected
    start = datetime(2026, 11, 26, 5, tzinfo=UTC)
    assert seen_ids(lake, days=1, exclude=Interval(start, start + timedelta(hours=1))) == expected


class _Hooked:
    """A lake that calls ``hook`` once, after (or, for the pointer, before) the first write
    whose key starts with ``prefix``."""

    def __init__(self, inner: Lake, prefix: str, hook: Callable[[], None]) -> None:
        self.inner, self.prefix, self.hook, self.fired = inner, prefix, hook, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _fire(self, key: str) -> None:
        if not self.fired and key.startswith(self.prefix):
            self.fired = True
            self.hook()

    def put_file(self, key: str, path: Any) -> None:
        self.inner.put_file(key, path)
        self._fire(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._fire(key)  # before: the other writer runs in the window before the switch
        self.inner.put_bytes(key, data)


def test_a_rerun_published_while_the_day_compacts_is_not_hidden(where: str | LakeSettings) -> None:
    """Hour 2 is rerun (3 articles it lacked) after the compaction read the day and before its
    switch: the compaction marks hour 2 replaced, which hid the rerun's new file (and its
    deletes then removed it): 3 articles lost, and the seen index lacks them (re-fetched)."""
    root = where
    lake = open_lake(root)
    before = _day(lake)
    new = _arts(2, 4, 3)
    rerun = lambda: _publish(lake, 2, [*_arts(2, 0, 4), *new])  # noqa: E731
    hooked = _Hooked(lake, f"articles/dt={DT}/compact-", rerun)
    compact_day(cast(Lake, hooked), DT)
    assert hooked.fired
    _check(root, before | {a["article_id"] for a in _rows(new)})


def test_a_rerun_of_a_compacted_day_during_its_next_compaction_stays_visible(
    where: str | LakeSettings,
) -> None:
    """The day is compacted; hour 9 is backfilled; a second compaction starts; meanwhile hour 2
    is rerun with new articles (publish takes hour 2 out of the pointer's replaced set). The
    second compaction then put a pointer built from the one it read first, hour 2 replaced
    again: the rerun's articles hidden, then deleted."""
    root = where
    lake = open_lake(root)
    before = _day(lake)
    compact_day(lake, DT)
    backfill = _arts(9, 0, 2)
    _publish(lake, 9, backfill)
    new = _arts(2, 4, 3)
    rerun = lambda: _publish(lake, 2, [*_arts(2, 0, 4), *new])  # noqa: E731
    hooked = _Hooked(lake, f"articles/dt={DT}/compact-", rerun)
    compact_day(cast(Lake, hooked), DT)
    assert hooked.fired
    _check(root, before | {a["article_id"] for a in _rows([*backfill, *new])})


def test_two_compactions_switching_at_once_never_point_at_deleted_files(
    where: str | LakeSettings,
) -> None:
    """`newsetl compact --day D` twice at once (a manual run beside the DAG): the second runs
    whole inside the first's window between its last pointer check and its switch. It deleted
    the first's generation as an older one; the first then switched to those deleted files:
    the day read as empty (every article lost to readers, the hourly files gone too)."""
    root = where
    lake = open_lake(root)
    before = _day(lake)
    ready = threading.Event()  # the other compaction finished, or waits for a lease
    errors: list[BaseException] = []

    def other() -> None:
        try:
            compact_day(cast(Lake, _Waiting(lake, ready)), DT)
        except BaseException as exc:
            errors.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=other)

    def start_other() -> None:
        thread.start()
        ready.wait()

    hooked = _Hooked(lake, pointer_key(DT), start_other)
    compact_day(cast(Lake, hooked), DT)
    thread.join()
    assert hooked.fired and not errors, errors
    _check(root, before)
    compact_day(lake, DT)  # and the next compaction of the day still finds every row
    _check(root, before)


class _Waiting:
    """A lake that sets ``ready`` when a lease it asks for is held by someone else."""

    def __init__(self, inner: Lake, ready: threading.Event) -> None:
        self.inner, self.ready = inner, ready

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        tag = self.inner.put_if_absent(key, data)
        if tag is None and key.startswith("_leases/"):
            self.ready.set()
        return tag


def _rows(arts: list[Any]) -> list[dict[str, Any]]:
    return [r for b in batches(arts, batch_rows=50) for r in b.to_pylist()]


class Killed(Exception):
    pass


class _KilledAt:
    """A lake whose process dies at the first delete of a key starting with ``prefix``."""

    def __init__(self, inner: Lake, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def delete(self, keys: Any) -> None:
        keys = list(keys)
        if any(k.startswith(self.prefix) for k in keys):
            raise Killed(keys[0])
        self.inner.delete(keys)


def test_a_rerun_killed_before_its_stale_deletes_on_a_compacted_day_shows_no_row_twice(
    where: str | LakeSettings,
) -> None:
    """A compaction died after its switch (hour 1's two hourly shards stayed, unread); hour 1 was
    then rerun with one shard and died before deleting its stale second shard. The rerun had
    already taken hour 1 out of the pointer's replaced set, so the old second shard, whose rows
    are in the compacted files too, was read beside them: rows twice."""
    root = where
    lake = open_lake(root)
    arts = _arts(1, 0, 8)
    publish_interval(lake, _iv(1), batches(arts, batch_rows=50), n_shards=2)
    publish_interval(lake, _iv(2), batches(_arts(2, 0, 3), batch_rows=50))
    before = _visible_ids(lake)
    with pytest.raises(Killed):  # after the switch, at the deletes of what it replaced
        compact_day(cast(Lake, _KilledAt(lake, f"articles/dt={DT}/")), DT)
    assert len(lake.list(f"articles/dt={DT}/{_iv(1).id}")) == 2
    seen = seen_ids(lake, days=1, exclude=_iv(1))
    rows = dedupe(batches(arts, batch_rows=50), seen=seen)
    with pytest.raises(Killed):  # the rerun, at the delete of its stale shard
        publish_interval(cast(Lake, _KilledAt(lake, f"articles/dt={DT}/")), _iv(1), rows)
    _check(root, before)
    _publish(lake, 1, arts)  # the rerun again, to its end
    _check(root, before)
    compact_day(lake, DT)
    _check(root, before)


class _RerunAfterListing:
    """A lake on which ``hook`` runs once, right after the day's article files are first listed."""

    def __init__(self, inner: Lake, hook: Callable[[], None]) -> None:
        self.inner, self.hook, self.fired = inner, hook, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def list(self, prefix: str = "") -> list[str]:
        keys = self.inner.list(prefix)
        if not self.fired and prefix == f"articles/dt={DT}/":
            self.fired = True
            self.hook()
        return keys


def test_a_file_a_rerun_removes_under_a_compaction_is_not_a_terminal_failure(
    where: str | LakeSettings,
) -> None:
    """Hour 2 (two shards) is rerun with one shard right after the compaction listed the day:
    the compaction then failed reading the shard the rerun deleted, with a terminal error (the
    news_compact task fails without retries). It must compact the day as it is now, or fail
    with a transient error (retried)."""
    lake = open_lake(where)
    for hour in (1, 3):
        _publish(lake, hour, _arts(hour, 0, 4))
    publish_interval(lake, _iv(2), batches(_arts(2, 0, 8), batch_rows=50), n_shards=2)
    before = _visible_ids(lake)

    def rerun() -> None:
        publish_interval(lake, _iv(2), batches(_arts(2, 0, 8), batch_rows=50), n_shards=1)

    racing = _RerunAfterListing(lake, rerun)
    try:
        compact_day(cast(Lake, racing), DT, alake=arrow_filesystem(lake))
    except EtlError as exc:
        assert exc.transient, exc
        compact_day(lake, DT)
    assert racing.fired
    _check(where, before)
