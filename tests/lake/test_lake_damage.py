"""A damaged lake, as a hostile reviewer of issue 9 leaves it (local and on the S3 server): a
truncated article file, a stray non-Parquet file named like one, an empty day folder, a
stray file of another kind. Every reader fails with an error naming the key, or reads the
lake as it is: never a silently short count."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl.errors import StoreError
from etl.lake.base import Lake
from etl.lake.opener import open_lake
from etl.lake.query import query_batches, run_query
from etl.lake.settings import LakeSettings
from etl.lake.tables import read_articles
from etl.report.figures import build_report
from tests.support.query_lakes import _fill
from tests.support.s3_server import lake_settings


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str | LakeSettings:
    if request.param == "local":
        return str(tmp_path / "lake")
    server = request.getfixturevalue("s3_server")
    return lake_settings(server.endpoint, server.new_bucket())


def _lake(where: str | LakeSettings) -> tuple[Lake, str]:
    lake = open_lake(where)
    _fill(lake, range(1, 3), n=4, words=30)  # 2 days x 2 intervals x 4 articles
    return lake, sorted(lake.list("articles/dt=2026-11-02/"))[0]


def test_a_truncated_article_file_is_an_error_naming_it(where: str | LakeSettings) -> None:
    lake, key = _lake(where)
    lake.put_bytes(key, lake.get_bytes(key)[:200])
    name = key.rsplit("/", 1)[1]
    with pytest.raises(StoreError, match=name):
        run_query(where, "SELECT count(*) FROM articles")
    with (
        pytest.raises(StoreError, match=name),
        query_batches(where, "SELECT title FROM articles") as reader,
    ):
        reader.read_all()
    with pytest.raises(StoreError, match=name):
        read_articles(lake)
    with pytest.raises(StoreError, match=name):
        build_report(where)
    # a day the damage is not in still reads
    assert run_query(where, "SELECT count(*) FROM articles WHERE dt = '2026-11-01'")[1] == [(8,)]


def test_stray_files_and_an_empty_day_are_not_articles(where: str | LakeSettings) -> None:
    lake, _ = _lake(where)
    lake.put_bytes("articles/dt=2026-11-02/notes.txt", b"not parquet")
    lake.put_bytes("articles/dt=2026-11-02/readme.parquet", b"no shard number: not a key")
    lake.put_bytes("articles/dt=2026-11-03/.hidden-000.parquet", b"a temp name")
    lake.put_bytes("articles/README", b"stray")
    assert run_query(where, "SELECT count(*), count(DISTINCT article_id) FROM articles")[1] == [
        (16, 16)
    ]
    assert read_articles(lake).num_rows == 16
