"""``newsetl ddl``: the generated definitions read the same mixed v1+v2 lake. Polars, pyarrow and
DuckDB (through ``newsetl query``) on the S3 server; the DuckDB view on a local copy (its S3
reader, httpfs, is an extension download); Athena, Trino and Spark checked for shape."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from etl.cli import app
from etl.errors import ConfigError
from etl.lake.base import Lake
from etl.lake.ddl import render
from etl.lake.opener import open_lake
from etl.lake.query import run_query
from etl.lake.settings import LakeSettings
from etl.lake.store import publish_interval
from etl.records import Interval
from etl.schema import article_schema
from tests.support.article_factory import batches, make_article
from tests.support.s3_server import CREDENTIALS, REGION


def _fill(lake: Lake) -> None:
    """Two v2 days and one v1 file: 7 rows."""
    for day, n in ((1, 3), (2, 2)):
        start = datetime(2026, 11, day, 5, tzinfo=UTC)
        arts = [make_article(f"https://n.example.com/{day}/{i}", seed=i) for i in range(n)]
        publish_interval(lake, Interval(start, start + timedelta(hours=1)),
                         batches(arts, dt=f"2026-11-{day:02d}"))  # fmt: skip
    v1 = article_schema(1)
    arts = [make_article(f"https://n.example.com/3/{i}", seed=i) for i in range(2)]
    table = pa.Table.from_batches(batches(arts, dt="2026-11-03"))
    table = pa.Table.from_arrays([table.column(f.name) for f in v1], schema=v1)
    idx = v1.get_field_index("schema_version")
    table = table.set_column(idx, "schema_version", pa.array([1, 1], pa.int32()))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    lake.put_bytes(
        "articles/dt=2026-11-03/20261103T0500Z-20261103T0600Z-000.parquet", buf.getvalue()
    )


@pytest.fixture(scope="module")
def s3_lake(s3_server: Any) -> LakeSettings:
    bucket = s3_server.new_bucket()
    settings = LakeSettings(
        uri=f"s3://{bucket}/news",
        endpoint_url=s3_server.endpoint,
        region=REGION,
        access_key_id=CREDENTIALS["aws_access_key_id"],
        secret_access_key=CREDENTIALS["aws_secret_access_key"],
        path_style=True,
    )
    _fill(open_lake(settings))
    return settings


SQL_BY_DAY = (
    "SELECT dt, count(*), count(*) FILTER (schema_version = 1) FROM articles "
    "GROUP BY dt ORDER BY dt"
)
EXPECTED = [("2026-11-01", 3, 0), ("2026-11-02", 2, 0), ("2026-11-03", 2, 2)]


def test_polars_snippet_reads_the_s3_lake(s3_lake: LakeSettings) -> None:
    import polars as pl

    code = render("polars", s3_lake.uri, settings=s3_lake)
    assert f"'aws_endpoint_url': '{s3_lake.endpoint_url}'" in code
    keys = "".join(f"        {k!r}: {v!r},\n" for k, v in CREDENTIALS.items())
    code = code.replace("        # keys:", keys + "        # keys:")
    scope: dict[str, Any] = {}
    exec(compile(code, "ddl-polars", "exec"), scope)  # the printed snippet, as a user runs it
    frame = (
        scope["articles"]
        .group_by("dt")
        .agg(pl.len().alias("n"), pl.col("duplicate_of").is_null().sum().alias("v1_nulls"),
             (pl.col("schema_version") == 1).sum().alias("v1"))
        .sort("dt")
        .collect()
    )  # fmt: skip
    rows = [(r["dt"], r["n"], r["v1"]) for r in frame.iter_rows(named=True)]
    assert rows == EXPECTED
    assert frame["v1_nulls"].to_list() == [3, 2, 2]


def test_pyarrow_and_duckdb_read_the_s3_lake(s3_lake: LakeSettings) -> None:
    fs = pafs.S3FileSystem(
        access_key=CREDENTIALS["aws_access_key_id"],
        secret_key=CREDENTIALS["aws_secret_access_key"],
        region=REGION,
        endpoint_override=(s3_lake.endpoint_url or "").removeprefix("http://"),
        scheme="http",
    )
    bucket_prefix = s3_lake.uri.removeprefix("s3://")
    dataset = ds.dataset(f"{bucket_prefix}/articles", filesystem=fs, partitioning="hive",
                         schema=article_schema())  # fmt: skip
    table = dataset.to_table(columns=["dt", "schema_version"])
    counts = table.group_by("dt").aggregate(
        [("schema_version", "count"), ("schema_version", "min")]
    )
    rows = sorted(
        zip(*(counts.column(n).to_pylist() for n in ("dt", "schema_version_count")), strict=True)
    )
    assert rows == [(d, n) for d, n, _ in EXPECTED]
    _, got = run_query(
        s3_lake,
        SQL_BY_DAY,
    )
    assert got == EXPECTED


def test_duckdb_view_reads_a_local_lake(tmp_path: Path) -> None:
    _fill(open_lake(str(tmp_path / "lake")))
    view = render("duckdb", str(tmp_path / "lake"))
    con = duckdb.connect()
    con.execute(view)
    got = con.execute(SQL_BY_DAY).fetchall()
    assert got == EXPECTED
    assert "CREATE SECRET" in render("duckdb", "s3://b/lake")


def _columns(body: str, quote: str) -> list[str]:
    return re.findall(rf"^\s*{quote}(\w+){quote} ", body, flags=re.M)


def test_athena_trino_spark_shapes() -> None:
    names = [f.name for f in article_schema() if f.name != "dt"]
    athena = render("athena", "s3://b/lake")
    assert _columns(athena.split("PARTITIONED BY")[0], "`") == names
    assert "PARTITIONED BY (`dt` string)" in athena and "STORED AS PARQUET" in athena
    assert "LOCATION 's3://b/lake/articles/'" in athena
    assert "'projection.enabled' = 'true'" in athena and "'projection.dt.type' = 'date'" in athena
    assert "'storage.location.template' = 's3://b/lake/articles/dt=${dt}/'" in athena
    assert "`extraction` struct<method:string,agreement:double,doubtful:boolean>" in athena
    assert athena.count("(") == athena.count(")")

    trino = render("trino", "s3://b/lake/", table="fetch_log")
    assert "external_location = 's3://b/lake/fetch_log/'" in trino
    assert trino.split(")\nWITH")[0].rstrip().endswith('"dt" varchar')  # partition column last
    trino_a = render("trino", "s3://b/lake")
    assert _columns(trino_a.split("WITH (")[0], '"') == [*names, "dt"]
    assert '"authors" array(varchar)' in trino_a and '"published_at" timestamp' in trino_a

    spark = render("spark", "s3://b/lake")
    assert _columns(spark.split("USING PARQUET")[0], "`") == [*names, "dt"]
    assert "LOCATION 's3a://b/lake/articles/'" in spark and "PARTITIONED BY (`dt`)" in spark
    assert "`boilerplate_removed` ARRAY<STRUCT<`rule`: STRING, `text`: STRING>>" in spark
    assert "`simhash` BIGINT" in spark and "`published_at` TIMESTAMP" in spark
    assert spark.count("<") == spark.count(">")


def test_ddl_cli(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ddl", "athena", "--location", "s3://b/x"])
    assert result.exit_code == 0 and "LOCATION 's3://b/x/articles/'" in result.stdout
    bad = CliRunner().invoke(app, ["ddl", "postgres", "--location", "s3://b/x"])
    assert bad.exit_code == 2 and "unknown engine" in bad.stderr
    with pytest.raises(ConfigError, match="unknown table"):
        render("spark", "s3://b", table="nope")
