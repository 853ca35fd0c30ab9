"""The query engine: one DuckDB database per process, an isolated session per query."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from etl.errors import StoreError
from etl.lake.engine import session
from etl.lake.opener import open_lake
from etl.lake.query import query_batches, run_query
from tests.support.query_lakes import _fill
from tests.support.s3_server import lake_settings


@pytest.fixture
def lake_dir(tmp_path: Path) -> str:
    root = tmp_path / "lake"
    _fill(open_lake(str(root)), range(1, 3), n=5)
    return str(root)


def _catalogs() -> set[str]:
    """The catalogs of the process's database, but for the asking session's own."""
    with session() as con:
        rows = con.execute("SELECT database_name FROM duckdb_databases() "
                           "WHERE database_name <> current_database()").fetchall()  # fmt: skip
    return {str(r[0]) for r in rows}


def test_queries_share_one_database_but_nothing_a_query_makes_outlives_it(lake_dir: str) -> None:
    before = _catalogs()
    run_query(lake_dir, "CREATE TABLE t AS SELECT count(*) AS n FROM articles")
    run_query(lake_dir, "CREATE TABLE t AS SELECT 2 AS n")  # no "already exists"
    with pytest.raises(StoreError, match="t does not exist"):
        run_query(lake_dir, "SELECT * FROM t")
    with pytest.raises(StoreError):
        run_query(lake_dir, "SELEC nonsense")
    with query_batches(lake_dir, "SELECT * FROM articles") as reader:
        next(iter(reader))  # left unfinished
    assert _catalogs() == before  # every session's catalog was dropped, failed ones included
    # the views are the session's: the shared default catalog has none
    with session() as con:
        con.execute("USE memory")
        assert con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal "
                           "AND database_name = 'memory'").fetchone() == (0,)  # fmt: skip
    # ... and no statement changes the process's settings for the sessions after it
    with pytest.raises(StoreError, match="locked"):
        run_query(lake_dir, "SET threads = 1")
    sql = "SELECT current_setting('autoinstall_known_extensions'), " + ", ".join(
        f"current_setting('{name}')" for name in ("autoload_known_extensions", "lock_configuration")
    )
    assert run_query(lake_dir, sql)[1] == [(False, False, True)]


def test_queries_from_many_threads_at_once(lake_dir: str) -> None:
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            sql = f"SELECT count(*) + {i} FROM articles WHERE dt = '2026-11-0{1 + i % 2}'"
            results.append((i, run_query(lake_dir, sql)[1][0][0]))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(results) == [(i, 10 + i) for i in range(12)]  # 2 intervals x 5 a day


def test_a_forked_child_queries_with_a_database_of_its_own(lake_dir: str) -> None:
    assert run_query(lake_dir, "SELECT count(*) FROM articles")[1] == [(20,)]  # parent's made
    pid = os.fork()
    if pid == 0:  # the child: DuckDB's threads did not survive the fork
        code = 1
        try:
            code = 0 if run_query(lake_dir, "SELECT count(*) FROM articles")[1] == [(20,)] else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert run_query(lake_dir, "SELECT count(*) FROM articles")[1] == [(20,)]


def test_a_locked_query_reads_the_lake_views_and_nothing_else(
    lake_dir: str, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    assert run_query(lake_dir, "SELECT count(*) FROM articles", locked=True)[1] == [(20,)]
    for sql in (f"SELECT * FROM read_text('{secret}')", f"COPY articles TO '{tmp_path}/x.csv'",
                "SET enable_external_access = true", "INSTALL httpfs"):  # fmt: skip
        with pytest.raises(StoreError, match="query failed"):
            run_query(lake_dir, sql, locked=True)
    assert not (tmp_path / "x.csv").exists()
    # the unlocked engine still reads what its caller asks
    assert "hunter2" in run_query(lake_dir, f"SELECT content FROM read_text('{secret}')")[1][0][0]


def test_a_locked_query_reads_an_s3_lake(s3_server: Any) -> None:
    """On S3 the views are Arrow datasets DuckDB scans through Python: the lock-down (no file
    system access) leaves them readable."""
    bucket = s3_server.new_bucket()
    settings = lake_settings(s3_server.endpoint, bucket, path_style=True)
    _fill(open_lake(settings), range(1, 3), n=5)
    sql = "SELECT count(*), count(DISTINCT dt) FROM articles"
    assert run_query(settings, sql, locked=True)[1] == [(20, 2)]
    with query_batches(settings, sql, locked=True) as reader:
        assert reader.read_all().to_pylist() == [{"count_star()": 20, "count(DISTINCT dt)": 2}]
