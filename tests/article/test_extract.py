"""etl.article.extraction: page bytes → article text, metadata (dates, captions, prune rules)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from etl.article.extraction import PruneRules, extract, load_prune_rules
from etl.config import ExtractSettings
from etl.errors import ConfigError, ExtractError
from etl.records import Page

PAGES = Path(__file__).parents[1] / "cases" / "pages"
FETCHED = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
PROMO = "Promotional panel: win two tickets"
CAPTION = "The MV Islander docks at the north terminal on Monday morning."
URL = "https://news.example.com/local/ferry-returns"


def fixture(name: str, head: str = "") -> bytes:
    html = (PAGES / name).read_text(encoding="utf-8")
    return html.replace("<!--HEAD-->", head).encode("utf-8")


def en_page(head: str = "", **kw: Any) -> Page:
    page = Page(id="ferry", body=fixture("article_en.html", head), url=URL, fetched_at=FETCHED)
    return replace(page, **kw)


def ld(obj: object) -> str:
    return f'<script type="application/ld+json">{json.dumps(obj)}</script>'


def published_meta(when: str) -> str:
    return f'<meta property="article:published_time" content="{when}">'


SETTINGS = ExtractSettings()


# --- text, title, captions --------------------------------------------------------------------


def test_article_text_and_metadata() -> None:
    ex = extract(en_page(), SETTINGS)
    lines = ex.text.splitlines()
    assert lines[0].startswith("The harbour ferry returned to service on Monday")
    assert lines[-1].startswith("Island residents had relied on a smaller replacement boat")
    assert ex.title == "Harbour ferry returns after winter refit"
    assert ex.title not in ex.text  # the <h1> headline is metadata, not body text
    assert ex.authors == ("Morgan Ellis",)
    assert "Copyright Example Gazette" not in ex.text
    assert "Home" not in lines
    assert ex.encoding == "utf-8"
    assert ex.language == "en"
    assert all(line == line.strip() and line for line in lines)


def test_captions_are_collected_and_kept_out_of_the_text() -> None:
    ex = extract(en_page(), SETTINGS)
    assert ex.captions == (CAPTION,)
    assert "MV Islander" not in ex.text


def test_wp_caption_text_is_a_caption_too() -> None:
    body = fixture("article_en.html").replace(
        b"<figcaption>The MV Islander docks at the north terminal on Monday morning.</figcaption>",
        b'<p class="wp-caption-text">Crew members test the new engines in the harbour.</p>',
    )
    ex = extract(Page(id="p", body=body, url=URL), SETTINGS)
    assert ex.captions == ("Crew members test the new engines in the harbour.",)
    assert "Crew members test" not in ex.text


def test_authors_hint_used_when_the_page_names_nobody() -> None:
    body = fixture("article_en.html").replace(b'<p class="byline">By Morgan Ellis</p>', b"")
    ex = extract(Page(id="p", body=body, url=URL, authors_hint=("Feed Author",)), SETTINGS)
    assert ex.authors == ("Feed Author",)


def test_page_authors_win_over_the_hint() -> None:
    ex = extract(en_page(authors_hint=("Feed Author",)), SETTINGS)
    assert ex.authors == ("Morgan Ellis",)


def test_page_in_a_legacy_charset() -> None:
    html = fixture("article_de.html").decode("utf-8")
    html = html.replace('<meta charset="utf-8">', '<meta charset="iso-8859-1">')
    ex = extract(Page(id="de", body=html.encode("latin-1"), url=URL), SETTINGS)
    assert ex.encoding == "iso8859-1"
    assert "Fußgängerzone befürchten" in ex.text


# --- dates ------------------------------------------------------------------------------------


def test_page_date_within_the_window_is_used() -> None:
    ex = extract(en_page(published_meta("2024-05-31T08:00:00-04:00")), SETTINGS)
    assert ex.published_at == datetime(2024, 5, 31, 12, 0, tzinfo=UTC)
    assert ex.date_source == "meta"


def test_date_after_fetched_at_is_skipped_for_the_next_candidate() -> None:
    future = ld({"@type": "NewsArticle", "datePublished": "2024-06-03T00:00:00Z"})
    ex = extract(en_page(future + published_meta("2024-05-30T10:00:00Z")), SETTINGS)
    assert ex.published_at == datetime(2024, 5, 30, 10, 0, tzinfo=UTC)
    assert ex.date_source == "meta"


def test_a_few_minutes_of_clock_skew_is_tolerated() -> None:
    soon = (FETCHED + timedelta(minutes=3)).isoformat()
    ex = extract(en_page(published_meta(soon)), SETTINGS)
    assert ex.published_at == FETCHED + timedelta(minutes=3)
    later = (FETCHED + timedelta(minutes=30)).isoformat()
    ex = extract(en_page(published_meta(later)), SETTINGS)
    assert ex.published_at is None


def test_date_before_1995_is_skipped_for_the_next_candidate() -> None:
    old = ld({"@type": "NewsArticle", "datePublished": "1970-01-01T00:00:00Z"})
    ex = extract(en_page(old + published_meta("2024-05-30T10:00:00Z")), SETTINGS)
    assert ex.date_source == "meta"
    assert ex.published_at == datetime(2024, 5, 30, 10, 0, tzinfo=UTC)


def test_min_year_is_a_setting() -> None:
    head = published_meta("1999-12-31T23:00:00Z")
    assert extract(en_page(head), SETTINGS).published_at == datetime(1999, 12, 31, 23, tzinfo=UTC)
    strict = replace(SETTINGS, min_year=2000)
    assert extract(en_page(head), strict).published_at is None


def test_no_date_when_every_candidate_is_out_of_the_window() -> None:
    ex = extract(en_page(published_meta("2031-01-01T00:00:00Z")), SETTINGS)
    assert ex.published_at is None
    assert ex.date_source is None


def test_window_uses_now_when_the_page_has_no_fetch_time() -> None:
    page = en_page(published_meta("2024-05-30T10:00:00Z"), fetched_at=None)
    early = extract(page, SETTINGS, now=datetime(2024, 5, 1, tzinfo=UTC))
    assert early.published_at is None
    late = extract(page, SETTINGS, now=datetime(2024, 7, 1, tzinfo=UTC))
    assert late.published_at == datetime(2024, 5, 30, 10, 0, tzinfo=UTC)


def test_feed_hint_is_used_when_the_page_has_no_date() -> None:
    hint = datetime(2024, 5, 29, 9, 30, tzinfo=UTC)
    ex = extract(en_page(published_hint=hint), SETTINGS)
    assert ex.published_at == hint
    assert ex.date_source == "feed"


def test_feed_hint_in_another_timezone_is_converted_to_utc() -> None:
    from zoneinfo import ZoneInfo

    hint = datetime(2024, 5, 29, 5, 30, tzinfo=ZoneInfo("America/Toronto"))
    ex = extract(en_page(published_hint=hint), SETTINGS)
    assert ex.published_at == datetime(2024, 5, 29, 9, 30, tzinfo=UTC)
    assert ex.published_at is not None and ex.published_at.utcoffset() == timedelta(0)


def test_naive_feed_hint_and_fetch_time_are_taken_as_utc() -> None:
    hint = datetime(2024, 5, 29, 9, 30)
    ex = extract(en_page(published_hint=hint, fetched_at=datetime(2024, 6, 1, 12)), SETTINGS)
    assert ex.published_at == datetime(2024, 5, 29, 9, 30, tzinfo=UTC)
    assert ex.date_source == "feed"


def test_page_date_wins_over_the_feed_hint() -> None:
    hint = datetime(2024, 5, 29, 9, 30, tzinfo=UTC)
    ex = extract(en_page(published_meta("2024-05-30T10:00:00Z"), published_hint=hint), SETTINGS)
    assert ex.date_source == "meta"


def test_feed_hint_wins_over_a_url_date() -> None:
    hint = datetime(2024, 5, 29, 9, 30, tzinfo=UTC)
    page = en_page(url="https://news.example.com/2024/05/28/ferry/", published_hint=hint)
    assert extract(page, SETTINGS).date_source == "feed"
    page = replace(page, published_hint=None)
    ex = extract(page, SETTINGS)
    assert (ex.published_at, ex.date_source) == (datetime(2024, 5, 28, tzinfo=UTC), "url")


def test_future_feed_hint_is_skipped_too() -> None:
    page = en_page(
        url="https://news.example.com/2024/05/28/ferry/",
        published_hint=datetime(2025, 1, 1, tzinfo=UTC),
    )
    ex = extract(page, SETTINGS)
    assert ex.date_source == "url"


def test_modified_before_published_is_dropped() -> None:
    head = published_meta("2024-05-30T10:00:00Z")
    ok = extract(
        en_page(head + '<meta property="article:modified_time" content="2024-05-31T10:00:00Z">'),
        SETTINGS,
    )
    assert ok.modified_at == datetime(2024, 5, 31, 10, 0, tzinfo=UTC)
    bad = extract(
        en_page(head + '<meta property="article:modified_time" content="2024-05-01T10:00:00Z">'),
        SETTINGS,
    )
    assert bad.modified_at is None


# --- prune rules ------------------------------------------------------------------------------


def write_rules(tmp_path: Path, text: str, name: str = "prune.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


DOMAIN_RULES = """\
version: 1
captions:
  - id: figcaption
    xpath: "//figcaption"
global:
  - id: figcaption
    xpath: "//figcaption"
domains:
  example.com:
    - id: promo-box
      xpath: "//div[@class='promo-box']"
  other.org:
    - id: byline
      xpath: "//p[@class='byline']"
"""


def test_for_domain_covers_subdomains() -> None:
    rules = PruneRules(
        global_=("//g",),
        domains={"example.com": ("//e",), "news.example.com": ("//n",), "com": ("//c",)},
        captions=(),
    )
    assert rules.for_domain("example.com") == ["//g", "//e"]
    assert rules.for_domain("news.example.com") == ["//g", "//n", "//e"]
    assert rules.for_domain("a.b.example.com") == ["//g", "//e"]
    assert rules.for_domain("badexample.com") == ["//g"]  # a suffix is not a subdomain
    assert rules.for_domain("example.org") == ["//g"]
    assert rules.for_domain(None) == ["//g"]


def test_domain_rules_prune_only_on_their_domain(tmp_path: Path) -> None:
    settings = replace(SETTINGS, prune_file=write_rules(tmp_path, DOMAIN_RULES))
    on_domain = extract(en_page(), settings)  # news.example.com
    assert PROMO not in on_domain.text
    assert "The harbour ferry returned" in on_domain.text
    elsewhere = extract(en_page(url="https://www.elsewhere.net/ferry"), settings)
    assert PROMO in elsewhere.text


def test_domain_rules_follow_the_canonical_url_when_the_page_has_none(tmp_path: Path) -> None:
    settings = replace(SETTINGS, prune_file=write_rules(tmp_path, DOMAIN_RULES))
    head = '<link rel="canonical" href="https://www.example.com/local/ferry">'
    ex = extract(en_page(head, url=None), settings)
    assert ex.canonical_url == "https://www.example.com/local/ferry"
    assert PROMO not in ex.text


def test_shipped_prune_rules_load() -> None:
    rules = load_prune_rules(SETTINGS.prune_file)
    assert rules.captions  # figure captions are collected by default
    assert any("figcaption" in x for x in rules.global_)


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("global:\n  - id: broken-rule\n    xpath: '//div['\n", ["global[0]", "broken-rule"]),
        (
            "domains:\n  example.com:\n    - id: ok\n      xpath: //p\n"
            "    - id: unknown-fn\n      xpath: '//div[no-such-function()]'\n",
            ["domains.example.com[1]", "unknown-fn"],
        ),
        ("captions:\n  - id: no-xpath\n    path: //figcaption\n", ["captions[0]", "no-xpath"]),
        ("global:\n  - //div\n", ["global[0]", "xpath"]),
        ("global: {id: x, xpath: //p}\n", ["global", "list"]),
        ("domains: [a, b]\n", ["domains", "mapping"]),
        ("", ["mapping"]),
        ("- just\n- a list\n", ["mapping"]),
        ("global: [unclosed\n", ["cannot read"]),
    ],
)
def test_bad_prune_rules_file_is_a_config_error(
    tmp_path: Path, text: str, expect: list[str]
) -> None:
    path = write_rules(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_prune_rules(path)
    assert info.value.subject == str(path)
    assert str(info.value).startswith(str(path))
    for word in expect:
        assert word in str(info.value)


def test_bad_prune_rules_fail_the_extraction_naming_the_file(tmp_path: Path) -> None:
    path = write_rules(tmp_path, "global:\n  - id: broken-rule\n    xpath: '//div['\n")
    with pytest.raises(ConfigError, match="broken-rule"):
        extract(en_page(), replace(SETTINGS, prune_file=path))


def test_missing_prune_rules_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_prune_rules(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)


# --- failures ---------------------------------------------------------------------------------


def test_page_without_article_text() -> None:
    page = Page(id="nav", body=(PAGES / "no_text.html").read_bytes(), url=URL)
    with pytest.raises(ExtractError) as info:
        extract(page, SETTINGS)
    assert info.value.kind == "no-text"
    assert info.value.subject == URL
    assert not info.value.transient


def test_subject_is_the_page_id_without_a_url() -> None:
    with pytest.raises(ExtractError) as info:
        extract(Page(id="page-42", body=b""), SETTINGS)
    assert info.value.kind == "empty"
    assert str(info.value).startswith("page-42: ")


def test_too_large_page_is_refused_before_decoding() -> None:
    settings = replace(SETTINGS, max_page_bytes=1000)
    page = en_page()
    assert len(page.body) > 1000
    with pytest.raises(ExtractError) as info:
        extract(page, settings)
    assert info.value.kind == "too-large"
    assert str(len(page.body)) in str(info.value)
    small = replace(page, body=b"\x89PNG\r\n\x1a\n" + b"x" * 100)
    with pytest.raises(ExtractError) as info:  # under the limit: the next check speaks
        extract(small, settings)
    assert info.value.kind == "binary"


def test_binary_page_is_an_extract_error() -> None:
    with pytest.raises(ExtractError) as info:
        extract(Page(id="pdf", body=b"%PDF-1.4\n...", url=URL), SETTINGS)
    assert info.value.kind == "binary"


# --- language ---------------------------------------------------------------------------------


def test_language_is_detected_from_the_text_not_the_markup() -> None:
    de = fixture("article_de.html").replace(b'lang="de"', b'lang="en"')
    ex = extract(Page(id="de", body=de, url=URL), SETTINGS)
    assert ex.language == "de"
    en = fixture("article_en.html").replace(b'lang="en"', b'lang="de"')
    ex = extract(Page(id="en", body=en, url=URL, language_hint="fr"), SETTINGS)
    assert ex.language == "en"


def test_short_text_takes_the_language_hint() -> None:
    html = (
        "<!DOCTYPE html><html lang='it'><head><title>t</title></head><body><article>"
        "<p>Breve notizia del giorno.</p></article></body></html>"
    )
    ex = extract(Page(id="short", body=html.encode(), url=URL), SETTINGS)
    assert len(ex.text) < 120
    assert ex.language == "it"
    ex = extract(Page(id="short", body=html.encode(), url=URL, language_hint="es"), SETTINGS)
    assert ex.language == "es"  # the source's declared language wins over the markup


def test_explain_prune_names_the_rule_and_the_outermost_block_only() -> None:
    from lxml.html import fromstring

    from etl.article.extraction import explain_prune

    tree = fromstring(
        "<html><body><article><p>Body text stays.</p></article>"
        "<aside class='promo'><div class='promo'>Buy now</div><p>More offers</p></aside>"
        "<div class='promo'></div></body></html>"
    )
    xpath = "//*[contains(concat(' ', normalize-space(@class), ' '), ' promo ')]"
    got = explain_prune(tree, [xpath], {xpath: "promo-box"})
    assert [(r.rule, r.text) for r in got] == [("prune:promo-box", "Buy now More offers")]
    assert tree.xpath("//aside")  # the tree itself is left as it was
