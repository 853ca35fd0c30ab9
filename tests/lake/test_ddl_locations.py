"""``newsetl ddl`` with the locations a hostile user gives (issue 9 review): a lake folder named
like a table, a relative folder, quotes and spaces, Athena on a local folder."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from etl.errors import ConfigError
from etl.lake.ddl import render
from etl.lake.opener import open_lake
from tests.support.cli_helpers import newsetl
from tests.support.query_lakes import _fill


def _count(view: str) -> int:
    con = duckdb.connect()
    try:
        con.execute(view)
        return int(con.execute("SELECT count(*) FROM articles").fetchall()[0][0])
    finally:
        con.close()


@pytest.mark.parametrize("folder", ["articles", "it's a lake", "lake"])
def test_the_duckdb_view_reads_the_lake_whatever_its_folder_is_called(
    tmp_path: Path, folder: str
) -> None:
    """A lake in a folder named ``articles`` was taken for the articles table's own folder:
    the view globbed ``<lake>/*/*.parquet`` and found no file."""
    root = tmp_path / folder
    _fill(open_lake(str(root)), range(1, 3), n=3, words=30)
    assert _count(render("duckdb", str(root))) == 12
    assert _count(render("duckdb", str(root) + "/")) == 12


def test_a_relative_location_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``newsetl ddl duckdb`` (default ``./lake``) printed ``'./lake/articles/*/*.parquet'``: a
    view that reads nothing once pasted into a session started in another folder."""
    _fill(open_lake(str(tmp_path / "lake")), range(1, 2), n=2, words=30)
    monkeypatch.chdir(tmp_path)
    run = newsetl("ddl", "duckdb", "--location", "lake")
    assert run.exit_code == 0 and f"'{tmp_path.as_posix()}/lake/articles/*/*.parquet'" in run.stdout
    monkeypatch.chdir("/")
    assert _count(run.stdout) == 4


def test_athena_needs_an_s3_location() -> None:
    with pytest.raises(ConfigError, match="Athena reads S3"):
        render("athena", "/data/lake")
    run = newsetl("ddl", "athena", "--location", "./lake")
    assert run.exit_code == 2 and "Athena reads S3" in run.stderr
    assert "LOCATION 's3://b/articles/articles/'" in render("athena", "s3://b/articles")
