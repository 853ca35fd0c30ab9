"""``newsetl ddl ENGINE --location URI``: table definitions for the engines analysts use.

Generated from ``schemas/`` (through :func:`etl.schema.article_schema` / ``fetch_log_schema``),
so they follow the schema as it evolves. ``location`` is the lake URI (``s3://bucket/prefix``
or a folder); the table's files are under ``<location>/<table>/dt=YYYY-MM-DD/``.

- ``athena``: a Glue external table on Parquet, partition projection on ``dt`` (no crawler, no
  ``MSCK REPAIR``: new days are found by the projection);
- ``trino``: a Hive-connector table (then ``CALL system.sync_partition_metadata``);
- ``spark``: Spark SQL ``USING PARQUET`` partitioned by ``dt`` (``s3a://`` for hadoop-aws);
- ``duckdb``: a view over ``read_parquet`` (``union_by_name``: v1 files beside v2 files);
- ``polars``: a ``scan_parquet`` snippet with the storage options for an S3-compatible endpoint.

External engines read every ``*.parquet`` file of a partition: during a compaction's switch
(between its last put and the deletes that follow) or after a compaction that crashed, they can
see a day's rows twice; ``newsetl query`` honours the day's compaction pointer and never does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pyarrow as pa

from etl.errors import ConfigError
from etl.lake.settings import LakeSettings
from etl.schema import _sql_type, article_schema, fetch_log_schema

Engine = Literal["athena", "trino", "spark", "duckdb", "polars"]
ENGINES: tuple[Engine, ...] = ("athena", "trino", "spark", "duckdb", "polars")
TABLES = ("articles", "fetch_log")


def table_location(location: str, table: str) -> str:
    """``<lake>/<table>/`` from a lake URI; a local folder made absolute (the text is pasted
    into an engine that runs elsewhere). Always the lake's root: a lake whose folder is itself
    named ``articles`` was taken for the table's own folder."""
    loc = location if "://" in location else Path(location).expanduser().absolute().as_posix()
    return f"{loc.rstrip('/')}/{table}/"


def _schema(table: str) -> pa.Schema:
    if table not in TABLES:
        raise ConfigError(table, f"unknown table; expected {' or '.join(TABLES)}")
    return article_schema() if table == "articles" else fetch_log_schema()


def _spark_type(t: pa.DataType) -> str:
    if pa.types.is_list(t):
        return f"ARRAY<{_spark_type(t.value_type)}>"
    if pa.types.is_struct(t):
        return "STRUCT<" + ", ".join(f"`{f.name}`: {_spark_type(f.type)}" for f in t) + ">"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    names = {"string": "STRING", "int32": "INT", "int64": "BIGINT", "double": "DOUBLE",
             "bool": "BOOLEAN", "date32[day]": "DATE"}  # fmt: skip
    try:
        return names[str(t)]
    except KeyError:
        raise ConfigError(str(t), "no Spark type for this Arrow type") from None


def _q(text: str) -> str:
    return text.replace("'", "''")


def athena(table: str, location: str) -> str:
    if not location.startswith("s3://"):
        raise ConfigError(location, "Athena reads S3: --location must be s3://bucket/prefix")
    schema, loc = _schema(table), _q(table_location(location, table))
    cols = ",\n".join(
        f"  `{f.name}` {_sql_type(f.type, 'athena')}" for f in schema if f.name != "dt"
    )
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{table}` (\n{cols}\n)\n"
        "PARTITIONED BY (`dt` string)\nSTORED AS PARQUET\n"
        f"LOCATION '{loc}'\nTBLPROPERTIES (\n"
        "  'parquet.compression' = 'ZSTD',\n"
        "  'projection.enabled' = 'true',\n"
        "  'projection.dt.type' = 'date',\n"
        "  'projection.dt.format' = 'yyyy-MM-dd',\n"
        "  'projection.dt.range' = '2000-01-01,NOW',\n"
        "  'projection.dt.interval' = '1',\n"
        "  'projection.dt.interval.unit' = 'DAYS',\n"
        f"  'storage.location.template' = '{loc}dt=${{dt}}/'\n);\n"
    )


def trino(table: str, location: str) -> str:
    schema, loc = _schema(table), _q(table_location(location, table))
    cols = [f'  "{f.name}" {_sql_type(f.type, "trino")}' for f in schema if f.name != "dt"]
    cols.append('  "dt" varchar')
    return (
        f'CREATE TABLE IF NOT EXISTS "{table}" (\n' + ",\n".join(cols) + "\n)\nWITH (\n"
        f"  format = 'PARQUET',\n  partitioned_by = ARRAY['dt'],\n  external_location = '{loc}'\n"
        ");\n"
        "-- pick up new days: CALL system.sync_partition_metadata(\n"
        f"--   schema_name => '<schema>', table_name => '{table}', mode => 'ADD');\n"
    )


def spark(table: str, location: str) -> str:
    schema = _schema(table)
    loc = table_location(location, table)
    if loc.startswith("s3://"):
        loc = "s3a://" + loc[5:]  # hadoop-aws
    cols = [f"  `{f.name}` {_spark_type(f.type)}" for f in schema if f.name != "dt"]
    cols.append("  `dt` STRING")
    return (
        f"CREATE TABLE IF NOT EXISTS `{table}` (\n" + ",\n".join(cols) + "\n)\n"
        f"USING PARQUET\nPARTITIONED BY (`dt`)\nLOCATION '{_q(loc)}';\n"
        f"MSCK REPAIR TABLE `{table}`;  -- again for new days\n"
    )


def duckdb_view(table: str, location: str) -> str:
    _schema(table)
    glob = _q(table_location(location, table) + "*/*.parquet")
    secret = ""
    if location.startswith("s3://"):
        secret = (
            "-- S3 needs the httpfs extension and a secret, e.g.\n"
            "-- CREATE SECRET lake (TYPE s3, KEY_ID '…', SECRET '…', REGION 'us-east-1',\n"
            "--                     ENDPOINT 'minio:9000', URL_STYLE 'path', USE_SSL false);\n"
        )
    return (
        f"{secret}CREATE OR REPLACE VIEW {table} AS\nSELECT * FROM read_parquet(\n"
        f"  '{glob}',\n  hive_partitioning = true,\n  hive_types = {{'dt': VARCHAR}},\n"
        "  union_by_name = true\n);\n"
    )


def polars_snippet(table: str, location: str, settings: LakeSettings | None = None) -> str:
    _schema(table)
    glob = table_location(location, table) + "**/*.parquet"
    opts: dict[str, str] = {}
    if location.startswith("s3://"):
        opts["aws_region"] = (settings.region if settings else None) or "us-east-1"
        if settings and settings.endpoint_url:
            opts["aws_endpoint_url"] = settings.endpoint_url
            if settings.endpoint_url.startswith("http://"):
                opts["aws_allow_http"] = "true"
        if settings and settings.path_style:
            opts["aws_virtual_hosted_style_request"] = "false"
    lines = "".join(f"        {k!r}: {v!r},\n" for k, v in opts.items())
    creds = (
        "        # keys: from the AWS environment, or 'aws_access_key_id'/'aws_secret_access_key'\n"
    )
    storage = f"    storage_options={{\n{lines}{creds}    }},\n" if opts else ""
    return (
        "import polars as pl\n\n"
        f"{table} = pl.scan_parquet(\n"
        f"    {glob!r},\n"
        "    hive_partitioning=True,\n"
        "    hive_schema={'dt': pl.String},\n"
        "    missing_columns='insert',  # v1 files beside v2 files\n"
        "    extra_columns='ignore',\n"
        f"{storage})\n"
    )


def render(
    engine: str, location: str, *, table: str = "articles", settings: LakeSettings | None = None
) -> str:
    """The definition of ``table`` for ``engine`` at ``location`` (a lake URI)."""
    if not location:
        raise ConfigError("--location", "needs the lake URI (s3://bucket/prefix or a folder)")
    if engine == "athena":
        return athena(table, location)
    if engine == "trino":
        return trino(table, location)
    if engine == "spark":
        return spark(table, location)
    if engine == "duckdb":
        return duckdb_view(table, location)
    if engine == "polars":
        return polars_snippet(table, location, settings)
    raise ConfigError(engine, f"unknown engine; expected one of {', '.join(ENGINES)}")
