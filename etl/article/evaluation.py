"""The article-extraction benchmark metric (see ``shared/corpus/README.md``).

Each text is split into ``\\w+`` tokens; the multiset of 4-token shingles (one shorter shingle for
a text under four tokens) is compared per page: TP shared, FP predicted-only, FN truth-only.
Precision and recall are averaged over pages (a page whose denominator is 0 is left out of that
average; both are 1 when FP = FN = 0); F1 is the harmonic mean of the two averages.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

_TOKEN = re.compile(r"\w+")


def shingles(text: str, n: int = 4) -> Counter[tuple[str, ...]]:
    tokens = _TOKEN.findall(text)
    if not tokens:
        return Counter()
    if len(tokens) < n:
        return Counter([tuple(tokens)])
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


@dataclass(frozen=True)
class PageScore:
    id: str
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float | None:
        if self.fp == 0 and self.fn == 0:
            return 1.0
        d = self.tp + self.fp
        return self.tp / d if d else None

    @property
    def recall(self) -> float | None:
        if self.fp == 0 and self.fn == 0:
            return 1.0
        d = self.tp + self.fn
        return self.tp / d if d else None


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    f1: float
    pages: int


def score_page(page_id: str, predicted: str, truth: str) -> PageScore:
    p, t = shingles(predicted), shingles(truth)
    tp = sum((p & t).values())
    return PageScore(page_id, tp, sum((p - t).values()), sum((t - p).values()))


def aggregate(scores: Iterable[PageScore]) -> Score:
    ps, rs, n = [], [], 0
    for s in scores:
        n += 1
        if (p := s.precision) is not None:
            ps.append(p)
        if (r := s.recall) is not None:
            rs.append(r)
    precision = sum(ps) / len(ps) if ps else 0.0
    recall = sum(rs) / len(rs) if rs else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(precision, recall, f1, n)


def load_truth(corpus: Path) -> dict[str, str]:
    data = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    return {k: v.get("articleBody", "") or "" for k, v in data.items()}


def corpus_pages(corpus: Path) -> Iterator[tuple[str, bytes]]:
    """``(id, bytes)`` of every page of a corpus folder, in id order."""
    for path in sorted((corpus / "html").glob("*.html*")):
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        yield path.name.split(".")[0], raw


def evaluate(
    predictions: Mapping[str, str], truth: Mapping[str, str]
) -> tuple[Score, list[PageScore]]:
    """Score predictions (id → text) against truth; a missing prediction counts as empty."""
    pages = [score_page(pid, predictions.get(pid, ""), body) for pid, body in sorted(truth.items())]
    return aggregate(pages), pages
