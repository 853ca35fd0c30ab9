"""Compaction (etl.lake.compact, etl.lake.dayview): atomic, idempotent, reruns of a compacted day, a
concurrent reader, near-duplicates linked, a mixed v1+v2 day. Local and S3 (moto) lakes."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from etl.article.deduplication import dedupe
from etl.article.normalization import hamming
from etl.cli import app
from etl.errors import StoreError
from etl.lake.base import Lake
from etl.lake.compact import compact_day
from etl.lake.dayview import visible_article_keys
from etl.lake.layout import pointer_key
from etl.lake.neardup import link_near_duplicates
from etl.lake.opener import open_lake
from etl.lake.query import run_query
from etl.lake.seen_recheck import seen_ids
from etl.lake.settings import LakeSettings
from etl.lake.store import publish_interval
from etl.lake.tables import read_articles
from etl.records import Interval
from etl.schema import article_schema
from tests.support.article_factory import batches, make_article, prose
from tests.support.s3_server import CREDENTIALS, REGION

DT = "2026-11-25"


def _iv(hour: int) -> Interval:
    start = datetime(2026, 11, 25, hour, tzinfo=UTC)
    return Interval(start, start + timedelta(hours=1))


def _arts(hour: int, n: int, source: str = "wire") -> list[Any]:
    return [
        make_article(
            f"https://{source}.example.com/{hour}/{i}",
            text=prose(hour * 1000 + i, 600 if (hour, i) == (1, 0) else 120),
            source_id=source,
            published=datetime(2026, 11, 25, hour, i % 60, tzinfo=UTC),
            seed=hour * 1000 + i,
        )
        for i in range(n)
    ]


def _syndicated(hour: int) -> Any:
    """A copy of the story ``_arts(1, ...)[0]`` on another site, one word changed."""
    words = prose(1000, 600).split()
    words[300] = "changed"  # simhash distance 2 from the original
    return make_article(
        f"https://copy.example.com/{hour}/syndicated",
        text=" ".join(words),
        source_id="copier",
        published=datetime(2026, 11, 25, hour, 30, tzinfo=UTC),
    )


def _v1_file(lake: Lake, hour: int, n: int) -> None:
    v1 = article_schema(1)
    table = pa.Table.from_batches(batches(_arts(hour, n, "old"), batch_rows=50))
    table = pa.Table.from_arrays([table.column(f.name) for f in v1], schema=v1)
    idx = v1.get_field_index("schema_version")
    table = table.set_column(idx, "schema_version", pa.array([1] * n, pa.int32()))
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    lake.put_bytes(f"articles/dt={DT}/{_iv(hour).id}-000.parquet", buf.getvalue())


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    if request.param == "local":
        return open_lake(str(tmp_path / "lake"))
    server = request.getfixturevalue("s3_server")
    bucket = server.new_bucket()
    return open_lake(
        LakeSettings(
            uri=f"s3://{bucket}/news",
            endpoint_url=server.endpoint,
            region=REGION,
            access_key_id=CREDENTIALS["aws_access_key_id"],
            secret_access_key=CREDENTIALS["aws_secret_access_key"],
        )
    )


def _ids(lake: Lake) -> list[str]:
    return sorted(cast("list[str]", read_articles(lake, DT).column("article_id").to_pylist()))


def _day(lake: Lake) -> None:
    publish_interval(lake, _iv(1), batches(_arts(1, 8), batch_rows=50), n_shards=2)
    publish_interval(lake, _iv(2), batches([*_arts(2, 6), _syndicated(2)], batch_rows=50))
    publish_interval(lake, _iv(3), batches(_arts(3, 5, "other"), batch_rows=50))
    _v1_file(lake, 4, 3)  # written before schema v2


def test_compaction_merges_sorts_links_and_switches(lake: Lake) -> None:
    _day(lake)
    before = _ids(lake)
    seen_before = seen_ids(lake, days=1, exclude=_iv(20), with_urls=True)
    assert len(before) == 23 and len(set(before)) == 23
    result = compact_day(lake, DT)
    assert not result.skipped and result.rows == 23 and len(result.files) == 1
    assert sorted(result.replaced) == sorted(_iv(h).id for h in (1, 2, 3, 4))
    assert visible_article_keys(lake, DT) == list(result.files)
    # the hourly files and their indexes are gone; the compacted index replaces them
    assert lake.list(f"articles/dt={DT}/") == list(result.files)
    assert [k.rsplit("/", 1)[1] for k in lake.list(f"_index/dt={DT}/")] == [
        f"compact-{result.generation}.parquet"
    ]
    assert _ids(lake) == before
    assert seen_ids(lake, days=1, exclude=_iv(20), with_urls=True) == seen_before

    table = pq.read_table(pa.BufferReader(lake.get_bytes(result.files[0])))
    assert table.schema.equals(article_schema(), check_metadata=True)
    order = list(
        zip(
            table.column("source_id").to_pylist(),
            table.column("published_at").to_pylist(),
            strict=True,
        )
    )
    assert order == sorted(order)
    # the syndicated copy links to the original; nothing else is linked; v1 rows have nulls
    rows = {
        r["url"]: r
        for r in table.select(["url", "article_id", "duplicate_of", "schema_version"]).to_pylist()
    }
    original = rows["https://wire.example.com/1/0"]
    assert rows["https://copy.example.com/2/syndicated"]["duplicate_of"] == original["article_id"]
    assert (
        sum(r["duplicate_of"] is not None for r in rows.values()) == 1 == result.duplicates_linked
    )
    assert sum(r["schema_version"] == 1 for r in rows.values()) == 3

    again = compact_day(lake, DT)  # idempotent
    assert (
        again.skipped
        and again.deleted == ()
        and visible_article_keys(lake, DT) == list(result.files)
    )


def test_rerun_and_backfill_of_a_compacted_day(lake: Lake) -> None:
    _day(lake)
    compact_day(lake, DT)
    before = _ids(lake)

    def rerun(hour: int, arts: list[Any]) -> None:  # what the runner does: seen index, dedupe
        seen = seen_ids(lake, days=1, exclude=_iv(hour))
        publish_interval(lake, _iv(hour), dedupe(batches(arts, batch_rows=50), seen=seen))

    rerun(2, [*_arts(2, 6), *_arts(2, 9)[6:]])  # hour 2 again: 3 articles it lacked before
    rerun(9, _arts(9, 4))  # a backfill of an hour never run
    after = _ids(lake)
    assert len(after) == len(set(after)) == len(before) + 7
    assert set(before) < set(after)
    pointer = lake.get_bytes(pointer_key(DT))
    assert _iv(2).id.encode() not in pointer.split(b'"replaced"')[1]  # released
    second = compact_day(lake, DT)
    assert sorted(second.replaced) == sorted([_iv(2).id, _iv(9).id])
    assert _ids(lake) == after and len(lake.list(f"articles/dt={DT}/")) == 1


def test_crash_before_the_switch_changes_nothing_readers_see(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    _day(lake)
    before = _ids(lake)
    hourly = lake.list(f"articles/dt={DT}/")

    class Crash(Exception):
        pass

    class Crashing:
        def __init__(self, inner: Lake) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def put_bytes(self, key: str, data: bytes) -> None:
            if key == pointer_key(DT):
                raise Crash(key)
            self.inner.put_bytes(key, data)

    with pytest.raises(Crash):
        compact_day(Crashing(lake), DT)
    assert len(lake.list(f"articles/dt={DT}/")) == len(hourly) + 1  # an orphan generation
    assert visible_article_keys(lake, DT) == hourly and _ids(lake) == before
    _, rows = run_query(
        str(tmp_path / "lake"), "SELECT count(*), count(DISTINCT article_id) FROM articles"
    )
    assert rows == [(23, 23)]
    result = compact_day(lake, DT)
    assert lake.list(f"articles/dt={DT}/") == list(result.files)  # orphan cleaned up
    assert _ids(lake) == before


def test_a_concurrent_reader_never_sees_a_row_twice_or_missing(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    lake = open_lake(str(root))
    _day(lake)
    errors: list[BaseException] = []
    counts: list[int] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                _, rows = run_query(
                    str(root), "SELECT count(*), count(DISTINCT article_id) FROM articles"
                )
                total, distinct = rows[0]
                assert total == distinct, rows  # never a row twice
                assert not counts or total >= counts[-1], (counts[-1], total)  # never missing
                counts.append(total)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for hour in range(10, 14):
            publish_interval(lake, _iv(hour), batches(_arts(hour, 4), batch_rows=50))
            compact_day(lake, DT)
    finally:
        done.set()
        thread.join()
    assert not errors, errors[0]
    assert len(counts) >= 2 and counts[-1] == 23 + 16


def test_near_duplicate_links_chain_to_the_first() -> None:
    t = datetime(2026, 11, 25, tzinfo=UTC)
    keys = pa.table(
        {
            "article_id": ["c", "a", "b", "z"],
            "simhash": [0b111, 0b0, 0b11, -1],
            "published_at": pa.array(
                [t + timedelta(hours=2), t, t + timedelta(hours=1), t], pa.timestamp("us", tz="UTC")
            ),
            "fetched_at": pa.array([t, t, t, t], pa.timestamp("us", tz="UTC")),
        }
    )
    assert hamming(0b111, 0) == 3
    assert link_near_duplicates(keys) == {"b": "a", "c": "a"}


def test_compact_cli(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    _day(lake)
    run = CliRunner().invoke(app, ["compact", "--day", DT, "--lake", str(tmp_path / "lake")])
    assert run.exit_code == 0, run.stderr
    assert (
        f"dt={DT}: 23 rows from 4 intervals into 1 file(s), 1 near-duplicates linked" in run.stdout
    )
    again = CliRunner().invoke(app, ["compact", "--day", DT, "--lake", str(tmp_path / "lake")])
    assert again.exit_code == 0 and "nothing new to compact" in again.stdout
    bad = CliRunner().invoke(app, ["compact", "--day", "yesterday", "--lake", str(tmp_path)])
    assert bad.exit_code == 2 and "not a date" in bad.stderr


def test_unreadable_pointer_is_a_store_error(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    _day(lake)
    lake.put_bytes(pointer_key(DT), b"{not json")
    with pytest.raises(StoreError, match=r"_compact/dt=2026-11-25.json: not a compaction pointer"):
        visible_article_keys(lake, DT)


def test_two_compactions_of_one_day_at_once(tmp_path: Path) -> None:
    """The later generation wins; the loser removes its own files; no row lost or doubled.
    (Between a compaction's last check of the pointer and its switch remains a window of one
    request; the DAG runs one compaction at a time.)"""
    lake = open_lake(str(tmp_path / "lake"))
    _day(lake)
    before = _ids(lake)
    other: list[Any] = []

    class Racing:  # while this compaction writes its files, another one runs from start to end
        def __init__(self, inner: Lake) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def put_file(self, key: str, path: Any) -> None:
            self.inner.put_file(key, path)
            if key.startswith(f"_index/dt={DT}/compact-") and not other:
                import time

                time.sleep(1.1)  # a later generation id
                other.append(compact_day(self.inner, DT))

    mine = compact_day(Racing(lake), DT)
    assert mine.skipped and mine.generation == other[0].generation
    assert lake.list(f"articles/dt={DT}/") == list(other[0].files)
    assert _ids(lake) == before


def test_compacted_files_keep_prose_in_a_fast_codec(tmp_path: Path) -> None:
    """Compacted files decode faster than the hourly ones: text, description and title are LZ4
    (zstd decompression was most of a full-day scan), the other columns zstd as before."""
    lake = open_lake(str(tmp_path / "lake"))
    _day(lake)
    result = compact_day(lake, DT)
    meta = pq.ParquetFile(tmp_path / "lake" / result.files[0]).metadata
    codecs = {meta.schema.column(i).path: meta.row_group(0).column(i).compression
              for i in range(meta.num_columns)}  # fmt: skip
    assert {codecs[c] for c in ("text", "description", "title")} == {"LZ4"}, codecs  # LZ4_RAW
    assert codecs["article_id"] == codecs["source_id"] == "ZSTD", codecs
    assert sorted(map(str, read_articles(lake, DT).column("article_id").to_pylist())) == _ids(lake)


def test_a_day_is_spread_over_row_groups_every_scan_thread_can_take(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day larger than MIN_ROW_GROUPS x MIN_ROW_GROUP_BYTES is written as at least
    MIN_ROW_GROUPS row groups of similar size (engines scan one row group per thread), rows in
    order across them; a small day is not shredded below MIN_ROW_GROUP_BYTES."""
    import etl.lake.compact_files as compact

    lake = open_lake(str(tmp_path / "lake"))
    _day(lake)
    before = _ids(lake)
    monkeypatch.setattr(compact, "MIN_ROW_GROUP_BYTES", 1024)
    monkeypatch.setattr(compact, "MIN_ROW_GROUPS", 4)
    result = compact_day(lake, DT)
    meta = pq.ParquetFile(tmp_path / "lake" / result.files[0]).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert 4 <= len(sizes) <= 6, sizes  # ~4, one more where a batch boundary falls
    assert max(sizes) <= 2 * (sum(sizes) // 4), sizes
    assert _ids(lake) == before
    table = pq.read_table(tmp_path / "lake" / result.files[0], columns=["source_id"])
    sources = table.column("source_id").to_pylist()
    assert sources == sorted(sources, key=lambda s: (s is None, s))  # the sort spans groups

    assert compact.row_group_bytes(10 * 2**30) == compact.ROW_GROUP_BYTES  # capped, big days
    monkeypatch.setattr(compact, "MIN_ROW_GROUP_BYTES", 2**20)
    assert compact.row_group_bytes(3 * 2**20) == 2**20  # a small day: groups of the floor
