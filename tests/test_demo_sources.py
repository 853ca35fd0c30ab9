"""The sources files the project ships: the demo's template (``make run``), its URL list, and the
example for real feeds (documentation: validated here, never fetched)."""

from __future__ import annotations

import re
from pathlib import Path

from etl.config import load_sources

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
SITE = SEEDS / "site"


def _render(tmp_path: Path, base: str = "http://127.0.0.1:8765") -> Path:
    text = (SEEDS / "sources.demo.yaml").read_text(encoding="utf-8")
    path = tmp_path / "sources.yaml"
    path.write_text(text.replace("{{BASE}}", base), encoding="utf-8")
    return path


def test_demo_template_validates_once_rendered(tmp_path: Path) -> None:
    assert "{{BASE}}" in (SEEDS / "sources.demo.yaml").read_text(encoding="utf-8")
    sources = load_sources(_render(tmp_path))
    assert sources.allow_private_addresses is True  # the site runs on 127.0.0.1
    kinds = {s.id: s.kind for s in sources.sources}
    assert kinds == {"seeds-urls": "urls", "seeds-rss": "rss", "seeds-sitemap": "sitemap"}
    for s in sources.sources:
        assert s.url is not None and s.url.startswith("http://127.0.0.1:8765/")


def test_url_list_names_every_article_page_of_the_site_undated() -> None:
    lines = [
        line.strip()
        for line in (SITE / "urls.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    pages = sorted(
        "{{BASE}}/" + p.parent.relative_to(SITE).as_posix() + "/"
        for p in SITE.rglob("*/index.html")
    )
    assert sorted(lines) == pages and len(pages) == 7
    assert all(len(line.split()) == 1 for line in lines)  # no dates: the current hour takes them


def test_feed_and_sitemap_list_the_same_pages() -> None:
    for name in ("feed.xml", "sitemap.xml"):
        text = (SITE / name).read_text(encoding="utf-8")
        listed = set(re.findall(r"\{\{BASE\}\}/[^<\s\"]+/(?=<)", text))
        urls = {line.strip() for line in (SITE / "urls.txt").read_text().splitlines()}
        assert listed and listed <= urls, name


def test_example_sources_validate_and_stay_public() -> None:
    sources = load_sources(SEEDS / "sources.example.yaml")
    assert sources.allow_private_addresses is False
    assert {s.kind for s in sources.sources} == {"rss", "sitemap", "urls", "warc"}
    assert re.search(r"https?://|@", sources.user_agent)
    for s in sources.sources:
        where = s.url or s.path or ""
        assert "127.0.0.1" not in where and "localhost" not in where, s.id
        if s.kind in ("rss", "sitemap"):
            assert where.startswith("https://"), s.id
            assert s.per_host_delay_s >= 1.0, s.id
