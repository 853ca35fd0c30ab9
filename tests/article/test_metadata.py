"""etl.article.metadata: JSON-LD, meta fallbacks, dates with source, authors, canonical, lang."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from lxml.html import HtmlElement, document_fromstring

from etl.article.metadata import Meta, clean_authors, extract_meta, parse_date

URL = "https://www.example.com/news/2024/03/18/port-strike/?utm_source=feed"


def doc(head: str = "", body: str = "<p>Body text.</p>", lang: str | None = None) -> HtmlElement:
    attr = f' lang="{lang}"' if lang else ""
    html = f"<!DOCTYPE html><html{attr}><head>{head}</head><body>{body}</body></html>"
    tree: HtmlElement = document_fromstring(html)
    return tree


def ld(obj: Any) -> str:
    return f'<script type="application/ld+json">{json.dumps(obj)}</script>'


def meta_of(
    head: str = "", body: str = "<p>x</p>", url: str | None = URL, lang: str | None = None
) -> tuple[Meta, list[tuple[datetime, str]]]:
    return extract_meta(doc(head, body, lang), url)


GRAPH = {
    "@context": "https://schema.org",
    "@graph": [
        {"@type": "Organization", "@id": "#org", "name": "Example Gazette"},
        {"@type": "WebPage", "@id": URL, "name": "Port strike ends | Example Gazette"},
        {
            "@type": "NewsArticle",
            "headline": "Port strike ends after 11 days",
            "datePublished": "2024-03-18T14:05:00-03:00",
            "dateModified": "2024-03-18T16:30:00-03:00",
            "author": {"@type": "Person", "name": "Priya Raman", "url": "/authors/priya"},
            "keywords": "ports, labour,strikes",
            "articleSection": "Business",
            "image": {"@type": "ImageObject", "url": "/img/port.jpg", "width": 1200},
            "description": "Dock workers ratified a four-year deal.",
        },
    ],
}


# --- JSON-LD ----------------------------------------------------------------------------------


def test_news_article_inside_graph() -> None:
    m, dates = meta_of(ld(GRAPH))
    assert m.title == "Port strike ends after 11 days"
    assert m.authors == ("Priya Raman",)
    assert dates[0] == (datetime(2024, 3, 18, 17, 5, tzinfo=UTC), "json-ld")
    assert m.modified_at == datetime(2024, 3, 18, 19, 30, tzinfo=UTC)
    assert m.tags == ("ports", "labour", "strikes")
    assert m.categories == ("Business",)
    assert m.image_url == "https://www.example.com/img/port.jpg"
    assert m.description == "Dock workers ratified a four-year deal."
    assert m.sitename == "Example Gazette"  # from the Organization node


def test_article_type_given_as_a_list_and_top_level_list() -> None:
    objs = [
        {"@type": "BreadcrumbList", "itemListElement": []},
        {"@type": ["NewsArticle", "Article"], "headline": "Listed type"},
    ]
    m, _ = meta_of(ld(objs))
    assert m.title == "Listed type"


def test_first_article_object_wins_and_broken_json_ld_is_skipped() -> None:
    head = (
        '<script type="application/ld+json">{"@type": "NewsArticle", "headline": </script>'
        + ld({"@type": "ReportageNewsArticle", "headline": "First valid"})
        + ld({"@type": "NewsArticle", "headline": "Second"})
    )
    m, _ = meta_of(head)
    assert m.title == "First valid"


@pytest.mark.parametrize(
    ("author", "expected"),
    [
        ({"@type": "Person", "name": "Jane Doe"}, ("Jane Doe",)),
        (
            [{"@type": "Person", "name": "Priya Raman"}, {"name": "Marc-André Tremblay"}],
            ("Priya Raman", "Marc-André Tremblay"),
        ),
        (["Ann Poe", {"name": "John Roe"}], ("Ann Poe", "John Roe")),
        ("By Jane Doe", ("Jane Doe",)),
        ("Jane Doe and John Roe", ("Jane Doe", "John Roe")),
        ({"@type": "Organization", "name": "Reuters"}, ()),
    ],
)
def test_author_as_object_list_or_string(author: Any, expected: tuple[str, ...]) -> None:
    m, _ = meta_of(ld({"@type": "NewsArticle", "author": author}))
    assert m.authors == expected


def test_keywords_as_list() -> None:
    m, _ = meta_of(ld({"@type": "NewsArticle", "keywords": ["Halifax", "ports", "Halifax"]}))
    assert m.tags == ("Halifax", "ports")


def test_image_as_list_or_string() -> None:
    m, _ = meta_of(ld({"@type": "NewsArticle", "image": ["https://cdn.example.com/a.jpg", "b"]}))
    assert m.image_url == "https://cdn.example.com/a.jpg"
    m, _ = meta_of(ld({"@type": "NewsArticle", "image": "/relative.png"}))
    assert m.image_url == "https://www.example.com/relative.png"
    m, _ = meta_of(ld({"@type": "NewsArticle", "image": {"contentUrl": "/c.png"}}))
    assert m.image_url == "https://www.example.com/c.png"


def test_publisher_name_gives_the_site_name_and_og_site_name_wins() -> None:
    art = {"@type": "NewsArticle", "publisher": {"@type": "Organization", "name": "The Daily"}}
    m, _ = meta_of(ld(art))
    assert m.sitename == "The Daily"
    m, _ = meta_of(ld(art) + '<meta property="og:site_name" content="Daily Site">')
    assert m.sitename == "Daily Site"


# --- meta-tag fallbacks -----------------------------------------------------------------------

OG_HEAD = """
<meta property="og:title" content="OG headline">
<meta property="og:description" content="OG description">
<meta property="og:site_name" content="OG Site">
<meta property="og:image" content="/og.jpg">
<meta property="article:published_time" content="2024-01-09T06:00:00-05:00">
<meta property="article:modified_time" content="2024-01-09T08:00:00-05:00">
<meta property="article:section" content="Business">
<meta property="article:tag" content="housing">
<meta property="article:tag" content="Toronto">
<meta name="author" content="Elliot Nakamura">
<meta name="twitter:creator" content="@gazette">
<meta property="article:author" content="https://facebook.com/elliot">
"""


def test_meta_tag_fallbacks_without_json_ld() -> None:
    m, dates = meta_of(OG_HEAD, url="https://www.example.com/business/housing")
    assert m.title == "OG headline"
    assert m.description == "OG description"
    assert m.sitename == "OG Site"
    assert m.image_url == "https://www.example.com/og.jpg"
    assert dates == [(datetime(2024, 1, 9, 11, 0, tzinfo=UTC), "meta")]
    assert m.modified_at == datetime(2024, 1, 9, 13, 0, tzinfo=UTC)
    assert m.categories == ("Business",)
    assert m.tags == ("housing", "Toronto")
    assert m.authors == ("Elliot Nakamura",)  # handle and profile URL are not names


def test_json_ld_wins_over_meta_tags() -> None:
    m, dates = meta_of(ld(GRAPH) + OG_HEAD)
    assert m.title == "Port strike ends after 11 days"
    assert m.authors == ("Priya Raman",)
    assert [s for _, s in dates] == ["json-ld", "meta", "url"]


def test_title_falls_back_to_h1_then_title_element() -> None:
    m, _ = meta_of("<title>Page title | Site</title>", body="<h1> Headline  here </h1><p>x</p>")
    assert m.title == "Headline here"
    m, _ = meta_of("<title>Page title | Site</title>", body="<p>x</p>")
    assert m.title == "Page title | Site"


def test_byline_markup_is_the_last_author_fallback() -> None:
    body = '<p class="byline">By Jane Doe | Staff Reporter | 3 hours ago</p><p>x</p>'
    m, _ = meta_of("", body=body)
    assert m.authors == ("Jane Doe",)
    body = '<span class="meta">Von <a rel="author" href="/a/k">Katrin Hoffmann</a></span>'
    m, _ = meta_of("", body=body)
    assert m.authors == ("Katrin Hoffmann",)


def test_keywords_meta_splits_on_commas() -> None:
    m, _ = meta_of('<meta name="keywords" content="ferries, harbour; transit">')
    assert m.tags == ("ferries", "harbour", "transit")


# --- dates and their source -------------------------------------------------------------------


def test_date_sources_in_order_of_trust() -> None:
    head = ld({"@type": "NewsArticle", "datePublished": "2024-03-18T17:00:00Z"}) + (
        '<meta property="article:published_time" content="2024-03-18T16:00:00Z">'
    )
    body = '<time datetime="2024-03-19T10:00:00Z">Mar 19</time><p>x</p>'
    _, dates = meta_of(head, body=body)
    assert dates == [
        (datetime(2024, 3, 18, 17, 0, tzinfo=UTC), "json-ld"),
        (datetime(2024, 3, 18, 16, 0, tzinfo=UTC), "meta"),
        (datetime(2024, 3, 18, tzinfo=UTC), "url"),
        (datetime(2024, 3, 19, 10, 0, tzinfo=UTC), "text"),
    ]


def test_url_date_when_the_page_has_none() -> None:
    _, dates = meta_of("", url="https://example.com/2022/05/14/russia-withdraw-kharkiv/")
    assert dates == [(datetime(2022, 5, 14, tzinfo=UTC), "url")]
    _, dates = meta_of("", url="https://example.com/news/20230907-library.html")
    assert dates == [(datetime(2023, 9, 7, tzinfo=UTC), "url")]


def test_time_element_gives_a_text_date() -> None:
    body = '<time datetime="2024-02-16T11:00:00-05:00">11 a.m.</time><p>x</p>'
    _, dates = meta_of("", body=body, url="https://example.com/live/storm")
    assert dates == [(datetime(2024, 2, 16, 16, 0, tzinfo=UTC), "text")]


def test_no_dates_at_all() -> None:
    _, dates = meta_of("", url="https://example.com/features/tides/")
    assert dates == []
    _, dates = meta_of("", url=None)
    assert dates == []


def test_impossible_url_date_is_ignored() -> None:
    _, dates = meta_of("", url="https://example.com/2023/02/30/story/")
    assert dates == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-18T14:05:00-03:00", datetime(2024, 3, 18, 17, 5, tzinfo=UTC)),
        ("2024-03-18T14:05:00-0300", datetime(2024, 3, 18, 17, 5, tzinfo=UTC)),
        ("2024-03-18T17:05:00Z", datetime(2024, 3, 18, 17, 5, tzinfo=UTC)),
        ("2024-03-18 17:05:00", datetime(2024, 3, 18, 17, 5, tzinfo=UTC)),  # naive: UTC
        ("2024-03-18", datetime(2024, 3, 18, tzinfo=UTC)),
        ("2024-03-18T25:99:00+00:00junk", datetime(2024, 3, 18, tzinfo=UTC)),
        ("March 18, 2024", None),
        ("", None),
        (None, None),
        ("2024-13-45", None),
    ],
)
def test_parse_date(value: object, expected: datetime | None) -> None:
    assert parse_date(value) == expected


# --- clean_authors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["By Jane Doe | Staff Reporter | 3 hours ago"], ("Jane Doe",)),
        (["John Roe and Ann Poe"], ("John Roe", "Ann Poe")),
        (["John Roe & Ann Poe; Li Wei"], ("John Roe", "Ann Poe", "Li Wei")),
        (["Von Katrin Hoffmann und Jonas Weber"], ("Katrin Hoffmann", "Jonas Weber")),
        (["by: Jane Doe"], ("Jane Doe",)),
        (["Jane Doe", "jane doe", "JANE DOE"], ("Jane Doe",)),
        (["https://example.com/authors/jane-doe", "jane@example.com", "Jane Doe"], ("Jane Doe",)),
        (["www.example.com/jane"], ()),
        (["Associated Press"], ()),
        (["Updated 5 minutes ago"], ()),
        (["One Two Three Four Five Six"], ()),
        (["Andrew Sanders"], ("Andrew Sanders",)),  # "and" inside a word is no separator
        ([""], ()),
    ],
)
def test_clean_authors(raw: list[str], expected: tuple[str, ...]) -> None:
    assert clean_authors(raw) == expected


# --- canonical and language -------------------------------------------------------------------


def test_canonical_link_resolved_against_the_page_url() -> None:
    m, _ = meta_of('<link rel="canonical" href="/news/port-strike/">')
    assert m.canonical_url == "https://www.example.com/news/port-strike/"
    m, _ = meta_of('<link rel="canonical" href="https://other.example.org/a">')
    assert m.canonical_url == "https://other.example.org/a"


def test_og_url_is_the_canonical_fallback() -> None:
    m, _ = meta_of('<meta property="og:url" content="https://www.example.com/og-url/">')
    assert m.canonical_url == "https://www.example.com/og-url/"


def test_no_canonical() -> None:
    m, _ = meta_of("")
    assert m.canonical_url is None


def test_relative_canonical_without_a_page_url_stays_relative() -> None:
    m, _ = meta_of('<link rel="canonical" href="/a/">', url=None)
    assert m.canonical_url == "/a/"


@pytest.mark.parametrize(
    ("lang", "head", "expected"),
    [
        ("en-US", "", "en"),
        ("DE", "", "de"),
        (None, '<meta property="og:locale" content="fr_CA">', "fr"),
        (None, '<meta http-equiv="content-language" content="pt-BR">', "pt"),
        (None, "", None),
    ],
)
def test_html_lang(lang: str | None, head: str, expected: str | None) -> None:
    m, _ = meta_of(head, lang=lang)
    assert m.html_lang == expected


def test_extract_meta_does_not_change_the_tree() -> None:
    tree = doc(ld(GRAPH) + OG_HEAD, body="<h1>H</h1><p>Body</p>")
    from lxml.html import tostring

    before = tostring(tree)
    extract_meta(tree, URL)
    assert tostring(tree) == before
