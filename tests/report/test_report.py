"""``newsetl report``: figures from manifests, fetch_log and articles; drop flags; SVG marks that
match the data; one self-contained HTML file."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from etl.cli import app
from etl.lake.opener import open_lake
from etl.lake.store import publish_interval
from etl.records import Interval
from etl.report.figures import build_report, flags
from etl.report.html import render_html
from etl.schema import fetch_log_schema
from tests.support.article_factory import batches, make_article, prose

DAYS = [f"2026-11-{d:02d}" for d in range(1, 11)]


def _publish(lake: Any, day: int) -> None:
    dt = f"2026-11-{day:02d}"
    start = datetime(2026, 11, day, 9, tzinfo=UTC)
    broken = day == 10  # a redesign: the extractor keeps only a teaser of 2 pages of 10
    arts = [
        make_article(f"https://good.example/{day}/{i}", text=prose(day * 100 + i, 300),
                     source_id="good", seed=day * 100 + i)
        for i in range(4 + day % 3)
    ] + [
        make_article(f"https://broken.example/{day}/{i}",
                     text=prose(day * 100 + 50 + i, 30 if broken else 300),
                     source_id="broken", seed=day * 100 + 50 + i)
        for i in range(2 if broken else 8)
    ]  # fmt: skip
    log = pa.Table.from_pylist(
        [{"url": f"https://broken.example/{day}/x{i}", "source_id": "broken", "status": 503,
          "error_class": "http-5xx", "attempts": 3, "bytes": 100, "dt": dt}
         for i in range(day % 4)]
        + [{"url": f"https://good.example/{day}/t", "source_id": "good", "status": None,
            "error_class": "timeout", "attempts": 4, "bytes": 0, "dt": dt}],
        schema=fetch_log_schema(),
    )  # fmt: skip
    extra = {
        "sources": {
            "good": {"count": 12, "pages": 4 + day % 3, "rows": 4 + day % 3, "failed": 0},
            "broken": {"count": 10, "pages": 10 if broken else 8, "rows": 2 if broken else 8,
                       "failed": 8 if broken else 0},
        },
        "rule_hits": {"share-links": 10 * day, "newsletter": 7, "trending": 3 * day},
        "dedupe": {"seen": day, "duplicate_id": 0, "duplicate_content": 1, "near_duplicate": 0},
        "urls_tried": log.num_rows,
    }  # fmt: skip
    interval = Interval(start, start + timedelta(hours=1))
    arts_batches = batches(arts, dt=dt, batch_rows=50)
    publish_interval(lake, interval, arts_batches, fetch_log=log, manifest_extra=extra)


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report") / "lake"
    lake = open_lake(str(root))
    for day in range(1, 11):
        _publish(lake, day)
    lake.put_bytes("_runs/20261105T2300Z-20261106T0000Z.json", b"{broken json")  # skipped
    return root


def test_figures_and_flags(lake_dir: Path) -> None:
    rep = build_report(str(lake_dir))
    assert len(rep.intervals) == 10 and rep.intervals[0]["seen"] == 1
    assert rep.intervals[0]["duplicates"] == 1 and rep.intervals[0]["bytes"] > 0
    day10 = {r["source"]: r for r in rep.days if r["dt"] == "2026-11-10"}
    assert day10["broken"]["written"] == 2 and day10["broken"]["fetched"] == 10
    assert day10["broken"]["yield"] == pytest.approx(0.2)
    assert day10["broken"]["failures"] == {"http-5xx": 2}
    assert day10["good"]["failures"] == {"timeout": 1}
    assert day10["good"]["title_share"] == 1.0 and day10["good"]["author_share"] == 1.0
    assert rep.rules["share-links"] == sum(10 * d for d in range(1, 11))
    assert rep.languages["good"]["en"] == sum(4 + d % 3 for d in range(1, 11))
    flagged = {(f["source"], f["dt"], f["metric"]) for f in rep.flags}
    assert flagged == {("broken", "2026-11-10", "yield"), ("broken", "2026-11-10", "words")}
    assert len(build_report(str(lake_dir), since="2026-11-09").intervals) == 2


def test_flags_need_a_trailing_week() -> None:
    rows = [{"source": "s", "dt": f"d{i}", "yield": 1.0, "words": 500.0} for i in range(3)]
    rows.append({"source": "s", "dt": "d3", "yield": 0.1, "words": 100.0})
    assert {f["metric"] for f in flags(rows)} == {"yield", "words"}
    assert flags(rows[1:]) == []  # two days of history are not enough to judge


def _marks(svg: str, kind: str) -> dict[str, tuple[float, float]]:
    """gid -> (width, height) of the path inside each ``<g id="kind|...">``."""
    out = {}
    for gid, d in re.findall(rf'<g id="({kind}\|[^"]+)">\s*<path d="([^"]+)"', svg):
        nums = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", d)]
        xs, ys = nums[0::2], nums[1::2]
        out[gid] = (max(xs) - min(xs), max(ys) - min(ys))
    return out


def test_svg_marks_match_the_data(lake_dir: Path) -> None:
    rep = build_report(str(lake_dir))
    page = render_html(rep)
    volume = _marks(page, "volume")
    expected = {f"volume|{r['source']}|{r['dt']}|{r['written']}" for r in rep.days}
    assert set(volume) == expected  # one bar per source per day, labelled with its number
    scale = {round(h / int(g.rsplit("|", 1)[1]), 3) for g, (_, h) in volume.items()}
    assert len(scale) == 1  # every bar's height is its number times one scale
    failures = _marks(page, "failures")
    assert failures["failures|http-5xx|2026-11-10|2"][1] == pytest.approx(
        2 * failures["failures|timeout|2026-11-10|1"][1], rel=1e-3
    )
    assert "failures|http-5xx|2026-11-04|0" in failures  # zero-height bars are still marks
    rules = _marks(page, "rule")
    widths = {g.split("|")[1]: (w, int(g.rsplit("|", 1)[1])) for g, (w, _) in rules.items()}
    assert set(widths) == {"share-links", "newsletter", "trending"}
    per_hit = {round(w / n, 3) for w, n in widths.values()}
    assert len(per_hit) == 1
    assert 'id="yield|broken"' in page and 'id="yield|good"' in page


def test_html_is_self_contained(lake_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "--lake", str(lake_dir), "--html", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "10 intervals" in result.stdout
    assert "FLAG broken 2026-11-10: yield 0.20 against 1.00 over its trailing week" in result.stdout
    page = out.read_text()
    assert page.count("<svg") == 4 and "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from the web
    assert "2026-11-10" in page
    bad = CliRunner().invoke(app, ["report", "--lake", str(lake_dir), "--since", "last week"])
    assert bad.exit_code == 2 and "not a date" in bad.stderr
