from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pytest

from etl.article.normalization import (
    article_id,
    article_row,
    content_hash,
    hamming,
    normalize,
    simhash,
    to_table,
    to_utc,
)
from etl.errors import ExtractError
from etl.records import Article, Cleaned, Extracted, Page
from etl.schema import article_schema
from tests.support.article_factory import DT, batches, make_article, prose


def _row(article: Article) -> dict[str, object]:
    rows: list[dict[str, object]] = to_table([article], dt=DT, rules_version="r1").to_pylist()
    assert len(rows) == 1
    return rows[0]


# --- URLs and ids --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        "https://www.example.com/news/a",
        "HTTPS://WWW.EXAMPLE.COM/news/a",
        "https://www.Example.com/news/a#comments",
        "https://www.example.com:443/news/a",
        "  https://www.example.com/news/a#top  ",
    ],
)
def test_ids_stable_across_case_fragment_and_port(variant: str) -> None:
    row = _row(make_article(variant))
    assert row["canonical_url"] == "https://example.com/news/a"
    assert row["article_id"] == article_id("https://www.example.com/news/a")
    assert row["article_id"] == hashlib.sha256(b"https://example.com/news/a").hexdigest()[:32]


def test_ids_differ_for_different_articles() -> None:
    a = _row(make_article("https://example.com/news/a"))
    b = _row(make_article("https://example.com/news/b"))
    c = _row(make_article("https://example.com/news/A"))  # paths are case-sensitive
    assert len({a["article_id"], b["article_id"], c["article_id"]}) == 3


def test_article_id_is_truncated_sha256_of_canonical_url() -> None:
    url = "https://example.com/x?id=1"
    assert article_id(url) == hashlib.sha256(url.encode()).hexdigest()[:32]


def test_declared_canonical_wins_when_absolute() -> None:
    row = _row(
        make_article("https://m.example.com/a?utm_source=x", canonical="https://Example.com/a#frag")
    )
    assert row["canonical_url"] == "https://example.com/a"
    assert row["url"] == "https://m.example.com/a?utm_source=x"
    assert row["article_id"] == article_id("https://example.com/a")
    assert row["domain"] == "example.com"
    assert row["canonical_link"] is None


def test_a_cross_site_canonical_goes_to_canonical_link_not_the_id() -> None:
    row = _row(make_article("https://b.example.org/story", canonical="https://a.example.com/x"))
    assert row["canonical_url"] == "https://b.example.org/story"
    assert row["article_id"] == article_id("https://b.example.org/story")
    assert row["domain"] == "b.example.org"
    assert row["canonical_link"] == "https://a.example.com/x"


@pytest.mark.parametrize("declared", ["ftp://example.com/a", "javascript:void(0)", ""])
def test_unusable_canonical_falls_back_to_page_url(declared: str) -> None:
    row = _row(make_article("https://www.example.com/p", canonical=declared))
    assert row["canonical_url"] == "https://example.com/p" and row["canonical_link"] is None


def test_canonical_url_keeps_explicit_port_and_query() -> None:
    row = _row(make_article("http://Host.example:8080?q=1#f"))
    assert row["canonical_url"] == "http://host.example:8080/?q=1"
    assert _row(make_article("http://[::1]:80/a"))["canonical_url"] == "https://[::1]/a"


def test_domain_strips_www() -> None:
    assert _row(make_article("https://WWW.News.Example.org/x"))["domain"] == "news.example.org"


def test_no_url_raises_in_strict_mode_only() -> None:
    page = Page(id="local", body=b"")
    art = Article(page=page, extracted=Extracted(text="Some text."), cleaned=Cleaned("Some text."))
    with pytest.raises(ExtractError) as info:
        list(normalize([art], dt=DT, rules_version="r1"))
    assert info.value.kind == "no-url"
    row = article_row(art, dt=None, rules_version="r1", strict=False)
    assert row["article_id"] is None and row["url"] is None and row["word_count"] == 2


# --- timestamps ----------------------------------------------------------------------------


def test_to_utc() -> None:
    cest = timezone(timedelta(hours=2))
    assert to_utc(datetime(2026, 6, 1, 14, 0, tzinfo=cest)) == datetime(2026, 6, 1, 12, tzinfo=UTC)
    naive = to_utc(datetime(2026, 6, 1, 14, 0))
    assert naive == datetime(2026, 6, 1, 14, tzinfo=UTC) and naive.tzinfo is UTC
    assert to_utc(None) is None


def test_rows_hold_utc_instants_for_aware_and_naive_input() -> None:
    est = timezone(timedelta(hours=-5))
    aware = _row(make_article(published=datetime(2026, 11, 25, 8, 30, tzinfo=est)))
    assert aware["published_at"] == datetime(2026, 11, 25, 13, 30, tzinfo=UTC)
    naive = _row(make_article(published=datetime(2026, 11, 25, 8, 30)))
    assert naive["published_at"] == datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
    col = to_table([make_article(published=datetime(2026, 1, 1, tzinfo=est))], dt=DT,
                   rules_version="r").column("published_at")  # fmt: skip
    assert col.type == pa.timestamp("us", tz="UTC")
    assert (
        col.cast(pa.int64())[0].as_py()
        == int(datetime(2026, 1, 1, 5, tzinfo=UTC).timestamp()) * 10**6
    )


def test_feed_date_used_when_page_has_none() -> None:
    hint = datetime(2026, 11, 25, 12, tzinfo=timezone(timedelta(hours=1)))
    row = _row(make_article(published_hint=hint))
    assert row["published_at"] == datetime(2026, 11, 25, 11, tzinfo=UTC)
    assert row["date_source"] == "feed"
    assert _row(make_article())["date_source"] is None


# --- text figures --------------------------------------------------------------------------


def test_word_count_is_unicode_aware() -> None:
    row = _row(make_article(text="Größe, café naïve — 北京 2026! don't"))
    assert row["word_count"] == 7  # Größe café naïve 北京 2026 don t


def test_content_hash_ignores_whitespace_and_case_only() -> None:
    base = content_hash("The quick brown fox.\nJumps.")
    assert content_hash("  the QUICK   brown\tfox. jumps. ") == base
    assert content_hash("The quick brown fox. Jumps!") != base
    assert base == hashlib.sha256(b"the quick brown fox. jumps.").hexdigest()


def test_simhash_near_texts_close_and_different_texts_far() -> None:
    text = prose(1, 400)
    words = text.split()
    words[200] = "replaced"
    edited = " ".join(words)
    other = prose(2, 400)
    assert simhash(text) == simhash(text.upper().replace(" ", "  "))  # tokens only
    assert 0 < hamming(simhash(text), simhash(edited)) <= 8
    assert hamming(simhash(text), simhash(other)) >= 16
    assert hamming(simhash(edited), simhash(other)) >= 16


def test_simhash_is_signed_64_bit_and_deterministic() -> None:
    values = [simhash(prose(seed)) for seed in range(40)]
    assert all(-(2**63) <= v < 2**63 for v in values)
    assert any(v < 0 for v in values) and any(v > 0 for v in values)
    assert values == [simhash(prose(seed)) for seed in range(40)]
    assert simhash("") == 0 and simhash("!!!") == 0
    assert simhash("one") != simhash("two") and simhash("a b") != simhash("b a")


def test_simhash_golden_values() -> None:
    # Stored in the lake: a change of algorithm must be deliberate (and versioned).
    assert simhash("The quick brown fox jumps over the lazy dog") == 472719149726021511
    assert simhash("Hello") == -4185683613476559060
    assert simhash("HELLO!") == simhash("hello")


def test_hamming() -> None:
    assert hamming(0, 0) == 0
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(-1, 0) == 64  # signed storage: all 64 bits set
    assert hamming(-(2**63), 2**63 - 1) == 64


# --- rows and batches ----------------------------------------------------------------------


def test_row_contents() -> None:
    row = _row(make_article("https://www.example.com/news/a", text="Hello world again."))
    assert row["word_count"] == 3
    assert row["authors"] == ["Ada Lovelace", "Charles Babbage"]  # duplicates dropped
    assert row["captions"] == ["A caption.", "Another caption."]
    assert row["boilerplate_removed"] == [{"rule": "share-links", "text": "Share on Facebook"}]
    assert row["schema_version"] == 2 and row["dt"] == DT
    assert [row[c] for c in ("canonical_link", "extraction", "duplicate_of")] == [None] * 3
    ext = row["extractor"]
    assert isinstance(ext, dict) and ext["rules"] == "r1" and ext["newsetl"] == "0.1.0"
    assert ext["trafilatura"].count(".") >= 1
    assert row["source_id"] == "example-news" and row["http_status"] == 200


def test_batches_match_schema_and_respect_size() -> None:
    arts = [make_article(f"https://example.com/{i}", seed=i) for i in range(7)]
    out = batches(arts, batch_rows=3)
    assert [b.num_rows for b in out] == [3, 3, 1]
    for b in out:
        assert b.schema.equals(article_schema(), check_metadata=True)
        b.validate(full=True)
    ids = [i for b in out for i in b.column("article_id").to_pylist()]
    assert ids == [article_id(f"https://example.com/{i}") for i in range(7)]


def test_normalize_streams() -> None:
    consumed = 0

    def source() -> Iterator[Article]:
        nonlocal consumed
        for i in range(10):
            consumed += 1
            yield make_article(f"https://example.com/{i}", seed=i)

    it = normalize(source(), dt=DT, rules_version="r", batch_rows=2)
    first = next(it)
    assert first.num_rows == 2 and consumed == 2


def test_empty_input_and_bad_arguments() -> None:
    assert list(normalize([], dt=DT, rules_version="r")) == []
    empty = to_table([], dt=DT, rules_version="r")
    assert empty.num_rows == 0 and empty.schema.equals(article_schema())
    with pytest.raises(ValueError, match="dt"):
        list(normalize([], dt="2026/11/25", rules_version="r"))
    with pytest.raises(ValueError, match="batch_rows"):
        list(normalize([], dt=DT, rules_version="r", batch_rows=0))
