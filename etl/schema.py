"""The lake's table schemas, built from the versioned JSON definitions in ``schemas/``.

``schemas/article.v<ARTICLE_VERSION>.json`` is the single definition of the article row: the Arrow
schema the pipeline writes and the DDL for query engines are both derived from it here. Older
versions stay in ``schemas/`` so files written with them can be read (every version only adds
nullable columns, so readers combine them by column name). Field descriptions
travel as field metadata (``description``); the schema name and version as schema metadata
(``schema_name``, ``schema_version``), so they are stored in every Parquet file.

Types use a small language: ``string``, ``int32``, ``int64``, ``float64``, ``bool``, ``date32``,
``timestamp[us, UTC]``, ``list<T>`` and ``struct<name:T,...>``.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from etl.errors import ConfigError

log = logging.getLogger("etl.schema")

_PACKAGE_DIR = Path(__file__).resolve().parent
# A source checkout keeps the definitions next to the package; a wheel force-includes them
# as etl/_schemas (see pyproject.toml).
SCHEMA_DIRS = (_PACKAGE_DIR.parent / "schemas", _PACKAGE_DIR / "_schemas")

Engine = Literal["duckdb", "athena", "trino"]

_SCALARS: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date32": pa.date32(),
    "timestamp[us, UTC]": pa.timestamp("us", tz="UTC"),
}


def _split_top(text: str) -> list[str]:
    """Split on commas that are not nested inside ``<>`` or ``[]``."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "<[":
            depth += 1
        elif ch in ">]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_type(text: str) -> pa.DataType:
    """Parse one type expression of the schema type language into an Arrow type."""
    t = text.strip()
    if t in _SCALARS:
        return _SCALARS[t]
    if t.startswith("list<") and t.endswith(">"):
        # "element" is the item name Parquet's nested-type spec uses and pyarrow reads back;
        # with pyarrow's default "item" a written file's schema would differ from this one.
        return pa.list_(pa.field("element", parse_type(t[5:-1])))
    if t.startswith("struct<") and t.endswith(">"):
        fields = []
        for part in _split_top(t[7:-1]):
            name, sep, sub = part.partition(":")
            if not sep or not name.strip():
                raise ConfigError(text, f"struct member {part!r} is not 'name:type'")
            fields.append(pa.field(name.strip(), parse_type(sub)))
        return pa.struct(fields)
    raise ConfigError(text, "unknown type in schema definition")


def _find(name: str, version: int) -> Path:
    filename = f"{name}.v{version}.json"
    for d in SCHEMA_DIRS:
        if (d / filename).is_file():
            return d / filename
    raise ConfigError(
        filename, f"schema definition not found in {', '.join(map(str, SCHEMA_DIRS))}"
    )


@cache
def load_schema(name: str, version: int) -> pa.Schema:
    """Build the Arrow schema defined by ``schemas/<name>.v<version>.json``."""
    path = _find(name, version)
    try:
        spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        fields = [
            pa.field(
                f["name"],
                parse_type(f["type"]),
                nullable=bool(f["nullable"]),
                metadata={"description": f.get("description", "")},
            )
            for f in spec["fields"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(str(path), f"invalid schema definition: {exc}") from None
    if spec.get("name") != name or spec.get("version") != version:
        raise ConfigError(str(path), "name/version inside the file do not match its file name")
    log.debug("loaded schema %s v%d from %s", name, version, path)
    return pa.schema(
        fields,
        metadata={
            "schema_name": name,
            "schema_version": str(version),
            "description": spec.get("description", ""),
        },
    )


ARTICLE_VERSION = 2
"""The article schema version the pipeline writes."""


def article_schema(version: int = ARTICLE_VERSION) -> pa.Schema:
    """The article row of schema ``version`` (default: the current one; cached)."""
    return load_schema("article", version)


def fetch_log_schema() -> pa.Schema:
    """The fetch_log row, schema v1 (cached)."""
    return load_schema("fetch_log", 1)


def schema_version(schema: pa.Schema) -> int:
    """The version stored in a schema's metadata (e.g. of a file read back from the lake)."""
    meta = schema.metadata or {}
    raw = meta.get(b"schema_version")
    if raw is None:
        raise ConfigError("schema", "schema has no schema_version metadata")
    return int(raw)


ARTICLE_SCHEMA: pa.Schema = article_schema()
FETCH_LOG_SCHEMA: pa.Schema = fetch_log_schema()


# --------------------------------------------------------------------------------------------
# DDL
# --------------------------------------------------------------------------------------------


def _sql_type(t: pa.DataType, engine: Engine) -> str:
    hive = engine == "athena"
    if pa.types.is_list(t):
        inner = _sql_type(t.value_type, engine)
        return (
            f"{inner}[]" if engine == "duckdb" else f"array<{inner}>" if hive else f"array({inner})"
        )
    if pa.types.is_struct(t):
        members = [
            (t.field(i).name, _sql_type(t.field(i).type, engine)) for i in range(t.num_fields)
        ]
        if engine == "duckdb":
            return "STRUCT(" + ", ".join(f'"{n}" {s}' for n, s in members) + ")"
        if hive:
            return "struct<" + ",".join(f"{n}:{s}" for n, s in members) + ">"
        return "row(" + ", ".join(f'"{n}" {s}' for n, s in members) + ")"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if engine == "duckdb" else "timestamp"
    names = {
        "duckdb": {
            "string": "VARCHAR",
            "int32": "INTEGER",
            "int64": "BIGINT",
            "double": "DOUBLE",
            "bool": "BOOLEAN",
            "date32[day]": "DATE",
        },
        "athena": {
            "string": "string",
            "int32": "int",
            "int64": "bigint",
            "double": "double",
            "bool": "boolean",
            "date32[day]": "date",
        },
        "trino": {
            "string": "varchar",
            "int32": "integer",
            "int64": "bigint",
            "double": "double",
            "bool": "boolean",
            "date32[day]": "date",
        },
    }[engine]
    try:
        return names[str(t)]
    except KeyError:
        raise ConfigError(str(t), f"no {engine} type for this Arrow type") from None


def ddl(
    engine: Engine,
    *,
    schema: pa.Schema | None = None,
    table: str = "articles",
    location: str | None = None,
) -> str:
    """CREATE TABLE text for ``schema`` (default: the article schema) in a query engine.

    ``duckdb``: a plain table (``NOT NULL`` where the schema says so). ``athena``: a Hive
    external table on Parquet partitioned by ``dt``; ``trino``: the same for Trino's Hive
    connector. Both need ``location`` (the ``s3://.../articles/`` prefix); run
    ``MSCK REPAIR TABLE`` (Athena) or ``system.sync_partition_metadata`` (Trino) to pick up
    new partitions, or use partition projection.
    """
    schema = article_schema() if schema is None else schema
    if engine == "duckdb":
        cols = [
            f'    "{f.name}" {_sql_type(f.type, engine)}{"" if f.nullable else " NOT NULL"}'
            for f in schema
        ]
        return f'CREATE TABLE IF NOT EXISTS "{table}" (\n' + ",\n".join(cols) + "\n);\n"
    if engine not in ("athena", "trino"):
        raise ConfigError(str(engine), "unknown engine; expected duckdb, athena or trino")
    if not location:
        raise ConfigError(table, f"{engine} DDL needs a location (s3://bucket/prefix/{table}/)")
    data = [f for f in schema if f.name != "dt"]
    esc = location.replace("'", "''")
    if engine == "athena":
        cols = [f"  `{f.name}` {_sql_type(f.type, engine)}" for f in data]
        return (
            f"CREATE EXTERNAL TABLE IF NOT EXISTS `{table}` (\n" + ",\n".join(cols) + "\n)\n"
            "PARTITIONED BY (`dt` string)\nSTORED AS PARQUET\n"
            f"LOCATION '{esc}'\nTBLPROPERTIES ('parquet.compression'='ZSTD');\n"
        )
    cols = [f'  "{f.name}" {_sql_type(f.type, engine)}' for f in data] + ['  "dt" varchar']
    return (
        f'CREATE TABLE IF NOT EXISTS "{table}" (\n' + ",\n".join(cols) + "\n)\n"
        f"WITH (\n  format = 'PARQUET',\n  partitioned_by = ARRAY['dt'],\n"
        f"  external_location = '{esc}'\n);\n"
    )
