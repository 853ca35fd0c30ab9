"""Bounds on what a page may cost, and why a page the parser gave up on yielded nothing.

:func:`element_count` bounds the time per page: trafilatura's time grows faster than linearly
with the number of elements (100,000 ``<p>`` took 30 s, 1.25 million six minutes), so a page
with more than ``ExtractSettings.max_elements`` is a ``too-complex`` row, not a stalled worker.

Nesting: libxml2 (behind lxml and trafilatura) stops building the tree at 256 levels of nesting
(``XML_PARSE_HUGE`` is off, as it must be for hostile input), so a page nested deeper yields no
text without saying why. :func:`nesting_depth` measures it, cheaply and only for a page that
yielded no text, so the row can say "nesting too deep" rather than a bare "no article text".
"""

from __future__ import annotations

import re

__all__ = ["PARSER_MAX_DEPTH", "element_count", "nesting_depth"]

PARSER_MAX_DEPTH = 255  # libxml2's default limit (xmlParserMaxDepth 256, the root included)

_TAG = re.compile(rb"<(/?)([A-Za-z][A-Za-z0-9-]{0,30})(?:\s[^<>]*)?(/?)>")
_VOID = frozenset(b"area base br col embed hr img input link meta param source track wbr".split())


def nesting_depth(html: bytes, *, stop_at: int = 100_000) -> int:
    """The deepest element nesting in ``html`` (void elements and self-closing tags excluded;
    unclosed tags count, as browsers and libxml2 nest them). Stops counting at ``stop_at``."""
    depth = deepest = 0
    for m in _TAG.finditer(html):
        closing, name, selfclosing = m.group(1), m.group(2).lower(), m.group(3)
        if name in _VOID or selfclosing:
            continue
        if closing:
            depth = max(0, depth - 1)
        else:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest >= stop_at:
                    break
    return deepest


_OPEN_TAG = re.compile(rb"<[A-Za-z]")


def element_count(html: bytes) -> int:
    """Roughly how many elements ``html`` opens (start tags; UTF-16 pages read too). Linear and
    cheap: the extractor's time grows faster than linearly with this number."""
    if b"\x00" in html[:2048]:
        html = html.replace(b"\x00", b"")
    return sum(1 for _ in _OPEN_TAG.finditer(html))
