"""One identity per article, through the real pipeline: a page that declares another site's
URL as its canonical link keeps its own ``article_id`` (the link lands in ``canonical_link``),
so it can neither take that article's id nor be dropped as "already seen" because of it.

Reproduction (issue 7): before, ``normalize`` took any absolute canonical link for the id, so
page B on site-b declaring site-a's article A as canonical got A's ``article_id``: published
after A, B was dropped by dedupe as already in the lake; published with A, one of the two was
dropped as a duplicate id. Both must land.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from etl.article.process import read_page
from etl.cli import app
from etl.config import Settings
from etl.lake.opener import open_lake
from etl.lake.tables import read_articles
from etl.records import Interval
from etl.runner.ingestion import ingest as ingest_pages
from etl.urls import article_id
from tests.support.sites import Response, Site

PAGES = Path(__file__).resolve().parents[1] / "cases" / "pages"
A_URL = "https://site-a.example/news/article_en.html"
B_BASE = "https://www.site-b.example/world/"
B_URL = B_BASE + "article_de.html"
HOUR1, HOUR2 = "2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z"
UA = "newsetl-test/0.1 (+https://example.org/newsetl-tests)"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NEWSETL_LAKE", "NEWSETL_SOURCES", "NEWSETL_WORKERS"):
        monkeypatch.delenv(name, raising=False)


def newsetl(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def page_a(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "article_en.html").write_bytes((PAGES / "article_en.html").read_bytes())
    return folder


def page_b(folder: Path, canonical: str = A_URL) -> Path:
    """Another article (another text), declaring site-a's article as its canonical link."""
    folder.mkdir(parents=True, exist_ok=True)
    html = (PAGES / "article_de.html").read_text(encoding="utf-8")
    link = f'<link rel="canonical" href="{canonical}">'
    assert "<head>" in html
    (folder / "article_de.html").write_text(html.replace("<head>", "<head>" + link, 1), "utf-8")
    return folder


def rows(lake: Path) -> dict[str, dict[str, object]]:
    table = read_articles(open_lake(str(lake)))
    return {str(r["url"]): r for r in table.to_pylist()}


def ingest(folder: Path, lake: Path, base: str, start: str) -> None:
    result = newsetl("ingest", folder, "--lake", lake, "--base-url", base, "--start", start)
    assert result.exit_code == 0, result.output


def test_a_cross_site_canonical_cannot_make_a_later_page_already_seen(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ingest(page_a(tmp_path / "a"), lake, "https://site-a.example/news/", HOUR1)
    ingest(page_b(tmp_path / "b"), lake, B_BASE, HOUR2)  # an hour later: A is in the seen index

    got = rows(lake)
    assert set(got) == {A_URL, B_URL}  # before: B dropped as already seen (it carried A's id)
    a, b = got[A_URL], got[B_URL]
    assert a["article_id"] == article_id(A_URL) and a["canonical_link"] is None
    assert b["article_id"] == article_id(B_URL) != a["article_id"]
    assert b["canonical_url"] == "https://site-b.example/world/article_de.html"
    assert b["domain"] == "site-b.example"
    assert b["canonical_link"] == A_URL  # kept, for whoever wants to follow it


@pytest.mark.parametrize("alias", ["www.", "amp.", "m.", "mobile."])
def test_the_amp_or_mobile_copy_of_an_article_is_the_same_article(
    tmp_path: Path, alias: str
) -> None:
    """The same page met an hour later on the AMP or mobile host of its site, with tracking
    parameters in its URL: one article, one id, so the second run skips it as already seen."""
    lake = tmp_path / "lake"
    ingest(page_a(tmp_path / "a"), lake, "https://site-a.example/news/", HOUR1)
    url = f"http://{alias}site-a.example/news/article_en.html?utm_source=rss&fbclid=x"
    page = read_page(PAGES / "article_en.html", url=url)
    hour2 = Interval(datetime(2026, 11, 25, 11, tzinfo=UTC), datetime(2026, 11, 25, 12, tzinfo=UTC))
    summary = ingest_pages([page], Settings(), interval=hour2, lake=open_lake(str(lake)))
    assert not summary.failures and summary.dropped.get("seen") == 1, summary.dropped
    got = rows(lake)
    assert list(got) == [A_URL]
    assert (
        article_id(f"http://{alias}site-a.example/news/article_en.html?utm_source=rss")
        == (got[A_URL]["article_id"])
    )


@pytest.mark.parametrize(("b_url", "landed"), [(B_URL, 2), ("https://site-a.example/b.html", 1)])
def test_a_cross_site_canonical_in_the_same_run_is_no_duplicate(
    tmp_path: Path, b_url: str, landed: int
) -> None:
    """One ingest of A and B. B on another site keeps its own id: both land (before: B took A's
    id and one of the two was dropped as a duplicate). B on A's own site declaring A is the
    same article, as declared: one lands."""
    pages = [
        read_page(page_a(tmp_path / "a") / "article_en.html", url=A_URL),
        read_page(page_b(tmp_path / "b") / "article_de.html", url=b_url),
    ]
    lake = open_lake(str(tmp_path / "lake"))
    interval = Interval(
        datetime(2026, 11, 25, 10, tzinfo=UTC), datetime(2026, 11, 25, 11, tzinfo=UTC)
    )
    summary = ingest_pages(pages, Settings(), interval=interval, lake=lake, source_id="local")
    assert not summary.failures
    got = rows(tmp_path / "lake")
    assert len(got) == landed
    assert got[A_URL]["article_id"] == article_id(A_URL)
    if landed == 2:
        assert got[B_URL]["article_id"] == article_id(B_URL)
        assert got[B_URL]["canonical_link"] == A_URL


def test_newsetl_run_keeps_a_fetched_page_that_claims_another_sites_article(
    tmp_path: Path, site: Site
) -> None:
    """Over HTTP: the lake holds A (site-a); a page on the 127.0.0.1 site declares A's URL as its
    canonical. ``newsetl run`` publishes it under its own id; before, it published nothing."""
    lake = tmp_path / "lake"
    ingest(page_a(tmp_path / "a"), lake, "https://site-a.example/news/", HOUR1)
    body = (page_b(tmp_path / "b") / "article_de.html").read_bytes()
    site.routes["/world/copy.html"] = Response(200, body)
    listed = tmp_path / "urls.txt"
    listed.write_text(f"{site.url('/world/copy.html')} 2026-11-25T11:30:00Z\n", encoding="utf-8")
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        yaml.safe_dump(
            {
                "allow_private_addresses": True,
                "user_agent": UA,
                "sources": [
                    {"id": "copies", "kind": "urls", "path": str(listed), "per_host_delay_s": 0}
                ],
            }
        ),
        encoding="utf-8",
    )
    result = newsetl(
        "run", "--sources", sources, "--lake", lake, "--start", HOUR2, "--end", "2026-11-25T12:00Z"
    )
    assert result.exit_code == 0, result.output
    got = rows(lake)
    copy = got.get(site.url("/world/copy.html"))
    assert copy is not None, sorted(got)  # before: dropped by dedupe as A, already seen
    assert copy["article_id"] == article_id(site.url("/world/copy.html"))
    assert copy["canonical_link"] == A_URL and copy["source_id"] == "copies"
    assert [r["article_id"] for r in got.values()].count(article_id(A_URL)) == 1
