"""Body candidates besides trafilatura's, and the general signals that choose between them.

Everything here reads the parsed page; nothing is keyed on a domain:

- :func:`jsonld_body` — the JSON-LD ``articleBody`` and the ``liveBlogUpdate`` entries of a
  ``LiveBlogPosting`` (each with its time, in page order);
- :func:`live_text` — the live-blog text format: per update a line with its time
  (``2025-03-04T15:20+00:00``, ISO 8601 as the page states it, to the minute), its headline,
  then its paragraphs;
- :func:`coverage` / :func:`agreement` — 4-token shingle overlap, as the evaluation metric;
- :func:`guard_prune` — keeps the prune rules off blocks whose text is in the JSON-LD body;
- :func:`repair_blocks` — the structural repairs of a body: sibling prose blocks of the body's
  container joined back in (a body split by an ad slot or a newsletter box), and a repeated
  reader-response block (a comment thread without "comment" in its markup) dropped.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from lxml.html import fromstring

from etl.article.evaluation import shingles
from etl.article.metadata import _jsonld_objects, _types, parse_date

KEEP_ATTR = "data-newsetl-keep"
_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w+")
_TAG = re.compile(r"<[a-zA-Z/!][^>]*>")
_BLOCK_TAGS = ("p", "li", "blockquote", "h2", "h3", "h4", "h5", "h6", "pre", "td", "dd")
_PROSE_WORDS = 20  # a paragraph of at least this many words is prose


@dataclass(frozen=True)
class LiveUpdate:
    time: str | None  # ISO 8601 to the minute, in the zone the page states
    headline: str
    body: str
    anchor: str | None  # the element id the update's URL points at (#post-4), for page order


@dataclass(frozen=True)
class JsonLd:
    body: str = ""
    live: tuple[LiveUpdate, ...] = ()


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _plain(value: object) -> str:
    """A JSON-LD text value as plain text: entities decoded, markup stripped, paragraphs kept."""
    if not isinstance(value, str):
        return ""
    text = html.unescape(value)
    if _TAG.search(text):
        try:
            node = fromstring(f"<div>{text}</div>")
        except Exception:  # unparsable markup: keep the words
            return _norm(_TAG.sub(" ", text))
        for br in node.iter("br"):
            br.tail = "\n" + (br.tail or "")
        for el in node.iter(*_BLOCK_TAGS, "div"):
            el.tail = "\n" + (el.tail or "")
        text = node.text_content()
    lines = (_norm(line) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _minute(value: object) -> str | None:
    """``2025-03-04T15:20:31.000+01:00`` → ``2025-03-04T15:20+01:00`` (the page's own zone)."""
    raw = _norm(str(value)) if value else ""
    m = re.match(
        r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?$", raw
    )
    if not m:
        when = parse_date(raw)
        return when.strftime("%Y-%m-%dT%H:%M+00:00") if when else None
    zone = m[3] or ""
    if zone == "Z":
        zone = "+00:00"
    elif zone and ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    return f"{m[1]}T{m[2]}{zone}"


def jsonld_body(tree: Any) -> JsonLd:
    """The longest JSON-LD ``articleBody`` of an article object, and live-blog updates in page
    order (the order of the elements their URLs' fragments name, else the JSON-LD order)."""
    body = ""
    live: list[LiveUpdate] = []
    for obj in _jsonld_objects(tree):
        text = _plain(obj.get("articleBody") or obj.get("text"))
        types = _types(obj)
        if "liveblogposting" in types:
            updates = obj.get("liveBlogUpdate") or ()
            for upd in updates if isinstance(updates, list) else [updates]:
                if not isinstance(upd, dict):
                    continue
                ubody = _plain(upd.get("articleBody") or upd.get("text") or upd.get("description"))
                head = upd.get("headline") or upd.get("name")
                head = _norm(head) if isinstance(head, str) else ""
                if not ubody and not head:
                    continue
                url = str(upd.get("url") or upd.get("@id") or "")
                anchor = url.rsplit("#", 1)[1] if "#" in url else None
                when = _minute(upd.get("datePublished") or upd.get("dateCreated"))
                live.append(LiveUpdate(when, head, ubody, anchor))
        elif text and "liveblogposting" not in types and len(text) > len(body):
            body = text
    if live:
        order = {el.get("id"): i for i, el in enumerate(tree.iter()) if el.get("id")}
        if all(u.anchor in order for u in live):
            live.sort(key=lambda u: order[u.anchor or ""])
    return JsonLd(body, tuple(live))


def live_text(updates: tuple[LiveUpdate, ...], page_lines: str = "") -> str:
    """Live-blog updates as text: per update a line with its time, a line with its headline,
    then its paragraphs. An update whose JSON-LD body is one run of text takes its paragraph
    breaks from ``page_lines`` (the page's own body) when those lines hold all of it."""
    out: list[str] = []
    lines = [(line, shingles(line)) for line in page_lines.split("\n") if words(line) >= 4]
    where: dict[tuple[str, ...], set[int]] = {}  # shingle → the page lines holding it
    for i, (_, sh) in enumerate(lines):
        for key in sh:
            where.setdefault(key, set()).add(i)
    for u in updates:
        out.extend(x for x in (u.time, u.headline) if x)
        body = [line for line in u.body.split("\n") if line.strip()]
        if len(body) == 1 and lines:
            whole = shingles(u.body)
            near = sorted({i for key in whole for i in where.get(key, ())})
            mine = [lines[i][0] for i in near if coverage(lines[i][1], whole) >= 0.9]
            if mine and coverage(whole, "\n".join(mine)) >= 0.95:
                body = mine
        out.extend(body)
    return "\n".join(out)


def coverage(part: str | Counter[tuple[str, ...]], whole: str | Counter[tuple[str, ...]]) -> float:
    """Share of ``part``'s 4-token shingles that ``whole`` holds (1.0 for an empty part)."""
    p = shingles(part) if isinstance(part, str) else part
    w = shingles(whole) if isinstance(whole, str) else whole
    total = sum(p.values())
    return sum((p & w).values()) / total if total else 1.0


def agreement(a: str, b: str) -> float:
    """Shingle F1 between two texts (1.0 when both are empty)."""
    sa, sb = shingles(a), shingles(b)
    total = sum(sa.values()) + sum(sb.values())
    return 2 * sum((sa & sb).values()) / total if total else 1.0


def words(text: str) -> int:
    return len(_WORD.findall(text))


def guard_prune(tree: Any, exprs: list[str], body: str) -> list[str]:
    """Prune rules that never take JSON-LD body text: a block a rule matches whose text is
    mostly (≥ 60 % of its shingles, at least 8 words) in ``body`` is marked ``KEEP_ATTR`` on
    ``tree``, and every rule becomes ``(rule)[not(@data-newsetl-keep)]``."""
    if not body or not exprs:
        return exprs
    whole = shingles(body)
    marked = False
    for expr in exprs:
        for node in tree.xpath(expr):
            if not hasattr(node, "text_content"):
                continue
            text = node.text_content()
            if words(text) >= 8 and coverage(text, whole) >= 0.6:
                node.set(KEEP_ATTR, "1")
                marked = True
    if not marked:
        return exprs
    return [f"({expr})[not(@{KEEP_ATTR})]" for expr in exprs]


# --- structural repairs -------------------------------------------------------------------


def _blocks(tree: Any) -> dict[str, Any]:
    """Normalized text → the first paragraph or heading holding exactly it (list items and
    table cells are left out: menus and tables are many, and cost more than they tell)."""
    out: dict[str, Any] = {}
    for el in tree.iter("p", "h2", "h3", "h4", "h5", "h6"):
        text = _norm(el.text_content())
        if (len(text) >= 25 or el.tag[0] == "h") and text not in out:
            out[text] = el
    return out


def _lca(nodes: list[Any]) -> Any:
    paths = [list(reversed([n, *n.iterancestors()])) for n in nodes]
    common = None
    for level in zip(*paths, strict=False):
        if all(x is level[0] for x in level):
            common = level[0]
        else:
            break
    return common


def _child_towards(ancestor: Any, node: Any) -> Any:
    for a in [node, *node.iterancestors()]:
        if a.getparent() is ancestor:
            return a
    return None


def _link_density(el: Any) -> float:
    total = len(_norm(el.text_content()))
    links = sum(len(_norm(a.text_content())) for a in el.iter("a"))
    return links / total if total else 1.0


def _prose(el: Any) -> list[str]:
    """The prose paragraphs of a block: <p> of ≥ 20 words, mostly not link text; [] when the
    block holds a form or a heading-only widget."""
    if el.tag in ("form", "nav", "aside", "footer", "header") or any(True for _ in el.iter("form")):
        return []
    out = []
    for p in el.iter("p"):
        text = _norm(p.text_content())
        if words(text) >= _PROSE_WORDS and _link_density(p) < 0.2:
            out.append(text)
    return out


def _repeated_items(block: Any) -> bool:
    """A reader-response thread: ≥ 3 sibling items of one tag and class, none with a heading,
    each holding a short line (the poster's name) beside a prose paragraph."""
    for parent in [block, *block.iterdescendants()]:
        kids = [k for k in parent if isinstance(k.tag, str)]
        if len(kids) < 3:
            continue
        shapes = Counter((k.tag, k.get("class")) for k in kids if k.get("class"))
        if not shapes:
            continue
        (_shape, n), *_ = shapes.most_common(1)
        if n < 3:
            continue
        items = [k for k in kids if (k.tag, k.get("class")) == _shape]
        if any(any(True for _ in i.iter("h1", "h2", "h3", "h4", "time")) for i in items):
            continue
        short = sum(
            1
            for i in items
            if _prose(i)
            and any(
                0 < words(_norm(d.text_content())) <= 6 and not d.xpath(".//p")
                for d in i.iterdescendants()
                if isinstance(d.tag, str) and d.tag in ("div", "span", "cite", "strong", "b", "a")
            )
        )
        if short >= max(3, 0.6 * len(items)):
            return True
    return False


def repair_blocks(tree: Any, text: str, prune: list[str]) -> tuple[str, str] | None:
    """A structural repair of ``text`` (trafilatura's body) on ``tree``, or None.

    Returns ``(text, method)``: ``joined-siblings`` when prose blocks beside the body's
    container were left out (a body split by an ad slot, newsletter box or read-more card),
    ``dropped-thread`` when the body runs on into a reader-response thread after the article.
    Blocks the ``prune`` rules take out are never joined back.
    """
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    index = _blocks(tree)
    found = [(line, index[line]) for line in lines if line in index]
    if len(found) < 2:
        return None
    container = _lca([el for _, el in found])
    if container is None or container.getparent() is None:
        return None
    # 1. a reader-response thread after the article, inside the same container
    groups: dict[Any, list[str]] = {}
    for line, el in found:
        child = _child_towards(container, el)
        if child is not None:
            groups.setdefault(child, []).append(line)
    if len(groups) >= 2:
        ordered = [c for c in container if c in groups]
        head = ordered[0]
        for later in ordered[1:]:
            if words(" ".join(groups[head])) >= 40 and _repeated_items(later):
                drop = {line for c in ordered[ordered.index(later) :] for line in groups[c]}
                kept = [line for line in lines if line not in drop]
                return "\n".join(kept), "dropped-thread"
    # 2. sibling prose blocks of the container, left out of the body
    have = set(lines)
    parent = container.getparent()
    pruned: set[Any] | None = None
    before: list[str] = []
    after: list[str] = []
    seen_container = False
    for sib in parent:
        if sib is container:
            seen_container = True
            continue
        if not isinstance(sib.tag, str) or any(True for _ in sib.iter("h1")):
            continue
        prose = [p for p in _prose(sib) if p not in have]
        # one paragraph beside the body is a standfirst or a teaser more often than a part of it
        if len(prose) < 2 or _link_density(sib) >= 0.2 or _repeated_items(sib):
            continue
        if pruned is None:  # evaluated only now: most pages never get this far
            pruned = {n for expr in prune for n in tree.xpath(expr) if hasattr(n, "tag")}
        if sib in pruned or any(a in pruned for a in sib.iterancestors()):
            continue
        (after if seen_container else before).extend(prose)
    if not before and not after:
        return None
    return "\n".join([*before, *lines, *after]), "joined-siblings"
