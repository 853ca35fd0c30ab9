"""The body cascade: trafilatura's pruned body first, the other candidates only when it looks
doubtful, and a choice between them on general signals (never a domain name).

Candidates (the ``method`` recorded in the row's ``extraction`` column):

- ``trafilatura`` — precision-leaning, fast mode, prune rules applied (today's body);
  ``trafilatura-fallback`` when its result was short and the full run with the external
  fallback extractors gave more;
- ``json-ld`` — the page's JSON-LD ``articleBody``;
- ``json-ld-live`` — a ``LiveBlogPosting``'s ``liveBlogUpdate`` entries in page order, each with
  its time (format in :func:`etl.article.candidates.live_text`), after trafilatura's introduction;
- ``trafilatura-recall`` — recall-leaning, full run, prune rules applied;
- ``joined-siblings`` / ``dropped-thread`` — structural repairs of the first body
  (:func:`etl.article.candidates.repair_blocks`).

Doubt signals on the first body: a JSON-LD body it does not cover, a live blog, a structural
repair that applies, an empty or very short body. Choice: with a JSON-LD body, the extractor
candidate that agrees best with it (shingle F1 ≥ 0.8), else the JSON-LD body itself; without one,
a structural repair checked against the recall-leaning run. Every candidate leaves here as plain
text; the boilerplate rules (:mod:`etl.article.cleaning`) then run on whichever was chosen.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from trafilatura import bare_extraction

from etl.article.candidates import (
    agreement,
    coverage,
    guard_prune,
    jsonld_body,
    live_text,
    repair_blocks,
    words,
)
from etl.article.evaluation import shingles
from etl.config import ExtractSettings
from etl.records import Extraction

log = logging.getLogger("etl.article.cascade")

FALLBACK_BELOW_CHARS = 1500
AGREE = 0.8  # shingle agreement at which a candidate counts as confirmed
SAME = 0.98  # agreement at which two candidates are the same text
SHORT_WORDS = 30  # a body this short is doubtful unless confirmed
PROSE_WORDS = 20  # a line this long is prose, not a menu
_WS = re.compile(r"[ \t\u00a0]+")


def _text(node: Any) -> str:
    return _WS.sub(" ", node.text_content() if hasattr(node, "text_content") else str(node)).strip()


def _tidy(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def run_trafilatura(
    tree: Any,
    url: str | None,
    s: ExtractSettings,
    prune: list[str],
    fast: bool,
    *,
    recall: bool = False,
) -> str:
    """trafilatura's body of ``tree`` (prune rules applied, headline dropped); ``recall``
    switches to its recall-leaning mode."""
    # An embedded tweet quoted in the story is article text, but its wrapper's class (e.g.
    # "social-media-embed") is on trafilatura's discard list: lift the quote out of a wrapper
    # that holds nothing else. Idempotent, so the slow second pass sees the same tree.
    for quote in tree.xpath("//blockquote[contains(@class, 'twitter-tweet')]"):
        wrapper = quote.getparent()
        outer = wrapper.getparent() if wrapper is not None else None
        if outer is not None and wrapper.tag == "div" and _text(wrapper) == _text(quote):
            quote.tail = wrapper.tail
            outer.replace(wrapper, quote)
    doc = bare_extraction(
        tree,
        url=url,
        fast=fast,
        favor_precision=s.favor_precision and not recall,
        favor_recall=s.favor_recall or recall,
        include_comments=s.include_comments,
        include_tables=s.include_tables,
        prune_xpath=prune or None,
        with_metadata=False,
    )
    if doc is None or isinstance(doc, dict):
        return ""
    text = str(doc.text or "")
    # The page headline (<h1>) often comes out as the first line of the body; it is the title
    # (metadata), not article text. Pruning <h1> before extraction instead would change which
    # block trafilatura picks as the body, so the headline is dropped from the output: a line
    # among the first three equal to the text of an <h1>.
    headlines = {t for h in tree.iter("h1") if 0 < len(t := _text(h)) <= 300}
    if headlines and text:
        lines = text.split("\n")
        head = [i for i, line in enumerate(lines) if line.strip()][:3]
        drop = {i for i in head if _WS.sub(" ", lines[i]).strip() in headlines}
        text = "\n".join(line for i, line in enumerate(lines) if i not in drop)
    return text


def _live(first: str, updates: str) -> str:
    """The introduction (the first body's lines before the first one the updates hold; all of
    it when it holds none and is shorter than the updates), then the updates."""
    lines = first.split("\n") if first else []
    whole = shingles(updates)
    held = [i for i, line in enumerate(lines) if words(line) >= 4 and coverage(line, whole) >= 0.5]
    if not held:  # the updates are nowhere in it: all of it is the introduction, if short
        return "\n".join([first, updates]) if first and words(first) <= words(updates) else updates
    intro = lines[: held[0]]
    return "\n".join([*intro, updates]) if intro else updates


def choose_body(
    tree: Any, url: str | None, s: ExtractSettings, prune: list[str]
) -> tuple[str, Extraction]:
    """The article body of a parsed page and how it was chosen (see the module docstring)."""
    ld = jsonld_body(tree)
    updates = live_text(ld.live) if ld.live else ""
    prune = guard_prune(tree, prune, ld.body or updates)
    first = _tidy(run_trafilatura(tree, url, s, prune, fast=True))
    method = "trafilatura"
    if len(first) < FALLBACK_BELOW_CHARS:
        slow = _tidy(run_trafilatura(tree, url, s, prune, fast=False))
        if len(slow) > len(first):
            first, method = slow, "trafilatura-fallback"

    if updates and words(updates) >= SHORT_WORDS:
        held = coverage(updates, first)
        if words(first) > 2 * words(updates):
            # the JSON-LD lists only some of the updates the page shows: the page has more
            return first, Extraction(method, round(held, 3), held < 0.5)
        updates = live_text(ld.live, first)
        return _live(first, updates), Extraction("json-ld-live", round(held, 3), False)

    if ld.body and words(ld.body) >= SHORT_WORDS:
        held = coverage(ld.body, first)
        if held >= AGREE:
            return first, Extraction(method, round(held, 3), False)
        if first and words(ld.body) < 0.5 * words(first):
            # a summary or a teaser of the body, not the body: nothing to hold the first to
            return first, Extraction(method, round(held, 3), words(first) < SHORT_WORDS)
        candidates = {method: first}
        recall = _tidy(run_trafilatura(tree, url, s, prune, fast=False, recall=True))
        candidates["trafilatura-recall"] = recall
        if first and (rep := repair_blocks(tree, first, prune)):
            candidates[rep[1]] = rep[0]
        scored = {name: agreement(text, ld.body) for name, text in candidates.items() if text}
        best = max(scored, key=lambda n: scored[n], default=None)
        if best is not None and scored[best] >= AGREE:
            text = candidates[best]
            if scored[best] >= SAME and ld.body.count("\n") > text.count("\n"):
                # the same words: keep the JSON-LD body's paragraph breaks
                return ld.body, Extraction("json-ld", round(scored[best], 3), False)
            return text, Extraction(best, round(scored[best], 3), False)
        top = scored[best] if best is not None else 0.0
        return ld.body, Extraction("json-ld", round(top, 3), top < 0.5)

    if first and (rep := repair_blocks(tree, first, prune)):
        repaired, how = rep
        recall = _tidy(run_trafilatura(tree, url, s, prune, fast=False, recall=True))
        agree = agreement(repaired, recall)
        return repaired, Extraction(how, round(agree, 3), agree < 0.5)
    if not first:  # nothing: the recall-leaning run, if it finds prose (not just menus)
        recall = _tidy(run_trafilatura(tree, url, s, prune, fast=False, recall=True))
        if any(words(line) >= PROSE_WORDS for line in recall.split("\n")):
            return recall, Extraction("trafilatura-recall", None, True)
        return "", Extraction(method, None, True)
    return first, Extraction(method, None, words(first) < SHORT_WORDS)
