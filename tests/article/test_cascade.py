"""The body cascade on pages nobody tuned for (etl/article/cascade.py, etl/article/candidates.py).

``tests/cases/pages/cascade/`` holds hand-written pages in several CMS styles, each a catastrophe
class of unseen sites, with the expected clean text beside it (``<name>.txt``): a live blog whose
updates are only in its JSON-LD ``LiveBlogPosting``, a body split by a newsletter box into two
containers, a reader-response thread bigger than the article, a page whose only body is its
JSON-LD ``articleBody``, and a global prune rule that would take body text the JSON-LD holds.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from lxml.html import fromstring

from etl.article.candidates import coverage, guard_prune, jsonld_body, live_text
from etl.article.evaluation import score_page
from etl.article.extraction import load_prune_rules
from etl.article.normalization import article_row
from etl.article.process import process_page
from etl.config import Settings
from etl.errors import ExtractError
from etl.records import Article, Page

CASES = Path(__file__).parents[1] / "cases" / "pages" / "cascade"
SETTINGS = Settings()
NAMES = sorted(p.stem for p in CASES.glob("*.html"))


def article(name: str, settings: Settings = SETTINGS) -> Article:
    body = (CASES / f"{name}.html").read_bytes()
    return process_page(Page(id=name, body=body, url=f"https://site.example/{name}"), settings)


def expected(name: str) -> list[str]:
    return (CASES / f"{name}.txt").read_text(encoding="utf-8").strip().splitlines()


def test_every_case_has_its_expected_text() -> None:
    assert NAMES == ["guarded_prune", "jsonld_only", "live_blog", "split_body", "thread_bigger"]
    assert all((CASES / f"{n}.txt").is_file() for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_the_catastrophe_is_fixed(name: str) -> None:
    got = article(name).cleaned.text
    want = "\n".join(expected(name))
    score = score_page(name, got, want)
    assert score.recall is not None and score.recall >= 0.98, f"{name}: body missing\n{got}"
    assert score.precision is not None and score.precision >= 0.98, f"{name}: extra text\n{got}"


def test_live_blog_updates_in_page_order_each_with_its_time() -> None:
    a = article("live_blog")
    lines = a.cleaned.text.splitlines()
    assert lines == expected("live_blog")
    times = [line for line in lines if line[:4].isdigit() and "T" in line]
    assert times == [
        "2025-03-04T15:20+00:00",
        "2025-03-04T12:05+00:00",
        "2025-03-04T09:40+00:00",
        "2025-03-04T07:10+00:00",
    ]
    for t in times:  # each time line is followed by its update's headline
        assert not lines[lines.index(t) + 1][:4].isdigit()
    assert a.extracted.extraction is not None
    assert a.extracted.extraction.method == "json-ld-live"


def test_live_updates_follow_the_page_order_of_their_anchors() -> None:
    updates = [
        {"headline": "Older", "url": "https://x.example/l#b", "articleBody": "Two.",
         "datePublished": "2025-01-01T10:00:00.000+0100"},
        {"headline": "Newer", "url": "https://x.example/l#a", "articleBody": "One.",
         "datePublished": "2025-01-01T11:30:05Z"},
    ]  # fmt: skip
    script = json.dumps({"@type": "LiveBlogPosting", "liveBlogUpdate": updates})
    tree = fromstring(
        f"<html><head><script type='application/ld+json'>{script}</script></head>"
        "<body><div id='a'>One.</div><div id='b'>Two.</div></body></html>"
    )
    ld = jsonld_body(tree)
    assert [u.headline for u in ld.live] == ["Newer", "Older"]
    assert live_text(ld.live).splitlines() == [
        "2025-01-01T11:30+00:00",
        "Newer",
        "One.",
        "2025-01-01T10:00+01:00",
        "Older",
        "Two.",
    ]


def test_split_body_joins_the_part_before_the_newsletter_box() -> None:
    a = article("split_body")
    assert a.cleaned.text.splitlines() == expected("split_body")
    assert "newsletter" not in a.cleaned.text.lower()
    assert a.extracted.extraction is not None
    assert a.extracted.extraction.method == "joined-siblings"


def test_reader_thread_is_not_the_body() -> None:
    a = article("thread_bigger")
    assert a.cleaned.text.splitlines() == expected("thread_bigger")
    assert "roofer" not in a.cleaned.text
    assert a.extracted.extraction is not None
    assert a.extracted.extraction.method == "dropped-thread"


def test_jsonld_only_body() -> None:
    a = article("jsonld_only")
    assert a.cleaned.text.splitlines() == expected("jsonld_only")
    assert a.extracted.extraction is not None
    assert not a.extracted.extraction.doubtful


def test_prune_rule_never_takes_jsonld_body_text() -> None:
    a = article("guarded_prune")
    assert a.cleaned.text.splitlines() == expected("guarded_prune")


def test_guard_only_spares_blocks_whose_text_is_in_the_jsonld_body() -> None:
    html = (CASES / "guarded_prune.html").read_text(encoding="utf-8")
    rules = load_prune_rules(SETTINGS.extract.prune_file).global_
    tree = fromstring(html)
    body = jsonld_body(tree).body
    assert coverage("The expansion will add four new membrane halls", body) == 1.0
    guarded = guard_prune(tree, list(rules), body)
    assert all(g.endswith("[not(@data-newsetl-keep)]") for g in guarded)
    assert not any(tree.xpath(g) and "membrane" in tree.xpath(g)[0].text_content() for g in guarded)
    # without the JSON-LD body the same block is a promo box: pruned as before
    no_ld = html.replace('"articleBody"', '"alternativeHeadline"').encode("utf-8")
    plain = process_page(Page(id="p", body=no_ld, url="https://site.example/p"), SETTINGS)
    assert "membrane halls" not in plain.cleaned.text
    assert "Construction is due to begin" in plain.cleaned.text


def test_extraction_column_and_json_rows_carry_it() -> None:
    from etl.cli.article_cmds import article_json

    a = article("jsonld_only")
    row = article_row(a, dt=None, rules_version="x", strict=False)
    assert set(row["extraction"]) == {"method", "agreement", "doubtful"}
    assert article_json(a)["extraction"] == row["extraction"]
    plain = article_row(article("split_body"), dt=None, rules_version="x", strict=False)
    assert plain["extraction"]["method"] == "joined-siblings"
    assert 0 <= plain["extraction"]["agreement"] <= 1


def test_first_body_confirmed_by_jsonld_keeps_trafilatura() -> None:
    a = article("guarded_prune")
    ex = a.extracted.extraction
    assert ex is not None and ex.method == "trafilatura" and ex.agreement == 1.0


def test_page_with_only_menus_still_has_no_text() -> None:
    nav = (Path(__file__).parents[1] / "cases" / "pages" / "no_text.html").read_bytes()
    with pytest.raises(ExtractError) as info:
        process_page(Page(id="nav", body=nav, url="https://site.example/nav"), SETTINGS)
    assert info.value.kind == "no-text"


def test_global_only_switches_domain_prune_rules_off(tmp_path: Path) -> None:
    rules = tmp_path / "prune.yaml"
    rules.write_text(
        "domains:\n  site.example:\n    - id: intro\n      xpath: \"//div[@class='story-lead']\"\n",
        encoding="utf-8",
    )
    s = replace(SETTINGS, extract=replace(SETTINGS.extract, prune_file=rules))
    assert "Supporters packed" not in article("split_body", s).cleaned.text
    off = replace(s, extract=replace(s.extract, domain_rules=False))
    assert "Supporters packed" in article("split_body", off).cleaned.text


@pytest.mark.parametrize(
    "obj",
    [
        {"@type": "NewsArticle", "articleBody": {"not": "text"}},
        {"@type": "NewsArticle", "articleBody": ["a", "list"]},
        {"@type": "NewsArticle", "articleBody": "<<<>>> <p <div " * 30},
        {"@type": "LiveBlogPosting", "liveBlogUpdate": "not a list"},
        {
            "@type": "LiveBlogPosting",
            "liveBlogUpdate": [
                None,
                3,
                {"url": ["x#y"], "datePublished": "yesterday", "headline": {"a": 1}},
                {"headline": "Only a headline"},
            ],
        },
    ],
)
def test_garbage_jsonld_never_replaces_the_body(obj: object) -> None:
    html = (CASES / "split_body.html").read_text(encoding="utf-8")
    html = html.replace(
        "</head>", f'<script type="application/ld+json">{json.dumps(obj)}</script></head>'
    )
    a = process_page(Page(id="g", body=html.encode(), url="https://site.example/g"), SETTINGS)
    assert a.cleaned.text.splitlines() == expected("split_body")


def test_extraction_lands_in_the_article_schema() -> None:
    import pyarrow as pa

    from etl.schema import article_schema

    rows = [
        article_row(article(name), dt="2025-03-04", rules_version="x", strict=False)
        for name in ("split_body", "live_blog")
    ]
    rows[1]["extraction"] = {**rows[1]["extraction"], "agreement": None}  # one candidate ran
    batch = pa.RecordBatch.from_pylist(rows, schema=article_schema())
    got = cast(
        "list[dict[str, Any]]", batch.column(batch.schema.get_field_index("extraction")).to_pylist()
    )
    assert [g["method"] for g in got] == ["joined-siblings", "json-ld-live"]
    assert got[1]["agreement"] is None and got[0]["doubtful"] is False
