from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl import schema as schema_mod
from etl.errors import ConfigError
from etl.schema import (
    ARTICLE_SCHEMA,
    ARTICLE_VERSION,
    FETCH_LOG_SCHEMA,
    article_schema,
    ddl,
    fetch_log_schema,
    load_schema,
    parse_type,
    schema_version,
)
from tests.support.article_factory import batches, make_article

REPO_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"

EXPECTED_COLUMNS = [
    "article_id", "url", "canonical_url", "source_id", "domain", "title", "authors",
    "published_at", "date_source", "modified_at", "fetched_at", "language", "text", "captions",
    "description", "sitename", "categories", "tags", "image_url", "word_count", "content_hash",
    "simhash", "boilerplate_removed", "http_status", "raw_ref", "extractor", "canonical_link",
    "extraction", "duplicate_of", "schema_version", "dt",
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("string", pa.string()),
        ("int32", pa.int32()),
        ("int64", pa.int64()),
        ("bool", pa.bool_()),
        ("date32", pa.date32()),
        ("timestamp[us, UTC]", pa.timestamp("us", tz="UTC")),
        ("list<string>", pa.list_(pa.field("element", pa.string()))),
        (
            "list<struct<rule:string,text:string>>",
            pa.list_(
                pa.field("element", pa.struct([("rule", pa.string()), ("text", pa.string())]))
            ),
        ),
        (
            "struct<a:int32, b:list<timestamp[us, UTC]>>",
            pa.struct(
                [
                    ("a", pa.int32()),
                    ("b", pa.list_(pa.field("element", pa.timestamp("us", tz="UTC")))),
                ]
            ),
        ),
    ],
)
def test_parse_type(text: str, expected: pa.DataType) -> None:
    assert parse_type(text) == expected


@pytest.mark.parametrize("bad", ["uint64", "list<>", "struct<a>", "timestamp[ns]", "list<string"])
def test_parse_type_rejects_unknown(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_type(bad)


def test_article_schema_columns_types_and_nullability() -> None:
    s = article_schema()
    assert s.names == EXPECTED_COLUMNS
    assert s is ARTICLE_SCHEMA  # built once
    assert s.field("simhash").type == pa.int64()
    assert s.field("dt").type == pa.string()
    assert s.field("published_at").type == pa.timestamp("us", tz="UTC")
    assert s.field("word_count").type == pa.int32()
    assert s.field("extractor").type.names == ["newsetl", "trafilatura", "rules"]
    not_null = {f.name for f in s if not f.nullable}
    assert {"article_id", "url", "canonical_url", "text", "content_hash", "simhash", "dt"} <= (
        not_null
    )
    assert {"title", "published_at", "source_id", "http_status"}.isdisjoint(not_null)


def test_descriptions_and_version_metadata() -> None:
    s = article_schema()
    spec = json.loads((REPO_SCHEMAS / f"article.v{ARTICLE_VERSION}.json").read_text())
    by_name = {f["name"]: f["description"] for f in spec["fields"]}
    for f in s:
        assert f.metadata is not None
        assert f.metadata[b"description"].decode() == by_name[f.name]
        assert by_name[f.name]
    assert schema_version(s) == 2 == ARTICLE_VERSION == spec["version"]
    assert s.metadata is not None and s.metadata[b"schema_name"] == b"article"


def test_fetch_log_schema() -> None:
    s = fetch_log_schema()
    assert s is FETCH_LOG_SCHEMA
    assert s.names[:3] == ["url", "source_id", "status"]
    assert s.field("status").type == pa.int32()
    assert s.field("bytes").type == pa.int64()
    assert s.field("fetched_at").type == pa.timestamp("us", tz="UTC")
    assert s.names[-1] == "dt"
    assert schema_version(s) == 1


def test_written_file_schema_equals_article_schema(tmp_path: Path) -> None:
    table = pa.Table.from_batches(batches([make_article()]))
    path = tmp_path / "a.parquet"
    pq.write_table(table, path)
    read = pq.read_schema(path)
    assert read.equals(article_schema())  # types and nullability
    assert read.equals(article_schema(), check_metadata=True)  # descriptions and version too


def test_schema_falls_back_to_packaged_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = tmp_path / "_schemas"
    packaged.mkdir()
    shutil.copy(REPO_SCHEMAS / f"article.v{ARTICLE_VERSION}.json", packaged)
    monkeypatch.setattr(schema_mod, "SCHEMA_DIRS", (tmp_path / "missing", packaged))
    load_schema.cache_clear()
    try:
        assert load_schema("article", ARTICLE_VERSION).equals(ARTICLE_SCHEMA, check_metadata=True)
        with pytest.raises(ConfigError, match=r"fetch_log\.v1\.json"):
            load_schema("fetch_log", 1)
    finally:
        load_schema.cache_clear()


def test_name_mismatch_in_definition_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = json.loads((REPO_SCHEMAS / "article.v1.json").read_text())
    spec["version"] = 2
    (tmp_path / "article.v1.json").write_text(json.dumps(spec))
    monkeypatch.setattr(schema_mod, "SCHEMA_DIRS", (tmp_path,))
    load_schema.cache_clear()
    try:
        with pytest.raises(ConfigError, match="do not match"):
            load_schema("article", 1)
    finally:
        load_schema.cache_clear()


def test_duckdb_ddl_accepts_written_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    pq.write_table(
        pa.Table.from_batches(batches([make_article(), make_article("https://x.org/b")])), path
    )
    con = duckdb.connect()
    con.execute(ddl("duckdb"))
    con.execute(f"INSERT INTO articles SELECT * FROM read_parquet('{path}')")
    assert con.execute("SELECT count(*), min(schema_version) FROM articles").fetchall() == [(2, 2)]
    declared = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'articles' ORDER BY ordinal_position"
    ).fetchall()
    inferred = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
    assert declared == [(row[0], row[1]) for row in inferred]  # fmt: skip
    assert dict(declared)["simhash"] == "BIGINT"
    assert dict(declared)["published_at"] == "TIMESTAMP WITH TIME ZONE"
    with pytest.raises(duckdb.ConstraintException):
        con.execute("INSERT INTO articles (article_id) VALUES ('x')")


@pytest.mark.parametrize("engine", ["athena", "trino"])
def test_hive_ddl_partitions_by_dt(engine: str) -> None:
    text = ddl(engine, location="s3://bucket/lake/articles/")  # type: ignore[arg-type]
    assert "s3://bucket/lake/articles/" in text
    body, _, tail = text.partition(")\n")
    assert "dt" not in body.replace('"dt" varchar', "")  # dt only as the partition column
    if engine == "athena":
        assert "PARTITIONED BY (`dt` string)" in tail and "STORED AS PARQUET" in tail
        assert "`simhash` bigint" in body and "array<struct<rule:string,text:string>>" in body
    else:
        assert "partitioned_by = ARRAY['dt']" in tail and body.rstrip().endswith('"dt" varchar')
        assert '"extractor" row("newsetl" varchar' in body


def test_hive_ddl_needs_location_and_known_engine() -> None:
    with pytest.raises(ConfigError, match="location"):
        ddl("athena")
    with pytest.raises(ConfigError, match="engine"):
        ddl("postgres", location="s3://b/")  # type: ignore[arg-type]


def test_fetch_log_ddl() -> None:
    text = ddl("duckdb", schema=fetch_log_schema(), table="fetch_log")
    con = duckdb.connect()
    con.execute(text)
    cols = [r[0] for r in con.execute("DESCRIBE fetch_log").fetchall()]
    assert cols == fetch_log_schema().names


def test_every_version_only_adds_nullable_columns() -> None:
    """v1 files stay readable beside v2 files: v2 keeps v1's columns as they were."""
    v1, v2 = article_schema(1), article_schema(2)
    assert schema_version(v1) == 1
    assert v2.names[: v1.names.index("schema_version")] == v1.names[:-2]
    for f in v1:
        assert v2.field(f.name).equals(f), f.name
    added = [f for f in v2 if f.name not in v1.names]
    assert [f.name for f in added] == ["canonical_link", "extraction", "duplicate_of"]
    assert all(f.nullable for f in added)


def test_v1_and_v2_files_read_together_by_column_name(tmp_path: Path) -> None:
    v2 = pa.Table.from_batches(batches([make_article("https://x.org/new")]))
    v1 = v2.drop_columns(["canonical_link", "extraction", "duplicate_of"]).replace_schema_metadata(
        article_schema(1).metadata
    )
    v1 = v1.set_column(v1.schema.get_field_index("schema_version"), "schema_version",
                       pa.array([1], pa.int32()))  # fmt: skip
    (tmp_path / "dt=2026-11-25").mkdir()
    pq.write_table(v1.cast(article_schema(1)), tmp_path / "dt=2026-11-25" / "old.parquet")
    pq.write_table(v2, tmp_path / "dt=2026-11-25" / "new.parquet")
    rel = duckdb.sql(
        f"SELECT schema_version, canonical_link IS NULL, extraction IS NULL FROM read_parquet("
        f"'{tmp_path}/*/*.parquet', union_by_name = true, hive_partitioning = true) ORDER BY 1"
    )
    assert rel is not None  # a SELECT always gives a relation
    rows = rel.fetchall()
    assert rows == [(1, True, True), (2, True, True)]
