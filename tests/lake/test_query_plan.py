"""``etl.lake.query_plan``: which views and ``dt`` days a statement can read, known before listing.

A day set that is too small would lose rows, so every statement here is also run on a real lake
with and without the pruning and must give the same answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from etl.lake import open_lake
from etl.lake.query import connect
from etl.lake.query_plan import plan
from etl.lake.store import publish_interval
from etl.records import Interval
from tests.support.article_factory import batches, make_article

DAYS_OF = [
    ("SELECT count(*) FROM articles WHERE dt = '2026-11-04'", ("2026-11-04",)),
    ("SELECT count(*) FROM articles WHERE '2026-11-04' = dt AND word_count > 0", ("2026-11-04",)),
    ("SELECT * FROM articles a WHERE a.dt BETWEEN '2026-11-02' AND '2026-11-03'",
     ("2026-11-02", "2026-11-03")),
    ("SELECT * FROM Articles WHERE DT > '2026-11-01' AND dt < '2026-11-04'",
     ("2026-11-02", "2026-11-03")),
    ("SELECT * FROM articles WHERE dt IN ('2026-11-01', '2026-11-03') AND dt <= '2026-11-02'",
     ("2026-11-01",)),
    ("SELECT * FROM articles WHERE dt = '2026-11-01' AND dt = '2026-11-02'", ()),
    ("WITH x AS (SELECT * FROM articles WHERE dt = '2026-11-02') SELECT count(*) FROM x",
     ("2026-11-02",)),
    # Not provably a day set: the whole lake.
    ("SELECT count(*) FROM articles", None),
    ("SELECT count(*) FROM articles WHERE dt >= '2026-11-02'", None),
    ("SELECT count(*) FROM articles WHERE dt = '2026-11-01' OR dt = '2026-11-02'", None),
    ("SELECT count(*) FROM articles WHERE dt < '2026-11'", None),
    ("SELECT count(*) FROM articles WHERE CAST(dt AS DATE) = DATE '2026-11-02'", None),
    ("SELECT count(*) FROM articles WHERE dt = '2026-11-02' "
     "AND article_id IN (SELECT article_id FROM articles)", None),
    ("SELECT count(*) FROM articles a JOIN fetch_log f ON a.url = f.url "
     "WHERE a.dt = '2026-11-02'", None),
    ("SELECT count(*) FROM articles a(x, dt) WHERE dt = 'https://news.example.com/1/0'", None),
    ("SELECT count(*) FROM fetch_log WHERE dt = '2026-11-02'", None),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "days"), DAYS_OF)
def test_days_of_a_statement(sql: str, days: tuple[str, ...] | None) -> None:
    assert plan(sql).days == days


def test_views_of_a_statement() -> None:
    assert plan("SELECT count(*) FROM fetch_log").views == frozenset({"fetch_log"})
    assert plan("SELECT 1 FROM articles, fetch_log").views == frozenset({"articles", "fetch_log"})
    assert plan("WITH x AS (SELECT 1) SELECT * FROM x").views == frozenset()
    # Unknown (build every view): the catalog, table functions, statements that are not a
    # SELECT, bad SQL.
    for sql in (
        "SHOW TABLES",
        "DESCRIBE articles",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM duckdb_views()",
        "PRAGMA table_info('articles')",
        "SELEC 1",
        "",
    ):
        assert plan(sql).views is None and plan(sql).days is None


@pytest.fixture(scope="module")
def five_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plan") / "lake"
    lake = open_lake(str(root))
    for day in range(1, 6):
        start = datetime(2026, 11, day, 6, tzinfo=UTC)
        arts = [make_article(f"https://news.example.com/{day}/{i}", seed=i) for i in range(day)]
        publish_interval(lake, Interval(start, start + timedelta(hours=1)),
                         batches(arts, dt=f"2026-11-{day:02d}"))  # fmt: skip
    return root


@pytest.mark.parametrize("sql", [sql for sql, _ in DAYS_OF])
def test_pruned_views_give_the_same_rows(five_days: Path, sql: str) -> None:
    """The lake listed for the statement alone answers it exactly as the whole lake does."""
    everything = connect(str(five_days))
    pruned = connect(str(five_days), sql)
    try:
        assert sorted(map(repr, pruned.execute(sql).fetchall())) == sorted(
            map(repr, everything.execute(sql).fetchall())
        )
    finally:
        everything.close()
        pruned.close()
