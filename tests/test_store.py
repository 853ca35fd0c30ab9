from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from article_factory import DT, batches, make_article

from etl.errors import StoreError
from etl.normalize import article_id
from etl.records import Interval
from etl.schema import article_schema, fetch_log_schema
from etl.store import (
    Lake,
    LocalLake,
    open_lake,
    publish_interval,
    read_articles,
    read_manifest,
    seen_ids,
    shard_of,
)

H13 = Interval(datetime(2026, 11, 25, 13, tzinfo=UTC), datetime(2026, 11, 25, 14, tzinfo=UTC))
H14 = Interval(datetime(2026, 11, 25, 14, tzinfo=UTC), datetime(2026, 11, 25, 15, tzinfo=UTC))


def _interval(day: int, hour: int) -> Interval:
    start = datetime(2026, 11, day, hour, tzinfo=UTC)
    return Interval(start, start + timedelta(hours=1))


def _arts(n: int, prefix: str = "a") -> list[Any]:
    return [
        make_article(f"https://example.com/{prefix}/{i}", seed=hash((prefix, i)) % 10**6)
        for i in range(n)
    ]


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _temp_files(root: Path) -> list[str]:
    return [f for f in _files(root) if Path(f).name.startswith(".")]


# --- local lake ----------------------------------------------------------------------------


def test_local_lake_roundtrip(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    lake.put_bytes("a/b/c.txt", b"one")
    lake.put_bytes("a/d.txt", b"two")
    src = tmp_path / "src.bin"
    src.write_bytes(b"three" * 1000)
    lake.put_file("x/y.bin", src)
    assert lake.get_bytes("a/b/c.txt") == b"one"
    assert lake.get_bytes("x/y.bin") == b"three" * 1000
    assert lake.list() == ["a/b/c.txt", "a/d.txt", "x/y.bin"]
    assert lake.list("a/") == ["a/b/c.txt", "a/d.txt"]
    assert lake.list("a/b") == ["a/b/c.txt"]  # string prefix, as on S3
    assert lake.list("nothing/") == []
    assert lake.exists("a/d.txt") and not lake.exists("a/zzz")
    assert lake.uri_for("a/d.txt") == str(tmp_path / "lake" / "a" / "d.txt")
    lake.delete(["a/d.txt", "a/missing"])
    assert lake.list("a/") == ["a/b/c.txt"]
    with pytest.raises(StoreError) as info:
        lake.get_bytes("a/d.txt")
    assert info.value.kind == "not-found" and "a/d.txt" in str(info.value)


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", "a//b", "./a", "a\\b", "a/"])
def test_invalid_keys(tmp_path: Path, bad: str) -> None:
    with pytest.raises(StoreError, match="invalid lake key"):
        LocalLake(tmp_path).put_bytes(bad, b"x")


def test_open_lake_uris(tmp_path: Path) -> None:
    assert isinstance(open_lake(f"file://{tmp_path}"), LocalLake)
    assert open_lake(f"file://{tmp_path}").uri == str(tmp_path)
    with pytest.raises(StoreError, match="unsupported"):
        open_lake("gs://bucket/x")
    with pytest.raises(StoreError, match="bucket"):
        open_lake("s3:///nobucket")


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    for i in range(3):
        lake.put_bytes("d/k.bin", bytes([i]) * 10)
    assert _files(tmp_path) == ["d/k.bin"]
    assert lake.get_bytes("d/k.bin") == b"\x02" * 10


def test_crash_mid_write_keeps_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = LocalLake(tmp_path)
    lake.put_bytes("d/k.bin", b"old")
    src = tmp_path / "new.bin"
    src.write_bytes(b"new" * 100_000)

    def half_then_crash(fsrc: Any, fdst: Any, length: int = 0) -> None:
        fdst.write(fsrc.read(1000))
        raise RuntimeError("writer died")

    monkeypatch.setattr(shutil, "copyfileobj", half_then_crash)
    with pytest.raises(RuntimeError, match="writer died"):
        lake.put_file("d/k.bin", src)
    assert lake.get_bytes("d/k.bin") == b"old"
    assert _temp_files(tmp_path) == []

    def no_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_fsync)
    with pytest.raises(StoreError, match="No space left"):
        lake.put_bytes("d/k.bin", b"newer")
    assert lake.get_bytes("d/k.bin") == b"old"
    assert _temp_files(tmp_path) == []


def test_list_skips_in_progress_temp_files(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    lake.put_bytes("d/k.bin", b"x")
    (tmp_path / "d" / ".k.bin.abc123.tmp").write_bytes(b"partial")
    assert lake.list("d/") == ["d/k.bin"]


# --- publish -------------------------------------------------------------------------------


def _publish_and_check(lake: Lake, n_shards: int, arts: list[Any]) -> None:
    m = publish_interval(lake, H13, batches(arts, batch_rows=3), n_shards=n_shards)
    assert m.articles == len(arts)
    assert len(m.shards) <= n_shards


def test_publish_writes_layout_and_manifest(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    log = pa.Table.from_pylist(
        [{"url": "https://example.com/x", "status": 404, "attempts": 1, "dt": DT}],
        schema=fetch_log_schema(),
    )
    m = publish_interval(
        lake, H13, batches(_arts(10)), n_shards=4, fetch_log=log, manifest_extra={"run": "r1"}
    )
    iid = H13.id
    assert iid == "20261125T1300Z-20261125T1400Z"
    shard_keys = [s.key for s in m.shards]
    assert all(k.startswith(f"articles/dt={DT}/{iid}-0") for k in shard_keys)
    assert sum(s.rows for s in m.shards) == m.articles == 10
    assert _files(tmp_path) == sorted(
        [*shard_keys, f"fetch_log/dt={DT}/{iid}.parquet", f"_runs/{iid}.json"]
    )
    stored = read_manifest(lake, H13)
    assert stored is not None
    assert (
        stored["articles"] == 10
        and stored["schema_version"] == 1
        and stored["extra"] == {"run": "r1"}
    )
    assert stored["fetch_log"]["rows"] == 1
    assert [s["bytes"] for s in stored["shards"]] == [
        (tmp_path / k).stat().st_size for k in shard_keys
    ]
    for key in shard_keys:
        path = tmp_path / key
        assert pq.read_schema(path).equals(article_schema(), check_metadata=True)
        meta = pq.ParquetFile(path).metadata
        col = meta.row_group(0).column(0)
        assert col.compression == "ZSTD" and col.is_stats_set
        ids = pq.read_table(path, columns=["article_id"]).column(0).to_pylist()
        shard = int(key[-11:-8])
        assert all(shard_of(i, 4) == shard for i in ids)
    assert pq.read_schema(tmp_path / f"fetch_log/dt={DT}/{iid}.parquet").equals(fetch_log_schema())


def test_shard_of_is_stable_and_spreads() -> None:
    ids = [article_id(f"https://example.com/{i}") for i in range(400)]
    first = [shard_of(i, 8) for i in ids]
    assert first == [shard_of(i, 8) for i in ids]
    assert set(first) == set(range(8))
    assert all(shard_of(i, 1) == 0 for i in ids)


def test_rerun_with_other_shard_counts_is_idempotent(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    arts = _arts(30)
    expected = sorted(article_id(f"https://example.com/a/{i}") for i in range(30))
    publish_interval(lake, H14, batches(_arts(5, "other"), dt=DT))  # a neighbour, untouched
    for n in (4, 1, 3, 3):
        m = publish_interval(lake, H13, batches(arts, batch_rows=7), n_shards=n)
        mine = [k for k in lake.list("articles/") if H13.id in k]
        assert mine == sorted(s.key for s in m.shards)  # no stale shards left
        table = read_articles(lake, DT)
        ids = sorted(i for i in table.column("article_id").to_pylist() if i in set(expected))
        assert ids == expected  # exactly one copy of each
        assert table.num_rows == 35
    assert _temp_files(tmp_path) == []


def test_manifest_extra_can_be_computed_after_the_stream(tmp_path: Path) -> None:
    from etl.dedupe import dedupe

    arts = _arts(4)
    run = dedupe(batches([*arts, arts[0]]))
    m = publish_interval(
        LocalLake(tmp_path), H13, run, manifest_extra=lambda: {"dedupe": run.stats.as_dict()}
    )
    assert m.articles == 4
    assert m.extra["dedupe"]["rows_in"] == 5 and m.extra["dedupe"]["duplicate_id"] == 1
    stored = read_manifest(LocalLake(tmp_path), H13)
    assert stored is not None and stored["extra"] == m.extra


def test_stale_shards_listed_in_manifest(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    first = publish_interval(lake, H13, batches(_arts(20)), n_shards=3)
    second = publish_interval(lake, H13, batches(_arts(20)), n_shards=1)
    assert set(second.deleted) == {s.key for s in first.shards} - {second.shards[0].key}


def test_empty_interval_writes_manifest_and_removes_old_output(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    log = fetch_log_schema().empty_table()
    publish_interval(lake, H13, batches(_arts(6)), n_shards=2, fetch_log=log)
    m = publish_interval(lake, H13, [])
    assert m.articles == 0 and m.shards == () and m.fetch_log is None
    assert _files(tmp_path) == [f"_runs/{H13.id}.json"]
    assert len(m.deleted) == 3
    assert read_articles(lake).num_rows == 0


def test_failed_input_stream_leaves_previous_output_intact(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    publish_interval(lake, H13, batches(_arts(8)), n_shards=2)
    before = {f: (tmp_path / f).read_bytes() for f in _files(tmp_path)}

    def exploding() -> Iterator[pa.RecordBatch]:
        yield from batches(_arts(3, "new"))
        raise RuntimeError("extract crashed")

    with pytest.raises(RuntimeError, match="extract crashed"):
        publish_interval(lake, H13, exploding(), n_shards=1)
    assert {f: (tmp_path / f).read_bytes() for f in _files(tmp_path)} == before


def test_rows_must_match_schema_and_partition(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    with pytest.raises(StoreError, match="other than the interval"):
        publish_interval(lake, H13, batches(_arts(2), dt="2026-11-24"))
    bad = pa.table({"article_id": ["x"], "dt": [DT], "junk": [1]}).to_batches()
    with pytest.raises(StoreError, match=r"article_id is .*expected.*not null.*missing url.*junk"):
        publish_interval(lake, H13, bad)
    null_url = pa.Table.from_pylist(
        [{"url": None, "attempts": 1, "dt": DT}], schema=fetch_log_schema()
    )
    with pytest.raises(StoreError, match="non-nullable columns: url"):
        publish_interval(lake, H13, [], fetch_log=null_url)
    good = batches(_arts(1))[0]
    swapped = good.select([1, 0, *range(2, good.num_columns)])
    with pytest.raises(StoreError, match="column order"):
        publish_interval(lake, H13, [swapped])
    assert _files(tmp_path) == []
    with pytest.raises(ValueError, match="n_shards"):
        publish_interval(lake, H13, [], n_shards=0)


def test_duckdb_reads_the_lake_with_hive_partitioning(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    publish_interval(lake, H13, batches(_arts(4)), n_shards=2)
    publish_interval(lake, _interval(26, 0), batches(_arts(3, "b"), dt="2026-11-26"))
    rows = duckdb.sql(
        f"SELECT dt, count(*), count(DISTINCT article_id), min(schema_version) "
        f"FROM read_parquet('{tmp_path}/articles/*/*.parquet', hive_partitioning=true) "
        "GROUP BY dt ORDER BY dt"
    ).fetchall()
    assert [(str(d), n, u, v) for d, n, u, v in rows] == [
        ("2026-11-25", 4, 4, 1),
        ("2026-11-26", 3, 3, 1),
    ]
    types = dict(
        duckdb.sql(
            "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet("
            f"'{tmp_path}/articles/*/*.parquet', hive_partitioning=true, "
            "hive_types_autocast=false))"
        ).fetchall()
    )
    assert types["dt"] == "VARCHAR" and types["simhash"] == "BIGINT"


# --- seen index ----------------------------------------------------------------------------


def test_seen_ids_never_include_the_running_interval(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    publish_interval(lake, H13, batches(_arts(3, "h13")), n_shards=2)
    publish_interval(lake, H14, batches(_arts(2, "h14")))
    publish_interval(lake, _interval(23, 5), batches(_arts(2, "old"), dt="2026-11-23"))
    publish_interval(lake, _interval(27, 5), batches(_arts(1, "later"), dt="2026-11-27"))

    def ids(prefix: str, n: int) -> set[str]:
        return {article_id(f"https://example.com/{prefix}/{i}") for i in range(n)}

    assert seen_ids(lake, days=0, exclude=H13) == ids("h14", 2)
    assert seen_ids(lake, days=0, exclude=H14) == ids("h13", 3)
    assert seen_ids(lake, days=1, exclude=H13) == ids("h14", 2)
    assert seen_ids(lake, days=2, exclude=H13) == ids("h14", 2) | ids("old", 2) | ids("later", 1)
    assert seen_ids(lake, days=2, exclude=_interval(20, 0)) == frozenset()
    with pytest.raises(ValueError, match="days"):
        seen_ids(lake, days=-1, exclude=H13)


def test_read_articles_by_partition(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    publish_interval(lake, H13, batches(_arts(3)), n_shards=2)
    publish_interval(lake, _interval(26, 0), batches(_arts(2, "b"), dt="2026-11-26"))
    assert read_articles(lake).num_rows == 5
    day = read_articles(lake, "2026-11-26")
    assert day.num_rows == 2 and set(day.column("dt").to_pylist()) == {"2026-11-26"}
    assert read_articles(lake, "2026-01-01").schema.equals(article_schema())


# --- S3 (moto server) ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3_lake(s3_endpoint: str, request: pytest.FixtureRequest) -> Lake:
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    bucket = "lake-" + request.node.name.replace("_", "-").lower()[:40]
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="outside/prefix.txt", Body=b"not ours")
    return open_lake(f"s3://{bucket}/news", client=client)


def test_s3_lake_roundtrip(s3_lake: Lake, tmp_path: Path) -> None:
    assert s3_lake.uri.endswith("/news")
    s3_lake.put_bytes("a/b.txt", b"one")
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 5000)
    s3_lake.put_file("a/c.bin", src)
    assert s3_lake.get_bytes("a/b.txt") == b"one"
    assert s3_lake.get_bytes("a/c.bin") == b"x" * 5000
    assert s3_lake.list() == ["a/b.txt", "a/c.bin"]  # keys outside the prefix are not listed
    assert s3_lake.exists("a/b.txt") and not s3_lake.exists("a/zzz")
    assert s3_lake.uri_for("a/b.txt").endswith("/news/a/b.txt")
    s3_lake.delete(["a/b.txt", "a/nothing"])
    assert s3_lake.list("a/") == ["a/c.bin"]
    with pytest.raises(StoreError) as info:
        s3_lake.get_bytes("a/b.txt")
    assert info.value.kind == "not-found" and not info.value.transient


def test_s3_publish_rerun_and_seen(s3_lake: Lake) -> None:
    arts = _arts(12)
    for n in (3, 1):
        publish_interval(s3_lake, H13, batches(arts), n_shards=n)
    publish_interval(s3_lake, H14, batches(_arts(2, "h14")))
    assert sorted(read_articles(s3_lake).column("article_id").to_pylist()) == sorted(
        {
            article_id(f"https://example.com/{p}/{i}")
            for p, n in (("a", 12), ("h14", 2))
            for i in range(n)
        }
    )
    assert s3_lake.list(f"articles/dt={DT}/{H13.id}") == [f"articles/dt={DT}/{H13.id}-000.parquet"]
    assert len(seen_ids(s3_lake, days=1, exclude=H14)) == 12
    manifest = json.loads(s3_lake.get_bytes(f"_runs/{H13.id}.json"))
    assert manifest["articles"] == 12 and len(manifest["deleted"]) == 2


def test_s3_missing_bucket_is_a_store_error(s3_endpoint: str) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    lake = open_lake("s3://no-such-bucket-here/x", client=client)
    with pytest.raises(StoreError, match="no-such-bucket-here"):
        lake.put_bytes("k", b"v")


def test_s3_open_lake_with_endpoint_url(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    lake = open_lake("s3://endpoint-test-bucket", endpoint_url=s3_endpoint)
    boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    ).create_bucket(Bucket="endpoint-test-bucket")  # fmt: skip
    lake.put_bytes("k", b"v")
    assert lake.get_bytes("k") == b"v" and lake.uri == "s3://endpoint-test-bucket"
