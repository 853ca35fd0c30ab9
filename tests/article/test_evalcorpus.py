"""etl.article.evalcorpus: failure class of a page, per-domain figures, the pages below a bar."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl.article.evalcorpus import CorpusResult, PageResult, classify
from etl.article.evaluation import PageScore, aggregate
from etl.records import Page

LIVE = Path(__file__).parents[1] / "cases" / "pages" / "cascade" / "live_blog.html"


def result(
    pid: str, tp: int, fp: int, fn: int, domain: str = "a.example", words: int = 200
) -> PageResult:
    return PageResult(PageScore(pid, tp, fp, fn), domain, None, words, "trafilatura", False)


def test_classes() -> None:
    assert classify(result("e", 0, 0, 50)) == "empty"
    assert classify(result("w", 20, 80, 0)) == "wrong block"
    assert classify(result("s", 30, 0, 70)) == "split"
    assert classify(result("x", 90, 20, 0)) == "extra text"
    assert classify(result("m", 90, 0, 20)) == "missing text"
    live = Page(id="l", body=LIVE.read_bytes())
    assert classify(result("l", 30, 0, 70), live) == "live blog"
    plain = Page(id="p", body=b"<html><body><p>Nothing live here at all.</p></body></html>")
    assert classify(result("p", 30, 0, 70), plain) == "split"


def test_by_domain_worst_and_below() -> None:
    pages = [
        result("a1", 100, 0, 0, "a.example"),
        result("a2", 10, 90, 0, "a.example", words=500),
        result("b1", 5, 0, 95, "b.example", words=80),
    ]
    res = CorpusResult(aggregate(p.score for p in pages), pages, 0.0)
    assert list(res.by_domain()) == ["a.example", "b.example"]
    assert res.by_domain()["a.example"].pages == 2
    assert [p.score.id for p in res.worst(2)] == ["b1", "a2"]
    assert [p.score.id for p in res.below(0.5)] == ["a2"]  # b1 has only 80 words of truth
    assert res.by_domain()["b.example"].f1 == pytest.approx(2 * 0.05 / 1.05)
