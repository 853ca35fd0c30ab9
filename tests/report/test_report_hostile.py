"""``newsetl report`` against hostile lakes (issue 9 review): source and rule ids that are not
plain names, a corrupt article file, an empty lake, intervals that wrote nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from typer.testing import CliRunner

from etl.cli import app
from etl.lake.opener import open_lake
from etl.lake.store import publish_interval
from etl.records import Interval
from etl.schema import fetch_log_schema
from tests.support.article_factory import batches, make_article, prose

ODD = ["ñews<script>alert(1)</script>", "a$\\frac$b", "cost $5 & $6", "x|y"]


def _lake(root: Path, *, empty_day: bool = False) -> None:
    lake = open_lake(str(root))
    for day in range(1, 6):
        dt = f"2026-11-{day:02d}"
        start = datetime(2026, 11, day, 9, tzinfo=UTC)
        arts = [
            make_article(f"https://s{j}.example/{day}/{i}", text=prose(day * 100 + j * 10 + i, 50),
                         source_id=src)
            for j, src in enumerate(ODD)
            for i in range(2)
        ]  # fmt: skip
        nothing = empty_day and day == 5  # every fetch failed: no article, one failure row
        log = pa.Table.from_pylist(
            [{"url": f"https://s0.example/{day}/x", "source_id": ODD[0], "status": 503,
              "error_class": "http-5xx", "attempts": 3, "bytes": 0, "dt": dt}],
            schema=fetch_log_schema(),
        )  # fmt: skip
        extra = {
            "sources": {s: {"count": 2, "pages": 0 if nothing else 2, "rows": 0 if nothing else 2,
                            "failed": 0} for s in ODD},
            "rule_hits": {"$\\alpha$<b>": 3, "plain": 1},
        }  # fmt: skip
        publish_interval(lake, Interval(start, start + timedelta(hours=1)),
                         batches([] if nothing else arts, dt=dt, batch_rows=50),
                         fetch_log=log, manifest_extra=extra)  # fmt: skip


def test_source_and_rule_ids_are_names_not_markup_or_mathtext(tmp_path: Path) -> None:
    """A source id with ``$…$`` was parsed as matplotlib mathtext: "a$\\frac$b" made the
    report fail with a traceback; the others were drawn as formulas."""
    _lake(tmp_path / "lake", empty_day=True)
    out = tmp_path / "report.html"
    run = CliRunner().invoke(app, ["report", "--lake", str(tmp_path / "lake"), "--html", str(out)])
    assert run.exit_code == 0, run.output
    page = out.read_text(encoding="utf-8")
    assert "<script>" not in page and "alert(1)" in page  # escaped, as text
    for name in ODD:  # each legend entry is the source id itself, as text
        escaped = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert page.count(f">{escaped}<") >= 2, name  # a legend label and a table cell
    assert ">$\\alpha$&lt;b&gt;<" in page  # the rule's tick label, verbatim
    assert "2026-11-05\t" + ODD[1] + "\t2\t0\t0\t0\t\t" in run.stdout  # nothing written: no yield


def test_a_corrupt_article_file_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    """It was a DuckDB traceback (the report's connection is made outside query's guard)."""
    _lake(tmp_path / "lake")
    bad = next((tmp_path / "lake" / "articles" / "dt=2026-11-02").glob("*.parquet"))
    bad.write_bytes(bad.read_bytes()[:300])
    run = CliRunner().invoke(app, ["report", "--lake", str(tmp_path / "lake")])
    assert run.exit_code == 2
    assert run.exception is None or isinstance(run.exception, SystemExit)
    assert bad.name in run.stderr and "report query failed" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_an_empty_lake_and_a_future_since(tmp_path: Path) -> None:
    empty = CliRunner().invoke(app, ["report", "--lake", str(tmp_path / "none")])
    assert empty.exit_code == 0 and "0 intervals, 0 articles" in empty.stdout
    _lake(tmp_path / "lake")
    out = tmp_path / "r.html"
    args = ["report", "--lake", str(tmp_path / "lake"), "--since", "2099-01-01", "--html", str(out)]
    future = CliRunner().invoke(app, args)
    assert future.exit_code == 0 and "0 intervals, 0 articles" in future.stdout
    assert "<svg" in out.read_text(encoding="utf-8")
