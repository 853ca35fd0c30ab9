"""Property-based tests (hypothesis) on decode, extract, clean and normalize.

Random and mutated HTML, invalid UTF-8, NUL bytes, 10 MB single lines and deep nesting: nothing
crashes, nothing hangs (the code path bounds its own work: a byte cap before parsing, the
parser's depth limit, no backtracking regexes), and every failure is a row with a kind — never
``internal``. Example counts are modest (the ``newsetl`` profile) so the suite stays fast; set
``HYPOTHESIS_PROFILE=thorough`` for a long run.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime
from typing import Literal

import pyarrow as pa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from etl.article.charset import decode_page
from etl.article.cleaning import clean
from etl.article.normalization import normalize
from etl.article.process import process_pages, rules_for
from etl.config import Settings
from etl.errors import ExtractError
from etl.records import Article, Failure, Page
from etl.schema import article_schema
from tests.support.article_factory import make_article

settings.register_profile(
    "newsetl",
    max_examples=25,
    deadline=None,  # a busy 2-core CI box: no per-example time bound
    derandomize=True,  # the same examples every run: CI never meets a new one by chance
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", parent=settings.get_profile("newsetl"), max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "newsetl"))

SETTINGS = Settings()
ROW_KINDS = {
    *("empty", "binary", "undecodable", "no-text", "parse", "too-large", "too-deep"),
    *("unreadable", "no-url", "too-complex"),
}
TAGS = ["div", "p", "article", "span", "section", "main", "b", "i", "a", "li", "ul", "h1", "td"]
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)  # typed: the strategy wants a category Literal
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=SURROGATES, blacklist_characters="<>&"),
    max_size=200,
)


def _element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda tag, kids, attr: f"<{tag}{attr}>{''.join(kids)}</{tag}>",
        st.sampled_from(TAGS),
        st.lists(children, max_size=4),
        st.sampled_from(["", ' class="content"', " id='x'", ' style="display:none"', " data-x"]),
    )


HTML_BODY = st.recursive(TEXT, _element, max_leaves=40)


@st.composite
def html_pages(draw: st.DrawFn) -> bytes:
    """A page from random markup, then perhaps mutated at the byte level."""
    charset = draw(st.sampled_from(["utf-8", "iso-8859-1", "windows-1252", "shift_jis", "bogus"]))
    body = draw(HTML_BODY)
    title = draw(TEXT)
    doc = (
        f"<!doctype html><html><head><meta charset='{charset}'><title>{title}</title></head>"
        f"<body>{body}</body></html>"
    ).encode()
    mutations = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["flip", "insert", "delete", "truncate"]),
                st.integers(0, max(0, len(doc) - 1)),
                st.binary(min_size=1, max_size=4),
            ),
            max_size=4,
        )
    )
    data = bytearray(doc)
    for op, where, junk in mutations:
        at = min(where, max(0, len(data) - 1))
        if op == "flip" and data:
            data[at] ^= junk[0] or 0x80
        elif op == "insert":
            data[at:at] = junk
        elif op == "delete":
            del data[at : at + len(junk)]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


def _one(body: bytes, url: str = "https://news.example.org/2026/11/story") -> Article | Failure:
    [result] = list(process_pages([Page(id="p", body=body, url=url)], SETTINGS))
    assert isinstance(result, Article | Failure)
    return result


def _is_row(result: Article | Failure) -> None:
    if isinstance(result, Failure):
        assert result.kind in ROW_KINDS, (result.kind, result.error)
        assert result.error  # says why


@given(st.binary(max_size=4096), st.one_of(st.none(), st.text(max_size=60)))
@example(b"\xef\xbb\xbf\xff\xfe\x00", "text/html; charset=utf-16")
@example(b"<meta charset='utf-8'>caf\xe9 \xc3\xa9t\xc3\xa9 \xc3\xa0", None)
def test_decode_returns_text_or_a_row_error(data: bytes, content_type: str | None) -> None:
    try:
        text, codec, errors = decode_page(data, content_type, subject="p")
    except ExtractError as exc:
        assert exc.kind in ROW_KINDS
        return
    assert isinstance(text, str) and codec
    assert 0 <= errors <= len(data)
    assert errors == 0 or "\ufffd" in text


@given(html_pages())
@example(b"<html><body>" + b"<div>" * 5000 + b"deep" + b"</div>" * 5000 + b"</body></html>")
@example(b"<html><body><p>" + b"\x00" * 3000 + b"text</p></body></html>")
@example(b"\x00<html><body><p>NUL first</p></body></html>")
@example(b"<p>" + b"\xff\xfe\xfd" * 1000 + b"</p>")
@example(b"<html><body><article><p>" + b"ten megabytes, one line " * 420_000 + b"</p></article>")
@example(b"<html><body>" + b"<p>x</p>" * 1_250_000 + b"</body></html>")  # a 10 MB line of tags
def test_extract_yields_an_article_or_a_row(data: bytes) -> None:
    _is_row(_one(data))


@given(st.integers(1, 20_000))
@example(19_995)  # 20,001 elements: too-complex before it can be too-deep
def test_deep_nesting_is_an_article_or_says_too_deep(depth: int) -> None:
    para = "<p>" + "A sentence of the article body that carries on for a while. " * 8 + "</p>"
    body = ("<div>" * depth + para * 3 + "</div>" * depth).encode()
    result = _one(b"<html><body><article>" + body + b"</article></body></html>")
    _is_row(result)
    if isinstance(result, Failure):
        # too deep for the parser, or (past 20,000 elements) too many for the time per page
        assert depth > 200 and result.kind in ("too-deep", "too-complex"), (depth, result.error)
        assert ("nesting too deep" if result.kind == "too-deep" else "elements") in result.error


@given(st.lists(TEXT, max_size=30), st.sampled_from([None, "example.com", "bbc.co.uk"]))
@example(["Leave a Reply", "x" * 10_000_000], None)
@example(["\x00\x00", "Share on Facebook", "Photo: AFP"], None)
def test_clean_only_removes_lines(lines: list[str], domain: str | None) -> None:
    text = "\n".join(lines)
    cleaned = clean(text, rules_for(SETTINGS), domain=domain)
    kept = cleaned.text.splitlines()
    source = {line.strip() for line in text.splitlines()}
    assert all(line.strip() in source for line in kept)


@given(
    text=st.text(min_size=1, max_size=2000),
    title=st.one_of(st.none(), st.text(max_size=100)),
    authors=st.lists(st.text(max_size=40), max_size=5),
    path=st.text(alphabet="abcxyz019-_/%.~", max_size=40),
    published=st.one_of(
        st.none(), st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
    ),
)
def test_normalize_gives_schema_rows_or_a_row_error(
    text: str, title: str | None, authors: list[str], path: str, published: datetime | None
) -> None:
    article = make_article(f"https://www.example.com/{path}", text)
    ex = replace(
        article.extracted,
        title=title,
        authors=tuple(authors),
        published_at=published.replace(tzinfo=UTC) if published else None,
    )
    article = replace(article, extracted=ex, cleaned=replace(article.cleaned, text=text))
    try:
        batches = list(normalize([article], dt="2026-11-25", rules_version="r1"))
    except ExtractError as exc:
        assert exc.kind in ROW_KINDS
        return
    table = pa.Table.from_batches(batches, schema=article_schema())
    assert table.num_rows == 1
    assert table.schema.equals(article_schema())
