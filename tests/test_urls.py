from __future__ import annotations

import hashlib

import pytest

from etl.urls import article_id, canonicalize, origin, resolve_canonical, site_host, url_filter

SAME_ARTICLE = [
    "https://example.com/news/story?id=7&page=2",
    "http://example.com/news/story?id=7&page=2",
    "http://www.example.com/news/story/?page=2&id=7",
    "HTTPS://WWW.Example.COM:443/news/story?page=2&id=7#comments",
    "https://example.com/news/story?id=7&page=2&utm_source=rss&utm_medium=feed&fbclid=abc",
    "https://example.com/news//story?gclid=x&id=7&page=2&mc_cid=1",
    "https://example.com/news/story/amp?id=7&page=2",
    "https://example.com/amp/news/story?id=7&page=2",
    "https://amp.example.com/news/story?id=7&page=2",
    "https://example.com/news/story.amp?id=7&page=2&amp=1",
    "https://example.com/news/story?id=7&page=2&outputType=amp",
    "https://example-com.cdn.ampproject.org/c/s/example.com/news/story?id=7&page=2",
    "https://user:pw@example.com/news/./x/../story?id=7&page=2",
]


@pytest.mark.parametrize("variant", SAME_ARTICLE)
def test_variants_of_one_article_share_canonical_url_and_id(variant: str) -> None:
    assert canonicalize(variant) == "https://example.com/news/story?id=7&page=2"
    assert article_id(variant) == article_id(SAME_ARTICLE[0])


def test_article_id_is_first_32_hex_of_sha256_of_canonical_url() -> None:
    url = "http://www.example.com/a/?utm_campaign=x"
    expected = hashlib.sha256(b"https://example.com/a").hexdigest()[:32]
    assert article_id(url) == expected
    assert len(expected) == 32


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://example.com/news/story-1", "https://example.com/news/story-2"),
        ("https://example.com/story?id=1", "https://example.com/story?id=2"),
        ("https://example.com/story", "https://other.com/story"),
        ("https://news.example.com/story", "https://example.com/story"),
        ("http://127.0.0.1:8000/a", "https://127.0.0.1:8000/a"),  # explicit port keeps scheme
        ("http://127.0.0.1:8000/a", "http://127.0.0.1:8001/a"),
    ],
)
def test_different_articles_keep_different_ids(a: str, b: str) -> None:
    assert article_id(a) != article_id(b)


def test_canonical_form_details() -> None:
    assert canonicalize("http://127.0.0.1:8000/x/%7euser/%e2%82%ac") == (
        "http://127.0.0.1:8000/x/~user/%E2%82%AC"
    )
    assert canonicalize("https://example.com") == "https://example.com/"
    assert canonicalize("https://example.com/a.amp.html") == "https://example.com/a.html"
    assert canonicalize("https://EXAMPLE.com./Path/Case") == "https://example.com/Path/Case"
    assert canonicalize("https://bücher.example/a") == "https://xn--bcher-kva.example/a"
    assert canonicalize("https://example.com/?q=a+b&b=") == "https://example.com/?b=&q=a%20b"
    assert canonicalize(canonicalize(SAME_ARTICLE[3])) == canonicalize(SAME_ARTICLE[3])


@pytest.mark.parametrize(
    "bad", ["ftp://example.com/a", "/relative/path", "mailto:x@y", "", "http://"]
)
def test_non_http_urls_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        canonicalize(bad)


def test_declared_canonical_link_is_used_on_the_same_site_only() -> None:
    page = "https://www.example.com/amp/story-1?utm_source=x"
    assert resolve_canonical(page, "/2024/story-1") == "https://example.com/2024/story-1"
    assert resolve_canonical(page, "https://m.example.com/story-1") == (
        "https://m.example.com/story-1"
    )
    # another site's canonical is ignored: a page cannot take another site's article id
    assert resolve_canonical(page, "https://evil.test/x") == "https://example.com/story-1"
    assert resolve_canonical(page, None) == "https://example.com/story-1"
    assert site_host("https://m.example.com/a") == "example.com"


def test_origin_is_the_politeness_key() -> None:
    assert origin("HTTP://Example.com:80/a?b") == "http://example.com"
    assert origin("https://example.com:8443/a") == "https://example.com:8443"
    assert origin("http://127.0.0.1:9000/x") == "http://127.0.0.1:9000"
    assert origin("http://[::1]:9000/x") == "http://[::1]:9000"


def test_url_filter_include_exclude_domains() -> None:
    allowed = url_filter(
        include=[r"/news/"],
        exclude=[r"/live/", r"\.pdf$"],
        domains=["*.example.com", "example.org"],
    )
    assert allowed("https://www.news.example.com/news/a")
    assert allowed("https://example.org/news/b")
    assert not allowed("https://example.net/news/a")  # domain
    assert not allowed("https://a.example.com/sport/a")  # not included
    assert not allowed("https://a.example.com/news/live/a")  # excluded
    assert not allowed("https://a.example.com/news/a.pdf")
    assert url_filter()("https://anything.test/x")
