"""Golden test: every page of the seeds site gives exactly the expected text and metadata.

For each ``tests/cases/seeds/expected/<name>.txt`` (``name`` is the page's folder under
``seeds/site/`` with ``/`` → ``__``) the page ``seeds/site/<folder>/index.html`` is run through
:func:`etl.article.process_page` with default settings; its clean text must equal the ``.txt``
line for line and its metadata must match ``<name>.json``.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import pytest

from etl.article.normalization import article_row
from etl.article.process import process_page
from etl.config import Settings
from etl.records import Article, Page
from etl.urls import canonicalize

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "seeds" / "site"
EXPECTED = Path(__file__).parents[1] / "cases" / "seeds" / "expected"
BASE = "https://canadiannews.example/"
NAMES = sorted(p.stem for p in EXPECTED.glob("*.txt"))
KHARKIV = "2022__05__14__russia-withdraw-kharkiv"

_cache: dict[str, Article] = {}


def folder(name: str) -> str:
    return name.replace("__", "/")


def article(name: str) -> Article:
    if name not in _cache:
        rel = folder(name)
        page = Page(id=name, body=(SITE / rel / "index.html").read_bytes(), url=f"{BASE}{rel}/")
        _cache[name] = process_page(page, Settings())
    return _cache[name]


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().splitlines()]


def expected_text(name: str) -> str:
    return (EXPECTED / f"{name}.txt").read_text(encoding="utf-8")


def expected_meta(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXPECTED / f"{name}.json").read_text(encoding="utf-8"))
    return data


def test_every_seed_article_has_expected_files() -> None:
    pages = sorted(
        p.parent.relative_to(SITE).as_posix().replace("/", "__") for p in SITE.rglob("*/index.html")
    )
    assert pages == NAMES
    assert all((EXPECTED / f"{n}.json").is_file() for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_clean_text_matches_expected(name: str) -> None:
    got, want = lines(article(name).cleaned.text), lines(expected_text(name))
    diff = "\n".join(difflib.unified_diff(want, got, "expected", "got", lineterm="", n=1))
    assert got == want, f"{name}: clean text differs from the expected file\n{diff}"


@pytest.mark.parametrize("name", NAMES)
def test_metadata_matches_expected(name: str) -> None:
    row = article_row(article(name), dt=None, rules_version="golden", strict=False)
    published = row["published_at"]
    got = {
        "title": row["title"],
        "authors": row["authors"],
        "published_at": published.isoformat() if published is not None else None,
        "language": row["language"],
        "captions": row["captions"],
        "canonical_url": row["canonical_url"],
    }
    want = expected_meta(name)
    want["canonical_url"] = canonicalize(want["canonical_url"])  # the etl.urls key form
    assert got == want
    if published is not None:
        assert published.utcoffset().total_seconds() == 0


def test_kharkiv_keeps_every_paragraph_and_drops_the_widgets() -> None:
    a = article(KHARKIV)
    text = a.cleaned.text
    paragraphs = lines(expected_text(KHARKIV))
    assert len(paragraphs) == 20
    got = lines(text)
    for paragraph in paragraphs:
        assert paragraph in got, f"missing paragraph: {paragraph[:80]}"
    for widget in (
        "More in Russo-Ukrainian War",
        "Trending on Canadian News",
        "Leave a Reply",
        "Your email address will not be published",
        "(Photo:",
    ):
        assert widget not in text, f"boilerplate left in the text: {widget!r}"
    captions = set(a.extracted.captions) | set(a.cleaned.captions)
    for caption in expected_meta(KHARKIV)["captions"]:
        assert caption in captions
    assert len(expected_meta(KHARKIV)["captions"]) == 2
