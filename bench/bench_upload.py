"""Upload throughput of the S3 lake vs plain boto3, on a local S3 server (``make bench``).

Builds a ~200 MB Parquet interval (article rows of schema v1 with random-letter bodies, so zstd
cannot shrink them to nothing), starts moto's S3 server on 127.0.0.1 and, in the same run,
alternating, best of N each (N=7), publishes the interval with ``publish_interval`` to:

- ``lake``: an ``s3://`` lake opened from LakeSettings (adaptive retries, CRC32 checksums,
  TransferConfig). Its *write* figure is the time spent in the lake's S3 calls (the shard upload,
  the stale-object listing, the manifest);
- ``plain``: a stand-in lake whose ``put_file`` is a plain ``boto3.client("s3").upload_file``
  (boto3 defaults) and that does nothing else. Its figure is the time of that call.

Both sides upload the same bytes at the same point: the shard file publish has just encoded
(uploading a file moments after a 200 MB encode is measurably slower on a small machine than
uploading an old one, so both must start from that state). The end-to-end publish time (Parquet
encoding included) is printed for information.

Target (issue): lake write throughput >= 0.9 x plain. Exits 1 when missed.
Disk: only publish's temp copy of the interval while it runs (plus the server's objects, removed
at the end).

    uv run python bench/bench_upload.py [--mb 200] [--rounds 7] [--target 0.9]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etl.lake import Lake, LakeSettings, open_lake, publish_interval
from etl.records import Interval
from tests.support.article_factory import batches, make_article
from tests.support.s3_server import (
    AWS_TEST_ENV,
    AWS_UNSET,
    CREDENTIALS,
    REGION,
    MotoServer,
    no_proxy,
)

MiB = 1024 * 1024
INTERVAL = Interval(datetime(2026, 11, 25, 13, tzinfo=UTC), datetime(2026, 11, 25, 14, tzinfo=UTC))
TEXT_BYTES = 32 * 1024  # body length per article
COMPRESSED = 0.585  # Parquet bytes per text byte for these bodies (zstd level 3), measured
_LETTERS = np.frombuffer((b"etaoinshrdlucmfwypvbgkjqxz" + b" " * 6) * 8, dtype=np.uint8)


def articles_table(target_mb: int, seed: int = 7) -> pa.Table:
    """Rows of schema v1 (64 real normalized articles, tiled) with unique ids and random bodies."""
    template = pa.Table.from_batches(
        batches(
            [make_article(f"https://bench.example/t/{i}", seed=i) for i in range(64)], batch_rows=64
        )
    )
    n = max(1, int(target_mb * MiB / COMPRESSED / TEXT_BYTES))
    table = template.take(pa.array(np.arange(n) % template.num_rows, pa.int64()))
    rng = np.random.default_rng(seed)
    body = _LETTERS[np.frombuffer(rng.bytes(n * TEXT_BYTES), dtype=np.uint8)]
    offsets = np.arange(0, n * TEXT_BYTES + 1, TEXT_BYTES, dtype=np.int32)
    texts = pa.StringArray.from_buffers(n, pa.py_buffer(offsets.data), pa.py_buffer(body.data))
    urls = pa.array([f"https://bench.example/news/{i}" for i in range(n)])
    columns = {
        "article_id": pa.array([f"{i:032x}" for i in range(n)]),
        "url": urls,
        "canonical_url": urls,
        "text": texts,
    }
    for name, values in columns.items():
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), values)
    return table


def stream(table: pa.Table) -> Iterable[pa.RecordBatch]:
    return table.to_batches(max_chunksize=1000)


class TimedLake:
    """A Lake that adds up the wall time spent in the wrapped lake's calls (total and per call)."""

    def __init__(self, inner: Lake) -> None:
        self.inner, self.seconds = inner, 0.0
        self.calls: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                self.seconds += spent
                self.calls[name] = self.calls.get(name, 0.0) + spent

        return timed


class PlainUpload:
    """Stands in for the lake in a publish: ``put_file`` is a plain boto3 ``upload_file`` (timed);
    listing finds nothing, deletes and small puts (the manifest) are dropped."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket
        self.seconds, self.bytes = 0.0, 0
        self.uri = f"s3://{bucket}/plain"

    def put_file(self, key: str, path: str | os.PathLike[str]) -> None:
        started = time.perf_counter()
        self.client.upload_file(os.fspath(path), self.bucket, f"plain/{key}")
        self.seconds += time.perf_counter() - started
        self.bytes += Path(path).stat().st_size

    def put_bytes(self, key: str, data: bytes) -> None:
        pass

    def list(self, prefix: str = "") -> list[str]:
        return []

    def delete(self, keys: Iterable[str]) -> None:
        pass

    def exists(self, key: str) -> bool:
        return False

    def uri_for(self, key: str) -> str:
        return f"{self.uri}/{key}"


def offline_env() -> None:
    for name in AWS_UNSET:
        os.environ.pop(name, None)
    os.environ.update(AWS_TEST_ENV)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = no_proxy(os.environ.get("NO_PROXY"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200, help="size of the Parquet interval, MB")
    ap.add_argument("--rounds", type=int, default=7, help="timed runs of each side")
    ap.add_argument("--target", type=float, default=0.9, help="minimum lake/plain ratio")
    args = ap.parse_args(argv)
    offline_env()

    import boto3

    t0 = time.perf_counter()
    table = articles_table(args.mb)
    print(f"interval: {table.num_rows} articles (Arrow {table.nbytes / MiB:.0f} MiB), ", end="")
    print(f"built in {time.perf_counter() - t0:.1f}s")
    with MotoServer() as server:
        bucket = server.new_bucket("bench")
        client = boto3.client("s3", endpoint_url=server.endpoint, region_name=REGION, **CREDENTIALS)
        settings = LakeSettings(
            uri=f"s3://{bucket}/lake",
            endpoint_url=server.endpoint,
            region=REGION,
            access_key_id=CREDENTIALS["aws_access_key_id"],
            secret_access_key=CREDENTIALS["aws_secret_access_key"],
        )
        lake = open_lake(settings)
        sizes: set[int] = set()
        plain_s: list[float] = []
        write_s: list[float] = []
        other_s: list[float] = []
        total_s: list[float] = []

        def run(side: str) -> None:
            gc.collect()
            target: Any = PlainUpload(client, bucket) if side == "plain" else TimedLake(lake)
            started = time.perf_counter()
            m = publish_interval(target, INTERVAL, stream(table))
            total = time.perf_counter() - started
            sizes.add(m.shards[0].bytes)
            if isinstance(target, PlainUpload):
                sizes.add(target.bytes)
                plain_s.append(target.seconds)
            else:
                write_s.append(target.seconds)
                other_s.append(target.seconds - target.calls["put_file"])
                total_s.append(total)

        run("plain")  # warm-up: imports, connections, the server's first writes
        run("lake")
        for runs in (plain_s, write_s, other_s, total_s):
            runs.clear()
        for r in range(args.rounds):  # alternate which side goes first
            for side in ("plain", "lake") if r % 2 == 0 else ("lake", "plain"):
                run(side)
        for key in [k["Key"] for k in client.list_objects_v2(Bucket=bucket).get("Contents", [])]:
            client.delete_object(Bucket=bucket, Key=key)

    (size,) = sizes  # both sides moved the same bytes
    mb = size / 1e6
    ratio = min(plain_s) / min(write_s)

    def line(label: str, runs: list[float], note: str = "") -> None:
        times = ", ".join(f"{t:.2f}s" for t in runs)
        print(f"{label:<26}{mb / min(runs):7.1f} MB/s  (best of {len(runs)}: {times}){note}")

    print(f"Parquet interval: {size / 1e6:.0f} MB per run; moto server on 127.0.0.1")
    line("plain boto3 upload_file", plain_s)
    line("lake write (S3 calls)", write_s)
    print(f"{'  of which list+manifest':<26}{min(other_s):.3f}s best")
    line("publish_interval e2e", total_s, "  Parquet encoding included")
    pairs = sorted(p / w for p, w in zip(plain_s, write_s, strict=True))
    verdict = "ok" if ratio >= args.target else "MISSED"
    print(
        f"{'ratio lake/plain':<26}{ratio:7.2f}       best vs best; target >= {args.target}: {verdict}"
    )
    print(f"{'  median of paired runs':<26}{pairs[len(pairs) // 2]:7.2f}       for information")
    return 0 if ratio >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
