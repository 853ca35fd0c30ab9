"""Lake read benchmarks (``make bench``): lazy queries, the key index, compaction, query memory.

Generates a synthetic lake with vectorized pyarrow (default 1,000,000 articles over 30 days,
hourly intervals, texts of realistic length: log-normal around 3,000 characters of Zipf-drawn
words, so they compress like prose) on local disk, and a smaller one (default 50,000 articles,
4 intervals a day) on a moto S3 server on 127.0.0.1, then measures:

- a one-day query (``WHERE dt = …``) against the same query over the whole lake: bytes read
  (local: the process's ``rchar``; S3: bytes the server sent, through a counting proxy) and
  time; targets: <= 1/20 of the bytes, >= 10x faster;
- the seen index for a 15-day look-back from the key index against reading the article files
  whole (what it did before): bytes and time; target: < 5 % of the bytes;
- a full-day scan of a compacted day against the same day in hourly files, each the best of 7
  ``run_query`` calls (the process's DuckDB database made once); target: >= 2x. Printed beside
  it: the same with a new DuckDB database per query, as every ``newsetl query`` process has;
- peak RSS of ``newsetl query`` (a subprocess) scanning all text of the local lake and
  exporting every row to Parquet; target: < 1 GiB.

    uv run python bench/bench_lake.py [--articles 1000000] [--s3-articles 50000] [--keep DIR]
    uv run python bench/bench_lake.py --quick   # every step on tiny lakes (tests; figures moot)

Each target prints as ``PASS`` or ``MISS`` with its figure; the exit status is 1 if any missed
(``--quick`` exits 0 whatever the figures: its lakes are too small for the targets to mean much).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from etl.lake import (  # noqa: E402
    Lake,
    LakeSettings,
    compact_day,
    connect,
    open_lake,
    publish_interval,
    read_table,
    run_query,
    seen_ids,
)
from etl.records import Interval  # noqa: E402
from etl.schema import article_schema  # noqa: E402

DAY0 = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 30
VOCAB = 30_000
RESULTS: list[tuple[str, str, bool]] = []


def _pool(rng: np.random.Generator, chars: int) -> str:
    """Prose-like text: words of a 30,000-word vocabulary drawn by a Zipf-Mandelbrot law
    (p ~ 1 / (rank + 2.7)); zstd compresses it about as much as English news text."""
    words = [f"{'etaoinshrdlu'[i % 12]}w{i:x}"[: 3 + i % 8] for i in range(VOCAB)]
    p = 1.0 / (np.arange(VOCAB) + 2.7)
    ranks = rng.choice(VOCAB, size=chars // 6, p=p / p.sum())
    return " ".join(words[i] for i in ranks)[:chars]


def _list_col(n: int, values: list[str], per_row: int) -> pa.Array[Any]:
    offsets = pa.array(np.arange(0, (n + 1) * per_row, per_row, dtype=np.int32), pa.int32())
    flat = pa.array([values[i % len(values)] for i in range(n * per_row)], pa.string())
    return pa.ListArray.from_arrays(offsets, flat, type=pa.list_(pa.field("element", pa.string())))


def make_batch(start: int, n: int, dt: str, hour: datetime, pool: str, seed: int) -> pa.RecordBatch:
    """``n`` synthetic article rows of schema v2 (ids ``start``…), vectorized where it counts."""
    schema = article_schema()
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(3000), 0.5, n), 300, 40_000).astype(np.int64)
    offsets = rng.integers(0, len(pool) - 40_001, n)
    texts = [pool[o : o + ln] for o, ln in zip(offsets.tolist(), lengths.tolist(), strict=True)]
    nums = range(start, start + n)
    sources = [f"source-{i % 12}" for i in nums]
    urls = [
        f"https://{s}.example.com/news/{dt}/story-{i}" for s, i in zip(sources, nums, strict=True)
    ]
    ids = [hashlib.blake2b(u.encode(), digest_size=16).hexdigest() for u in urls]
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in nums]
    when = pa.array((np.datetime64(hour.replace(tzinfo=None), "us")
                     + rng.integers(0, 3_600_000_000, n).astype("timedelta64[us]")),
                    pa.timestamp("us", tz="UTC"))  # fmt: skip
    empty = pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32), pa.int32()),
                                     pa.array([], pa.string()), type=schema.field("captions").type)  # fmt: skip
    removed_t = schema.field("boilerplate_removed").type
    removed = pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32), pa.int32()),
                                       pa.array([], removed_t.value_type), type=removed_t)  # fmt: skip
    ext_t = schema.field("extractor").type
    extractor = pa.array([{"newsetl": "0.1", "trafilatura": "2.3.1", "rules": "bench"}] * n, ext_t)
    cols: dict[str, pa.Array[Any]] = {
        "article_id": pa.array(ids, pa.string()),
        "url": pa.array(urls, pa.string()),
        "canonical_url": pa.array(urls, pa.string()),
        "source_id": pa.array(sources, pa.string()),
        "domain": pa.array([f"{s}.example.com" for s in sources], pa.string()),
        "title": pa.array([t[:80] for t in texts], pa.string()),
        "authors": _list_col(n, ["Ada Lovelace", "Grace Hopper", "Alan Turing"], 1),
        "published_at": when,
        "date_source": pa.array(["json-ld"] * n, pa.string()),
        "modified_at": pa.nulls(n, pa.timestamp("us", tz="UTC")),
        "fetched_at": when,
        "language": pa.array(["en"] * n, pa.string()),
        "text": pa.array(texts, pa.string()),
        "captions": empty,
        "description": pa.array([t[100:260] for t in texts], pa.string()),
        "sitename": pa.array(sources, pa.string()),
        "categories": _list_col(n, ["world", "business", "sport", "science"], 1),
        "tags": empty,
        "image_url": pa.nulls(n, pa.string()),
        "word_count": pa.array((lengths // 6).astype(np.int32)),
        "content_hash": pa.array(hashes, pa.string()),
        "simhash": pa.array(rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)),
        "boilerplate_removed": removed,
        "http_status": pa.array(np.full(n, 200, np.int32)),
        "raw_ref": pa.nulls(n, pa.string()),
        "extractor": extractor,
        "canonical_link": pa.nulls(n, pa.string()),
        "extraction": pa.nulls(n, schema.field("extraction").type),
        "duplicate_of": pa.nulls(n, pa.string()),
        "schema_version": pa.array(np.full(n, 2, np.int32)),
        "dt": pa.array([dt] * n, pa.string()),
    }
    return pa.RecordBatch.from_arrays([cols[f.name] for f in schema], schema=schema)


def generate(lake: Lake, articles: int, per_day: int, *, pool_chars: int = 48_000_000) -> int:
    """Publish ``articles`` rows over DAYS days in ``per_day`` intervals; returns the bytes."""
    rng = np.random.default_rng(1)
    pool = _pool(rng, pool_chars)
    per_interval = articles // (DAYS * per_day)
    total, start = 0, 0
    t0 = time.perf_counter()
    step = timedelta(hours=24 // per_day)
    for d in range(DAYS):
        for k in range(per_day):
            begin = DAY0 + timedelta(days=d) + k * step
            dt = begin.date().isoformat()
            batch = make_batch(start, per_interval, dt, begin, pool, seed=start)
            m = publish_interval(lake, Interval(begin, begin + step), [batch])
            total += sum(f.bytes for f in m.shards)
            start += per_interval
    print(f"  generated {start:,} articles, {total / 2**20:,.0f} MiB of article files in "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    return total


def rchar() -> int:
    return int(psutil.Process().io_counters().read_chars)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def check(name: str, figure: str, ok: bool) -> None:
    RESULTS.append((name, figure, ok))
    print(f"  {'PASS' if ok else 'MISS'} {name}: {figure}")


DAY_SQL = "SELECT count(*), sum(word_count), sum(length(text)) FROM articles WHERE dt = '{d}'"
ALL_SQL = "SELECT count(*), sum(word_count), sum(length(text)) FROM articles"


def bench_queries(uri: str | LakeSettings, measure: Callable[[], int], label: str) -> None:
    day = (DAY0 + timedelta(days=DAYS // 2)).date().isoformat()
    run_query(uri, DAY_SQL.format(d=day))  # warm: imports, first listing
    b0 = measure()
    t_day, _ = timed(lambda: run_query(uri, DAY_SQL.format(d=day)))
    b_day = measure() - b0
    b0 = measure()
    t_all, _ = timed(lambda: run_query(uri, ALL_SQL))
    b_all = measure() - b0
    check(f"{label} one-day query bytes", f"{b_day / 2**20:.1f} MiB vs {b_all / 2**20:.1f} MiB "
          f"full scan (1/{b_all / max(b_day, 1):.0f})", b_day * 20 <= b_all)  # fmt: skip
    check(f"{label} one-day query time", f"{t_day:.2f} s vs {t_all:.2f} s full scan "
          f"({t_all / t_day:.1f}x)", t_all >= 10 * t_day)  # fmt: skip


class CountingLake:
    def __init__(self, inner: Lake) -> None:
        self.inner, self.read = inner, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_bytes(self, key: str) -> bytes:
        data: bytes = self.inner.get_bytes(key)
        self.read += len(data)
        return data


def bench_seen(lake: Lake, label: str) -> None:
    """The publish-time seen index (ids only) over a 15-day look-back: from the key index, and
    the way it was built before the index existed (every article file of the window, whole)."""
    begin = DAY0 + timedelta(days=DAYS - 1, hours=12)
    run = Interval(begin, begin + timedelta(hours=1))
    counting = CountingLake(lake)
    t_new, ids = timed(lambda: seen_ids(counting, days=15, exclude=run))
    new_bytes = counting.read
    counting.read = 0
    first = (run.start - timedelta(days=15)).date().isoformat()
    keys = [k for k in lake.list("articles/") if k.split("/")[1] >= f"dt={first}"]
    keys = [k for k in keys if run.id not in k]

    def whole_files() -> set[str]:  # what seen_ids did before the index
        out: set[str] = set()
        for k in keys:
            out.update(read_table(counting, k, columns=["article_id"]).column(0).to_pylist())  # type: ignore[arg-type]
        return out

    t_old, old_ids = timed(whole_files)
    old_bytes = counting.read
    assert old_ids == ids, "the key index must give the same ids"
    share = 100 * new_bytes / old_bytes
    check(f"{label} seen index (15 days) bytes", f"{new_bytes / 2**20:.1f} MiB from the key index "
          f"vs {old_bytes / 2**20:.1f} MiB of whole article files ({share:.1f} %), {len(ids):,} ids",
          new_bytes < 0.05 * old_bytes)  # fmt: skip
    check(f"{label} seen index time", f"{t_new:.2f} s vs {t_old:.2f} s ({t_old / t_new:.1f}x)",
          t_new < t_old)  # fmt: skip


def bench_compaction(lake: Lake, uri: str | LakeSettings, label: str) -> None:
    day = (DAY0 + timedelta(days=3)).date().isoformat()
    sql = f"SELECT count(DISTINCT article_id), sum(length(text)) FROM articles WHERE dt = '{day}'"
    run_query(uri, sql)

    def cold() -> None:  # a new DuckDB database for the query, as a fresh process has
        con = connect(uri, sql)
        try:
            con.execute(sql).fetchall()
        finally:
            con.close()

    def scans(query: Callable[[], object]) -> tuple[float, float]:
        """Best wall and best CPU seconds (every thread of the process) of 7 scans."""
        walls, cpus = [], []
        for _ in range(7):
            c0 = time.process_time()
            walls.append(timed(query)[0])
            cpus.append(time.process_time() - c0)
        return min(walls), min(cpus)

    def both() -> tuple[tuple[float, float], tuple[float, float]]:
        return scans(lambda: run_query(uri, sql)), scans(cold)

    (t_hourly, cpu_hourly), (c_hourly, ccpu_hourly) = both()
    before = run_query(uri, sql)[1]
    t_compact, result = timed(lambda: compact_day(lake, day))
    (t_compacted, cpu_compacted), (c_compacted, ccpu_compacted) = both()
    assert run_query(uri, sql)[1] == before
    check(f"{label} compacted day scan", f"{t_compacted:.3f} s vs {t_hourly:.3f} s in "
          f"{len(result.replaced)} hourly files ({t_hourly / t_compacted:.1f}x; CPU "
          f"{cpu_compacted:.3f} vs {cpu_hourly:.3f} s, {cpu_hourly / cpu_compacted:.1f}x); "
          f"compaction {t_compact:.1f} s for {result.rows:,} rows",
          t_hourly >= 2 * t_compacted)  # fmt: skip
    print(
        f"       {label} the same with a new DuckDB database per query (a fresh process): "
        f"{c_compacted:.3f} s vs {c_hourly:.3f} s ({c_hourly / c_compacted:.1f}x; CPU "
        f"{ccpu_compacted:.3f} vs {ccpu_hourly:.3f} s, {ccpu_hourly / ccpu_compacted:.1f}x)"
    )


def peak_rss(args: list[str]) -> tuple[float, float]:
    """Peak RSS (MiB) of a subprocess and its wall time, sampled every 20 ms."""
    t0 = time.perf_counter()
    proc = psutil.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    if proc.returncode:
        raise RuntimeError(f"{args}: {proc.stderr.read().decode() if proc.stderr else ''}")
    return peak / 2**20, time.perf_counter() - t0


def bench_memory(root: Path, tmp: Path) -> None:
    newsetl = str(Path(sys.executable).with_name("newsetl"))
    for what, sql, extra in (
        ("aggregate over all text", ALL_SQL, ["--format", "csv"]),
        ("every row to Parquet", "SELECT * FROM articles", ["-f", "parquet", "-o", str(tmp / "all.parquet")]),
    ):  # fmt: skip
        peak, secs = peak_rss([newsetl, "query", "--lake", str(root), sql, *extra])
        check(f"newsetl query peak RSS ({what})", f"{peak:.0f} MiB in {secs:.0f} s", peak < 1024)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--s3-articles", type=int, default=50_000)
    parser.add_argument("--keep", type=Path, help="reuse/keep the local lake in this folder")
    parser.add_argument("--quick", action="store_true",
                        help="tiny lakes (2,880 and 1,440 articles): checks that every step runs")  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.articles, args.s3_articles = 2_880, 1_440
    per_day = 4 if args.quick else 24
    pool_chars = 1_000_000 if args.quick else 48_000_000
    tmp = Path(tempfile.mkdtemp(prefix="bench-lake-"))
    try:
        root = args.keep or tmp / "lake"
        lake = open_lake(str(root))
        print(f"local lake {root}")
        if not lake.list("_runs/"):
            generate(lake, args.articles, per_day=per_day, pool_chars=pool_chars)
        bench_queries(str(root), rchar, "local")
        bench_seen(lake, "local")
        bench_memory(root, tmp)
        bench_compaction(lake, str(root), "local")
        if args.s3_articles:
            bench_s3(args.s3_articles, pool_chars)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    missed = [n for n, _, ok in RESULTS if not ok]
    print(
        f"{len(RESULTS) - len(missed)}/{len(RESULTS)} targets met"
        + (f"; missed: {', '.join(missed)}" if missed else "")
    )
    return 1 if missed and not args.quick else 0


def bench_s3(articles: int, pool_chars: int = 48_000_000) -> None:
    from tests.support.counting_proxy import CountingProxy
    from tests.support.s3_server import AWS_TEST_ENV, CREDENTIALS, REGION, MotoServer

    os.environ.update(AWS_TEST_ENV)
    with MotoServer() as server, CountingProxy(server.port) as proxy:
        bucket = server.new_bucket()

        def settings(endpoint: str) -> LakeSettings:
            return LakeSettings(uri=f"s3://{bucket}/news", endpoint_url=endpoint, region=REGION,
                                access_key_id=CREDENTIALS["aws_access_key_id"],
                                secret_access_key=CREDENTIALS["aws_secret_access_key"],
                                path_style=True)  # fmt: skip

        print(f"S3 lake s3://{bucket}/news on moto ({server.endpoint})")
        generate(open_lake(settings(server.endpoint)), articles, per_day=4, pool_chars=pool_chars)
        bench_queries(settings(proxy.endpoint), lambda: proxy.bytes_down, "S3")
        bench_seen(open_lake(settings(server.endpoint)), "S3")
        s3 = open_lake(settings(server.endpoint))
        bench_compaction(s3, settings(server.endpoint), "S3")


if __name__ == "__main__":
    sys.exit(main())
