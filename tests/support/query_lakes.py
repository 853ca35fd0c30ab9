"""Small lakes of generated articles for the query tests: hourly intervals, v1 files."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from etl.lake.base import Lake
from etl.lake.store import publish_interval
from etl.records import Interval
from etl.schema import article_schema
from tests.support.article_factory import batches, make_article, prose


def _interval(day: int, hour: int) -> Interval:
    start = datetime(2026, 11, day, hour, tzinfo=UTC)
    return Interval(start, start + timedelta(hours=1))


def _arts(day: int, n: int, words: int = 200) -> list[Any]:
    return [
        make_article(f"https://news.example.com/{day}/story-{i}", text=prose(day * 1000 + i, words))
        for i in range(n)
    ]


def _fill(
    lake: Lake, days: range, n: int = 30, words: int = 200, hours: tuple[int, ...] = (6, 18)
) -> int:
    """``hours`` intervals a day; returns the article bytes written."""
    total = 0
    for day in days:
        for hour in hours:
            arts = _arts(day * 100 + hour, n, words)
            m = publish_interval(lake, _interval(day, hour), batches(arts, dt=f"2026-11-{day:02d}"))
            total += sum(f.bytes for f in m.shards)
    return total


def _v1_file(lake: Lake, day: int, n: int) -> None:
    """An article file written before schema v2 (no canonical_link, extraction, duplicate_of)."""
    v1 = article_schema(1)
    table = pa.Table.from_batches(batches(_arts(day * 100 + 1, n), dt=f"2026-11-{day:02d}"))
    table = pa.Table.from_arrays([table.column(f.name) for f in v1], schema=v1)
    table = table.set_column(v1.get_field_index("schema_version"), "schema_version",
                             pa.array([1] * n, pa.int32()))  # fmt: skip
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    lake.put_bytes(
        f"articles/dt=2026-11-{day:02d}/{_interval(day, 1).id}-000.parquet", buf.getvalue()
    )
