"""The lake and the interval publish. Every test taking the ``lake`` fixture runs twice: against a
LocalLake in a temp folder and against an S3Lake on the session's moto server
(tests/support/s3_server.py), opened the way the pipeline opens it (``open_lake(LakeSettings)``).
S3-only behaviour (multipart, checksums, addressing, client configuration, error mapping) is at the
end."""

from __future__ import annotations

import base64
import os
import shutil
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import boto3
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, EndpointConnectionError

from etl.article.normalization import article_id
from etl.config import load_settings
from etl.errors import StoreError
from etl.lake.base import Lake
from etl.lake.local import LocalLake
from etl.lake.manifest import read_manifest
from etl.lake.opener import open_lake
from etl.lake.s3 import S3Lake, _store_error
from etl.lake.seen_recheck import seen_ids
from etl.lake.settings import LakeSettings
from etl.lake.store import publish_interval, shard_of
from etl.lake.tables import read_articles
from etl.records import Interval
from etl.schema import article_schema, fetch_log_schema
from tests.support.article_factory import DT, batches, make_article
from tests.support.lake_helpers import RecordingLake
from tests.support.s3_server import CREDENTIALS, REGION, free_port

H13 = Interval(datetime(2026, 11, 25, 13, tzinfo=UTC), datetime(2026, 11, 25, 14, tzinfo=UTC))
H14 = Interval(datetime(2026, 11, 25, 14, tzinfo=UTC), datetime(2026, 11, 25, 15, tzinfo=UTC))
MiB = 1024 * 1024


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


def _s3_settings(endpoint: str, uri: str, **kw: Any) -> LakeSettings:
    return LakeSettings(
        uri=uri,
        endpoint_url=endpoint,
        region=REGION,
        access_key_id=CREDENTIALS["aws_access_key_id"],
        secret_access_key=CREDENTIALS["aws_secret_access_key"],
        **kw,
    )


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    """An empty lake: a local folder, or ``s3://<new bucket>/news`` on the moto server with an
    object outside the prefix (which the lake must never list, read or delete)."""
    if request.param == "local":
        return open_lake(str(tmp_path / "lake"))
    server = request.getfixturevalue("s3_server")
    bucket = server.new_bucket()
    server.client().put_object(Bucket=bucket, Key="outside/prefix.txt", Body=b"not ours")
    return open_lake(_s3_settings(server.endpoint, f"s3://{bucket}/news"))


def _snapshot(lake: Lake) -> dict[str, bytes]:
    return {k: lake.get_bytes(k) for k in lake.list()}


# --- the Lake interface, both sides --------------------------------------------------------


def test_lake_roundtrip(lake: Lake, tmp_path: Path) -> None:
    lake.put_bytes("a/b/c.txt", b"one")
    lake.put_bytes("a/d.txt", b"two")
    src = tmp_path / "src.bin"
    src.write_bytes(b"three" * 1000)
    lake.put_file("x/y.bin", src)
    lake.put_bytes("a/d.txt", b"two again")  # overwrite
    assert lake.get_bytes("a/b/c.txt") == b"one"
    assert lake.get_bytes("a/d.txt") == b"two again"
    assert lake.get_bytes("x/y.bin") == b"three" * 1000
    assert lake.list() == ["a/b/c.txt", "a/d.txt", "x/y.bin"]
    assert lake.list("a/") == ["a/b/c.txt", "a/d.txt"]
    assert lake.list("a/b") == ["a/b/c.txt"]  # string prefix, as on S3
    assert lake.list("nothing/") == []
    assert lake.exists("a/d.txt") and not lake.exists("a/zzz") and not lake.exists("a")
    assert lake.uri_for("a/d.txt").endswith("/a/d.txt")
    lake.delete(["a/d.txt", "a/missing"])
    lake.delete([])
    assert lake.list("a/") == ["a/b/c.txt"]
    with pytest.raises(StoreError) as info:
        lake.get_bytes("a/d.txt")
    assert info.value.kind == "not-found" and not info.value.transient
    assert "a/d.txt" in str(info.value)
    with pytest.raises(StoreError, match="cannot read file"):
        lake.put_file("x/z.bin", tmp_path / "no-such-file")
    assert not lake.exists("x/z.bin")


def test_lake_uris(lake: Lake, tmp_path: Path) -> None:
    if isinstance(lake, LocalLake):
        assert lake.uri == str(tmp_path / "lake")
        assert lake.uri_for("a/d.txt") == str(tmp_path / "lake" / "a" / "d.txt")
    else:
        assert lake.uri.startswith("s3://lake-") and lake.uri.endswith("/news")
        assert lake.uri_for("a/d.txt") == f"{lake.uri}/a/d.txt"


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", "a//b", "./a", "a\\b", "a/"])
def test_invalid_keys(lake: Lake, bad: str) -> None:
    with pytest.raises(StoreError, match="invalid lake key"):
        lake.put_bytes(bad, b"x")


def test_open_lake_uris(tmp_path: Path) -> None:
    assert isinstance(open_lake(f"file://{tmp_path}"), LocalLake)
    assert open_lake(f"file://{tmp_path}").uri == str(tmp_path)
    assert isinstance(open_lake(LakeSettings(uri=str(tmp_path))), LocalLake)
    with pytest.raises(StoreError, match="unsupported"):
        open_lake("gs://bucket/x")
    with pytest.raises(StoreError, match="bucket"):
        open_lake("s3:///nobucket")
    with pytest.raises(StoreError, match="empty"):
        open_lake("")


# --- the local side: atomic writes ---------------------------------------------------------


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


# --- publish, both sides -------------------------------------------------------------------


def test_publish_writes_layout_and_manifest(lake: Lake) -> None:
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
    assert lake.list() == sorted(
        [
            *shard_keys,
            f"fetch_log/dt={DT}/{iid}.parquet",
            f"_index/dt={DT}/{iid}.parquet",
            f"_runs/{iid}.json",
        ]
    )
    assert m.index is not None and m.index.key == f"_index/dt={DT}/{iid}.parquet"
    index = pq.read_table(pa.BufferReader(lake.get_bytes(m.index.key)))
    assert index.column_names == ["article_id", "url", "canonical_url", "content_hash", "simhash"]
    assert m.index.rows == index.num_rows == 10
    stored = read_manifest(lake, H13)
    assert stored is not None
    assert (
        stored["articles"] == 10
        and stored["schema_version"] == 2
        and stored["extra"] == {"run": "r1"}
    )
    assert stored["fetch_log"]["rows"] == 1
    assert [s["bytes"] for s in stored["shards"]] == [len(lake.get_bytes(k)) for k in shard_keys]
    for key in shard_keys:
        data = pa.BufferReader(lake.get_bytes(key))
        pf = pq.ParquetFile(data)
        assert pf.schema_arrow.equals(article_schema(), check_metadata=True)
        col = pf.metadata.row_group(0).column(0)
        assert col.compression == "ZSTD" and col.is_stats_set
        ids = cast("list[str]", pf.read(columns=["article_id"]).column(0).to_pylist())
        shard = int(key[-11:-8])
        assert all(shard_of(i, 4) == shard for i in ids)
    log_file = pq.ParquetFile(pa.BufferReader(lake.get_bytes(f"fetch_log/dt={DT}/{iid}.parquet")))
    assert log_file.schema_arrow.equals(fetch_log_schema())


def test_manifest_is_written_last_and_stale_objects_go_before_it(lake: Lake) -> None:
    log = fetch_log_schema().empty_table()
    first = publish_interval(lake, H13, batches(_arts(20)), n_shards=4, fetch_log=log)
    rec = RecordingLake(lake)
    second = publish_interval(rec, H13, batches(_arts(20)), n_shards=2)
    new = [s.key for s in second.shards]
    assert first.fetch_log is not None
    shards = tuple(sorted({s.key for s in first.shards} - set(new)))
    stale = tuple(sorted({*shards, first.fetch_log.key}))
    assert len(stale) == 3
    index = f"_index/dt={DT}/{H13.id}.parquet"
    assert rec.calls == [
        ("delete", (index,)),  # the old index first: the seen index reads the shards meanwhile
        *(("put", k) for k in new),
        ("delete", shards),  # stale shards before the new index: it stands for every shard
        ("put", index),
        ("delete", (first.fetch_log.key,)),  # this run has none
        ("put", f"_runs/{H13.id}.json"),
    ]
    assert set(second.deleted) == set(stale)
    assert lake.list() == sorted([*new, index, f"_runs/{H13.id}.json"])


def test_shard_of_is_stable_and_spreads() -> None:
    ids = [article_id(f"https://example.com/{i}") for i in range(400)]
    first = [shard_of(i, 8) for i in ids]
    assert first == [shard_of(i, 8) for i in ids]
    assert set(first) == set(range(8))
    assert all(shard_of(i, 1) == 0 for i in ids)


def test_rerun_with_other_shard_counts_is_idempotent(lake: Lake) -> None:
    arts = _arts(30)
    expected = sorted(article_id(f"https://example.com/a/{i}") for i in range(30))
    publish_interval(lake, H14, batches(_arts(5, "other"), dt=DT))  # a neighbour, untouched
    neighbour = {k: lake.get_bytes(k) for k in lake.list() if H14.id in k}
    for n in (4, 1, 3, 3):
        m = publish_interval(lake, H13, batches(arts, batch_rows=7), n_shards=n)
        mine = [k for k in lake.list("articles/") if H13.id in k]
        assert mine == sorted(s.key for s in m.shards)  # no stale shards left
        table = read_articles(lake, DT)
        ids = sorted(i for i in table.column("article_id").to_pylist() if i in set(expected))
        assert ids == expected  # exactly one copy of each
        assert table.num_rows == 35
    assert {k: lake.get_bytes(k) for k in lake.list() if H14.id in k} == neighbour


def test_manifest_extra_can_be_computed_after_the_stream(lake: Lake) -> None:
    from etl.article.deduplication import dedupe

    arts = _arts(4)
    run = dedupe(batches([*arts, arts[0]]))
    m = publish_interval(lake, H13, run, manifest_extra=lambda: {"dedupe": run.stats.as_dict()})
    assert m.articles == 4
    assert m.extra["dedupe"]["rows_in"] == 5 and m.extra["dedupe"]["duplicate_id"] == 1
    stored = read_manifest(lake, H13)
    assert stored is not None and stored["extra"] == m.extra


def test_stale_shards_listed_in_manifest(lake: Lake) -> None:
    first = publish_interval(lake, H13, batches(_arts(20)), n_shards=3)
    second = publish_interval(lake, H13, batches(_arts(20)), n_shards=1)
    assert set(second.deleted) == {s.key for s in first.shards} - {second.shards[0].key}


def test_empty_interval_writes_manifest_and_removes_old_output(lake: Lake) -> None:
    log = fetch_log_schema().empty_table()
    publish_interval(lake, H13, batches(_arts(6)), n_shards=2, fetch_log=log)
    m = publish_interval(lake, H13, [])
    assert m.articles == 0 and m.shards == () and m.fetch_log is None
    assert lake.list() == [f"_runs/{H13.id}.json"]
    # 2 shards, the fetch log (the old index went before any write: not a stale object)
    assert len(m.deleted) == 3 and m.index is None
    assert read_articles(lake).num_rows == 0


def test_failed_input_stream_leaves_previous_output_intact(lake: Lake) -> None:
    publish_interval(lake, H13, batches(_arts(8)), n_shards=2)
    before = _snapshot(lake)

    def exploding() -> Iterator[pa.RecordBatch]:
        yield from batches(_arts(3, "new"))
        raise RuntimeError("extract crashed")

    with pytest.raises(RuntimeError, match="extract crashed"):
        publish_interval(lake, H13, exploding(), n_shards=1)
    assert _snapshot(lake) == before


def test_rows_must_match_schema_and_partition(lake: Lake) -> None:
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
    assert lake.list() == []
    with pytest.raises(ValueError, match="n_shards"):
        publish_interval(lake, H13, [], n_shards=0)


def test_duckdb_reads_the_lake_with_hive_partitioning(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    publish_interval(lake, H13, batches(_arts(4)), n_shards=2)
    publish_interval(lake, _interval(26, 0), batches(_arts(3, "b"), dt="2026-11-26"))
    rel = duckdb.sql(
        f"SELECT dt, count(*), count(DISTINCT article_id), min(schema_version) "
        f"FROM read_parquet('{tmp_path}/articles/*/*.parquet', hive_partitioning=true) "
        "GROUP BY dt ORDER BY dt"
    )
    assert rel is not None  # a SELECT always gives a relation
    rows = rel.fetchall()
    assert [(str(d), n, u, v) for d, n, u, v in rows] == [
        ("2026-11-25", 4, 4, 2),
        ("2026-11-26", 3, 3, 2),
    ]
    described = duckdb.sql(
        "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet("
        f"'{tmp_path}/articles/*/*.parquet', hive_partitioning=true, "
        "hive_types_autocast=false))"
    )
    assert described is not None
    types = dict(described.fetchall())
    assert types["dt"] == "VARCHAR" and types["simhash"] == "BIGINT"


# --- seen index, both sides ----------------------------------------------------------------


def test_seen_ids_never_include_the_running_interval(lake: Lake) -> None:
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


def test_read_articles_by_partition(lake: Lake) -> None:
    publish_interval(lake, H13, batches(_arts(3)), n_shards=2)
    publish_interval(lake, _interval(26, 0), batches(_arts(2, "b"), dt="2026-11-26"))
    assert read_articles(lake).num_rows == 5
    day = read_articles(lake, "2026-11-26")
    assert day.num_rows == 2 and set(day.column("dt").to_pylist()) == {"2026-11-26"}
    assert read_articles(lake, "2026-01-01").schema.equals(article_schema())


# --- S3 only: transfers, checksums, addressing, client configuration, errors ---------------


@pytest.fixture
def bucket(s3_server: Any) -> str:
    name: str = s3_server.new_bucket()
    return name


def _calls(lake: S3Lake, *operations: str) -> list[str]:
    """Record the S3 operations ``lake``'s client makes from now on."""
    seen: list[str] = []
    for op in operations:
        lake.client.meta.events.register(
            f"before-call.s3.{op}", lambda model, **kw: seen.append(model.name)
        )
    return seen


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_s3_multipart_above_threshold_with_checksums(
    s3_server: Any, bucket: str, tmp_path: Path
) -> None:
    settings = _s3_settings(
        s3_server.endpoint, f"s3://{bucket}", multipart_threshold_mb=5, multipart_chunk_mb=5
    )
    lake = open_lake(settings)
    assert isinstance(lake, S3Lake)
    calls = _calls(lake, "PutObject", "CreateMultipartUpload", "UploadPart")
    big, small = os.urandom(12 * MiB), os.urandom(4 * MiB)
    (tmp_path / "big").write_bytes(big)
    (tmp_path / "small").write_bytes(small)
    lake.put_file("big.bin", tmp_path / "big")
    assert calls == ["CreateMultipartUpload", *["UploadPart"] * 3]
    calls.clear()
    lake.put_file("small.bin", tmp_path / "small")
    lake.put_bytes("small-bytes.bin", small)
    assert calls == ["PutObject", "PutObject"]
    calls.clear()
    lake.put_bytes("big-bytes.bin", big)  # large byte strings go multipart too
    assert calls == ["CreateMultipartUpload", *["UploadPart"] * 3]

    client = s3_server.client()
    for key, data, parts in [
        ("big.bin", big, 3),
        ("big-bytes.bin", big, 3),
        ("small.bin", small, 0),
        ("small-bytes.bin", small, 0),
    ]:
        head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert head["ContentLength"] == len(data)
        assert head["ETag"].strip('"').endswith(f"-{parts}") == (parts > 0)  # multipart ETag
        assert "ChecksumCRC32" in head
        if not parts:  # a whole-object checksum S3 verified on upload
            assert head["ChecksumCRC32"] == _crc32(data)
        assert lake.get_bytes(key) == data  # read back with checksum validation on


def test_s3_client_configuration(s3_server: Any, bucket: str) -> None:
    settings = _s3_settings(
        s3_server.endpoint,
        f"s3://{bucket}/p",
        path_style=True,
        max_attempts=7,
        max_concurrency=4,
        multipart_threshold_mb=32,
        multipart_chunk_mb=8,
    )
    lake = open_lake(settings)
    assert isinstance(lake, S3Lake)
    config: Any = lake.client.meta.config  # botocore-stubs type its options as __init__ args only
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 7}
    assert config.s3 == {"addressing_style": "path"}
    assert config.request_checksum_calculation == "when_supported"
    assert lake.client.meta.region_name == REGION
    assert lake.transfer.multipart_threshold == 32 * MiB
    assert lake.transfer.multipart_chunksize == 8 * MiB
    assert lake.transfer.max_request_concurrency == 4
    auto = open_lake(_s3_settings(s3_server.endpoint, f"s3://{bucket}"))
    auto_config: Any = auto.client.meta.config if isinstance(auto, S3Lake) else None
    assert isinstance(auto, S3Lake) and auto_config.s3 == {"addressing_style": "auto"}


def test_s3_path_style_addressing(
    s3_server: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = open_lake(_s3_settings(s3_server.endpoint, f"s3://{bucket}/p", path_style=True))
    assert isinstance(lake, S3Lake)
    urls: list[str] = []
    lake.client.meta.events.register(
        "before-send.s3", lambda request, **kw: urls.append(request.url)
    )
    lake.put_bytes("k.txt", b"v")
    assert lake.get_bytes("k.txt") == b"v"
    assert urls and all(u.startswith(f"{s3_server.endpoint}/{bucket}/p/k.txt") for u in urls)

    # Against AWS itself (no endpoint) the style shows in the URL; presigning sends nothing.
    monkeypatch.delenv("AWS_ENDPOINT_URL")

    def url(**kw: Any) -> str:
        s3 = open_lake(LakeSettings(uri="s3://news-lake", region=REGION, **kw))
        assert isinstance(s3, S3Lake)
        return s3.client.generate_presigned_url(
            "get_object", Params={"Bucket": "news-lake", "Key": "k"}
        )

    assert url(path_style=True).startswith("https://s3.amazonaws.com/news-lake/k?")
    assert url().startswith("https://news-lake.s3.amazonaws.com/k?")
    minio = url(endpoint_url="http://minio:9000", path_style=True)
    assert minio.startswith("http://minio:9000/news-lake/k?")


def test_s3_open_lake_from_loaded_settings(s3_server: Any, bucket: str) -> None:
    env = {
        "NEWSETL_LAKE": f"s3://{bucket}/prod",
        "AWS_ENDPOINT_URL_S3": s3_server.endpoint,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        "AWS_REGION": REGION,
        "NEWSETL_S3_PATH_STYLE": "true",
    }
    settings = load_settings(env=env)
    assert settings.lake == f"s3://{bucket}/prod" == settings.lake_settings.uri
    lake = open_lake(settings.lake_settings)
    publish_interval(lake, H13, batches(_arts(3)))
    assert s3_server.client().list_objects_v2(Bucket=bucket)["KeyCount"] == 3
    conn = {
        "conn_type": "aws",
        "login": CREDENTIALS["aws_access_key_id"],
        "password": CREDENTIALS["aws_secret_access_key"],
        "extra": f'{{"endpoint_url": "{s3_server.endpoint}", "region_name": "{REGION}"}}',
    }
    via_conn = load_settings(env={}, lake=f"s3://{bucket}/prod", lake_conn=conn)
    assert read_articles(open_lake(via_conn.lake_settings)).num_rows == 3


def test_s3_open_lake_with_endpoint_url(s3_server: Any, bucket: str) -> None:
    lake = open_lake(f"s3://{bucket}", endpoint_url=s3_server.endpoint)  # creds from the env
    lake.put_bytes("k", b"v")
    assert lake.get_bytes("k") == b"v" and lake.uri == f"s3://{bucket}"


def test_s3_missing_bucket_is_a_terminal_store_error(s3_server: Any, tmp_path: Path) -> None:
    lake = open_lake(_s3_settings(s3_server.endpoint, "s3://no-such-bucket-here/x"))
    src = tmp_path / "f"
    src.write_bytes(b"x" * 100)
    writes: tuple[Callable[[], object], ...] = (
        lambda: lake.put_bytes("k", b"v"),
        lambda: lake.put_file("k", src),
    )
    for write in writes:
        with pytest.raises(StoreError, match=r"no-such-bucket-here.*NoSuchBucket") as info:
            write()
        assert not info.value.transient
    with pytest.raises(StoreError, match="NoSuchBucket"):
        lake.list()


def test_s3_unreachable_endpoint_is_transient(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    lake = open_lake(
        _s3_settings(endpoint, "s3://some-bucket/x", max_attempts=1, connect_timeout_s=2)
    )
    src = tmp_path / "f"
    src.write_bytes(b"x")
    for op in (
        lambda: lake.put_bytes("k", b"v"),
        lambda: lake.put_file("k", src),
        lambda: lake.get_bytes("k"),
        lambda: lake.exists("k"),
        lake.list,
        lambda: lake.delete(["k"]),
    ):
        with pytest.raises(StoreError) as info:
            op()
        assert info.value.transient, info.value


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        # the stubs require every ResponseMetadata key; the code under test reads only these
        cast(
            Any,
            {
                "Error": {"Code": code, "Message": "m"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
        ),
        "PutObject",
    )


@pytest.mark.parametrize(
    ("code", "status", "transient", "kind"),
    [
        ("SlowDown", 503, True, "store"),
        ("InternalError", 500, True, "store"),
        ("RequestTimeout", 400, True, "store"),
        ("AccessDenied", 403, False, "store"),
        ("NoSuchBucket", 404, False, "store"),
        ("NoSuchKey", 404, False, "not-found"),
    ],
)
def test_s3_error_classes(code: str, status: int, transient: bool, kind: str) -> None:
    err = _store_error("s3://b/k", "put", _client_error(code, status))
    assert (err.transient, err.kind) == (transient, kind)
    try:  # boto3's transfer manager wraps the ClientError; the class must survive that
        try:
            raise _client_error(code, status)
        except ClientError:
            raise S3UploadFailedError("Failed to upload")  # noqa: B904 - as boto3 does
    except S3UploadFailedError as exc:
        wrapped = _store_error("s3://b/k", "upload", exc)
    assert (wrapped.transient, wrapped.kind) == (transient, kind)
    conn = _store_error("s3://b/k", "put", EndpointConnectionError(endpoint_url="http://x"))
    assert conn.transient


def test_s3_bad_profile_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot create S3 client"):
        open_lake(LakeSettings(uri="s3://b", profile="no-such-profile-anywhere"))


def test_plain_boto3_client_still_accepted(s3_server: Any, bucket: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name=REGION, **CREDENTIALS)
    lake = open_lake(f"s3://{bucket}/news", client=client)
    assert isinstance(lake, S3Lake) and lake.client is client
    lake.put_bytes("a", b"1")
    assert lake.list() == ["a"]


def test_local_delete_removes_folders_left_empty(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    lake.put_bytes("_staging/i1/articles/a.parquet", b"x")
    lake.put_bytes("_staging/i1/fetch_log/b.parquet", b"y")
    lake.put_bytes("_staging/keep.txt", b"z")
    lake.delete(["_staging/i1/articles/a.parquet"])
    assert not (tmp_path / "lake/_staging/i1/articles").exists()
    assert (tmp_path / "lake/_staging/i1/fetch_log/b.parquet").is_file()
    lake.delete(["_staging/i1/fetch_log/b.parquet"])
    assert not (tmp_path / "lake/_staging/i1").exists()
    assert (tmp_path / "lake/_staging/keep.txt").is_file()  # a folder still in use stays
    assert (tmp_path / "lake").is_dir()


# --- the key index (etl.lake.keyindex) ------------------------------------------------------------


class CountingLake(RecordingLake):
    """Counts the bytes read through the lake (every read of the seen index goes through it
    once an index exists)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.read = 0
        self.gets: list[str] = []

    def get_bytes(self, key: str) -> bytes:
        data: bytes = self.inner.get_bytes(key)
        self.read += len(data)
        self.gets.append(key)
        return data


def _news(day: int, hour: int, n: int) -> list[Any]:
    """Articles of a realistic length (650 words: a typical news story)."""
    from tests.support.article_factory import prose

    return [
        make_article(
            f"https://news.example.com/2026/11/{day:02d}/story-{hour:02d}-{i}",
            text=prose(day * 10_000 + hour * 100 + i, 650),
        )
        for i in range(n)
    ]


def test_seen_index_reads_under_5_percent_of_the_article_bytes(lake: Lake) -> None:
    """A 15-day look-back builds from the key index: < 5 % of the bytes of the article files
    it stands for, and the same ids as reading the article files themselves."""
    article_bytes = 0
    for day in range(10, 26):  # 16 days; the interval being run is on the 25th
        for hour in (3, 15):
            m = publish_interval(
                lake, _interval(day, hour), batches(_news(day, hour, 50), dt=f"2026-11-{day:02d}")
            )
            article_bytes += sum(f.bytes for f in m.shards)
    run = _interval(25, 15)
    mine = publish_interval(lake, run, batches(_news(25, 15, 50)))
    article_bytes -= sum(f.bytes for f in mine.shards)
    counting = CountingLake(lake)
    ids = seen_ids(counting, days=15, exclude=run, with_urls=True)
    assert counting.read < 0.05 * article_bytes, (counting.read, article_bytes)
    assert all(k.startswith("_index/") for k in counting.gets)
    assert len(counting.gets) == 31 and f"_index/dt={DT}/{run.id}.parquet" not in counting.gets
    expected = {
        article_id(a.page.url) for d in range(10, 26) for h in (3, 15) for a in _news(d, h, 50)
    }
    expected -= {article_id(a.page.url) for a in _news(25, 15, 50)}
    assert ids == expected

    # an older lake without an index: the same ids, from the article files' key columns
    lake.delete(lake.list("_index/"))
    assert seen_ids(lake, days=15, exclude=run, with_urls=True) == ids
    assert seen_ids(lake, days=15, exclude=run) == ids


def test_index_follows_its_interval(lake: Lake) -> None:
    """A rerun replaces the index; an index without article files stands for nothing."""
    publish_interval(lake, H13, batches(_arts(5)), n_shards=2)
    publish_interval(lake, H13, batches(_arts(3, "b")))
    index = pq.read_table(pa.BufferReader(lake.get_bytes(f"_index/dt={DT}/{H13.id}.parquet")))
    assert sorted(cast("list[str]", index.column("article_id").to_pylist())) == sorted(
        article_id(f"https://example.com/b/{i}") for i in range(3)
    )
    assert len(seen_ids(lake, days=0, exclude=H14)) == 3
    lake.delete(lake.list("articles/"))  # articles gone, index left behind
    assert seen_ids(lake, days=0, exclude=H14) == frozenset()
