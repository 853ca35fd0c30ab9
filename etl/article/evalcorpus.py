"""Scoring newsetl on an evaluation corpus (``ground-truth.json`` + ``html/``), as ``newsetl
eval`` and ``bench/bench_quality.py`` do: overall, per domain, and the worst pages with the
class of their failure.

``global_only`` switches the domain-specific rules off (``prune.yaml`` ``domains`` entries and
``boilerplate.yaml`` rules scoped to a domain): the figure that predicts a site nobody tuned for.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from etl.article.candidates import jsonld_body
from etl.article.evaluation import PageScore, Score, aggregate, corpus_pages, evaluate, load_truth
from etl.article.process import process_pages
from etl.config import Settings
from etl.records import Article, Failure, Page
from etl.urls import domain as url_domain

# failure classes of a page (see :func:`classify`)
EMPTY, LIVE, SPLIT, WRONG = "empty", "live blog", "split", "wrong block"
EXTRA, MISSING = "extra text", "missing text"  # the milder failures


@dataclass(frozen=True)
class PageResult:
    score: PageScore
    domain: str
    url: str | None
    truth_words: int
    method: str | None  # the extraction method chosen, None when the page failed
    doubtful: bool

    @property
    def f1(self) -> float:
        p, r = self.score.precision or 0.0, self.score.recall or 0.0
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True)
class CorpusResult:
    score: Score
    pages: list[PageResult]
    seconds: float

    def by_domain(self) -> dict[str, Score]:
        groups: dict[str, list[PageScore]] = {}
        for p in self.pages:
            groups.setdefault(p.domain, []).append(p.score)
        return {d: aggregate(s) for d, s in sorted(groups.items())}

    def worst(self, n: int = 10) -> list[PageResult]:
        return sorted(self.pages, key=lambda p: (p.f1, p.score.id))[:n]

    def below(self, f1: float, *, min_words: int = 100) -> list[PageResult]:
        """Pages scoring under ``f1`` whose ground truth has over ``min_words`` words."""
        return [p for p in self.pages if p.f1 < f1 and p.truth_words > min_words]


def pages_of(corpus: Path) -> list[Page]:
    meta = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    return [
        Page(id=pid, body=raw, url=meta.get(pid, {}).get("url"))
        for pid, raw in corpus_pages(corpus)
    ]


def score_corpus(
    corpus: Path,
    settings: Settings,
    *,
    workers: int = 1,
    global_only: bool = False,
    pages: list[Page] | None = None,
) -> CorpusResult:
    """Run the article core on every page of ``corpus`` and score it against the ground truth."""
    import time

    truth = load_truth(corpus)
    pages = pages if pages is not None else pages_of(corpus)
    if global_only:
        settings = replace(settings, extract=replace(settings.extract, domain_rules=False))
    t0 = time.perf_counter()
    predictions: dict[str, str] = {}
    how: dict[str, tuple[str | None, bool]] = {}
    for r in process_pages(pages, settings, workers=workers):
        if isinstance(r, Failure):
            predictions[r.id], how[r.id] = "", (None, True)
        elif isinstance(r, Article):
            predictions[r.page.id] = r.cleaned.text
            ex = r.extracted.extraction
            how[r.page.id] = (ex.method, ex.doubtful) if ex else (None, False)
    seconds = time.perf_counter() - t0
    score, per_page = evaluate(predictions, truth)
    urls = {p.id: p.url for p in pages}
    results = [
        PageResult(
            s,
            url_domain(urls.get(s.id)) or "-",
            urls.get(s.id),
            len(truth[s.id].split()),
            *how.get(s.id, (None, True)),
        )
        for s in per_page
    ]
    return CorpusResult(score, results, seconds)


def classify(result: PageResult, page: Page | None = None) -> str:
    """The class of a page's failure: ``empty`` (nothing came out), ``live blog`` (the page is a
    JSON-LD ``LiveBlogPosting``), ``split`` (under 60 % of the body came out), ``wrong block``
    (under 60 % of the output is article text), else the milder ``extra text`` or
    ``missing text``."""
    s = result.score
    if s.tp + s.fp == 0:
        return EMPTY
    if page is not None:
        from trafilatura.utils import load_html

        tree = load_html(page.body)
        if tree is not None and jsonld_body(tree).live:
            return LIVE
    precision, recall = s.precision or 0.0, s.recall or 0.0
    if precision < 0.6:
        return WRONG
    if recall < 0.6:
        return SPLIT
    return EXTRA if precision < recall else MISSING


def classified(
    result: CorpusResult, pages: Iterable[Page], n: int = 10
) -> list[tuple[PageResult, str]]:
    """The ``n`` worst pages, each with its class."""
    by_id = {p.id: p for p in pages}
    return [(p, classify(p, by_id.get(p.score.id))) for p in result.worst(n)]
