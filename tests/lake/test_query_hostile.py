"""``newsetl query`` as a hostile user runs it (issue 9 review): statements that write or read
outside the lake, settings that would let DuckDB download extensions, ``--output`` without a
format, a pipe closed early."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from etl.lake.opener import open_lake
from etl.lake.query import run_query
from tests.support.cli_helpers import newsetl
from tests.support.query_lakes import _fill


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    _fill(open_lake(str(root)), range(1, 3), n=5, words=40)
    return root


def test_a_query_writes_nothing_outside_or_inside_the_lake(lake_dir: Path, tmp_path: Path) -> None:
    """``COPY … TO`` wrote any file the user can write (into the lake too: a stray file where
    writers and other engines look); ``ATTACH`` created a database file."""
    outside, inside, db = tmp_path / "x.csv", lake_dir / "articles" / "x.csv", tmp_path / "x.db"
    for sql in (
        f"COPY (SELECT 1 AS x) TO '{outside}'",
        f"COPY (SELECT * FROM articles) TO '{inside}'",
        f"ATTACH '{db}' AS other",
    ):
        run = newsetl("query", "--lake", lake_dir, sql)
        assert run.exit_code == 2 and "query failed" in run.stderr, (sql, run.stdout)
    assert not outside.exists() and not inside.exists() and not db.exists()


def test_a_query_reads_nothing_but_the_lake_views(lake_dir: Path, tmp_path: Path) -> None:
    """``read_text``/``read_csv`` of any path read files beside (or far from) the lake."""
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    manifest = next((lake_dir / "_runs").iterdir())
    for path in (secret, manifest):
        run = newsetl("query", "--lake", lake_dir, f"SELECT * FROM read_text('{path}')")
        assert run.exit_code == 2 and "hunter2" not in run.stdout, run.stdout
    assert run_query(str(lake_dir), "SELECT count(*) FROM articles")[1] == [(20,)]


def test_a_query_cannot_load_extensions_or_unlock_the_settings(lake_dir: Path) -> None:
    """Autoinstall was on: a URL in a statement (``read_parquet('https://…')``) made DuckDB
    download httpfs from extensions.duckdb.org. Checked by the settings, sending nothing."""
    sql = (
        "SELECT current_setting('autoinstall_known_extensions') AS i, "
        "current_setting('autoload_known_extensions') AS l, "
        "current_setting('enable_external_access') AS e, current_setting('lock_configuration') AS c"
    )
    assert run_query(str(lake_dir), sql, locked=True)[1] == [(False, False, False, True)]
    for sql in ("SET enable_external_access = true", "RESET enable_external_access"):
        assert newsetl("query", "--lake", lake_dir, sql).exit_code == 2


def test_output_without_format_takes_the_format_its_name_says(
    lake_dir: Path, tmp_path: Path
) -> None:
    """``-o x.parquet`` without ``-f`` wrote tab-separated text into x.parquet."""
    sql = "SELECT article_id, title FROM articles ORDER BY article_id"
    target = tmp_path / "out.parquet"
    assert newsetl("query", "--lake", lake_dir, "-o", target, sql).exit_code == 0
    assert pq.read_table(target).num_rows == 20
    csv_file, jsonl, other = tmp_path / "o.CSV", tmp_path / "o.jsonl", tmp_path / "o.txt"
    for path in (csv_file, jsonl, other):
        assert newsetl("query", "--lake", lake_dir, "-o", path, sql).exit_code == 0
    assert csv_file.read_text().splitlines()[0] == "article_id,title"
    assert jsonl.read_text().startswith('{"article_id": ')
    assert other.read_text().splitlines()[0] == "article_id\ttitle"  # unknown suffix: tsv
    forced = newsetl("query", "--lake", lake_dir, "-f", "json", "-o", target, sql)
    assert forced.exit_code == 0 and target.read_text().startswith("{")  # -f wins


def test_a_pipe_closed_early_ends_the_query_quietly(lake_dir: Path) -> None:
    """``newsetl query … | head -1`` printed "stdout: cannot write: [Errno 32] Broken pipe"
    and exited 2, as if the query had failed. Now: no message, exit 141 (SIGPIPE's status)."""
    sql = "SELECT * FROM articles, range(3000)"  # 60,000 rows: far more than a pipe buffer holds
    code = "from etl.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "query", "--lake", str(lake_dir), sql],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    with proc.stdout:
        assert proc.stdout.readline().startswith(b"article_id\t")
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait() == 141, err
    assert err == ""


def test_output_inside_the_lake_is_refused(lake_dir: Path) -> None:
    """``-o`` onto an article file's key replaced the articles with the query's result (and a
    new name under articles/ was read as articles by every later query)."""
    key = next((lake_dir / "articles").glob("dt=*/*.parquet"))
    before = key.read_bytes()
    for target in (
        key,
        lake_dir / "articles" / "dt=2026-11-01" / "x-000.parquet",
        lake_dir / "x.csv",
    ):
        run = newsetl("query", "--lake", lake_dir, "-o", target, "SELECT 1 AS x")
        assert run.exit_code == 2 and "inside the lake" in run.stderr, run.stderr
    assert key.read_bytes() == before
    assert run_query(str(lake_dir), "SELECT count(*) FROM articles")[1] == [(20,)]


def test_output_to_a_pipe_or_device_is_written_in_place(lake_dir: Path, tmp_path: Path) -> None:
    """``-o FIFO`` (or ``-o /dev/stdout``) wrote a temp file beside it and renamed it over the
    FIFO: the reader got nothing and the FIFO became a regular file (as root, /dev/stdout too)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader waiting (small result: no thread)
    try:
        run = newsetl("query", "--lake", lake_dir, "-f", "csv", "-o", fifo, "SELECT 1 AS x")
        try:
            got = os.read(fd, 1 << 16)
        except BlockingIOError:  # nothing was written to the FIFO
            got = b""
    finally:
        os.close(fd)
    assert run.exit_code == 0, run.stderr
    assert got == b"x\n1\n"
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "lake"]
