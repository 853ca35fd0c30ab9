"""CC-NEWS-like WARC files for the cluster benchmark (bench/bench_cluster.py): news article
pages as a crawler stores them, deterministic for a seed.

Each page is a whole news site page, not a bare article: a head with meta tags, a JSON-LD
``NewsArticle`` (headline, dates, author; no ``articleBody``, as most sites), inline scripts and
styles, a navigation bar of ~60 links, a breaking-news ticker, the article (headline, byline,
time, a lead figure with a photo credit, 8-22 paragraphs of English-like prose split by an ad
slot and a newsletter box, in-body boilerplate the clean rules remove: "Share on Facebook",
"Trending on …", "Leave a Reply"), a related-stories grid, a most-read list, a comment form and
a footer of ~80 links. Sizes come out at 45-110 KB of HTML (1,000-1,800 elements), the range of
real news pages without their third-party scripts; every page's text is distinct, so none is
deduplicated away.

Files are named like Common Crawl's (``CC-NEWS-<yyyymmddhhmmss>-<nnnnn>.warc.gz``), one gzip
member per record, a response record per page (no request records: the reader skips them),
``WARC-Date`` inside the hour it belongs to, hosts spread over 40 sites.

    write_backfill(folder, day, hours=(0, 1, ...), pages=20000, files_per_hour=2, seed=12)
"""

from __future__ import annotations

import html
import io
import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

_VOCABULARY = (
    "the of and to in a is that for on said was with as by at from his her their it be has "
    "have had not are were will would could after before more than about over into year years "
    "government minister city council police officials report market prices workers company "
    "people state public health school students hospital court judge law budget election party "
    "vote voters union strike bank rates inflation energy power water river bridge road rail "
    "transit housing rent tenants farmers crops weather storm flood fire residents families "
    "children parents teachers doctors nurses patients study research scientists data climate "
    "emissions coal gas oil wind solar plant factory jobs wages trade exports imports tariffs "
    "talks agreement deal plan proposal committee board members chief executive spokesperson "
    "statement interview week month monday tuesday wednesday thursday friday saturday sunday "
    "morning evening night local regional national international border security military "
    "army troops ceasefire aid refugees village town district province capital mayor governor "
    "president prime opposition leader campaign funding cuts tax taxes spending deficit debt "
    "growth economy economists analysts investors shares stocks profits losses quarter annual "
    "season team players coach match game league final fans stadium record win loss injury"
)
WORDS = _VOCABULARY.split()
SECTIONS = ("politics", "business", "world", "local", "science", "sport", "health", "culture")
FIRST = ("Maya", "Daniel", "Priya", "Gabriel", "Hélène", "Tomasz", "Amara", "Kenji", "Lucía")
LAST = ("Okafor", "Brisebois", "Raman", "Lindqvist", "Tremblay", "Wielgus", "Mensah", "Sato")
SITES = 40


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng, rng.randint(12, 28)) for _ in range(rng.randint(2, 5)))


def _links(rng: random.Random, base: str, n: int, words: tuple[int, int] = (1, 3)) -> str:
    items = []
    for i in range(n):
        label = " ".join(rng.choice(WORDS) for _ in range(rng.randint(*words))).title()
        items.append(
            f'<li class="nav-item"><a href="{base}/{rng.choice(SECTIONS)}/{i}">{label}</a></li>'
        )
    return "".join(items)


def _teasers(rng: random.Random, base: str, n: int) -> str:
    cards = []
    for i in range(n):
        title = _sentence(rng, rng.randint(6, 11)).rstrip(".")
        cards.append(
            f'<div class="card teaser"><a href="{base}/{rng.choice(SECTIONS)}/story-{i}">'
            f'<img src="{base}/img/t{i}.jpg" alt="" width="300" height="200"/>'
            f'<h3 class="card-title">{title}</h3></a><div class="meta"><span class="card-time">'
            f'{i + 1} hours ago</span><span class="tag">{rng.choice(SECTIONS)}</span></div></div>'
        )
    return "".join(cards)


def page_html(index: int, url: str, published: datetime, seed: int) -> str:
    """One news page (deterministic for ``index`` and ``seed``)."""
    rng = random.Random(seed * 1_000_003 + index)
    host = url.split("/")[2]
    base = f"https://{host}"
    site = host.split(".")[0].replace("-", " ").title()
    title = _sentence(rng, rng.randint(7, 13)).rstrip(".") + f" ({index})"
    author = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    section = url.split("/")[3]
    paragraphs = [_paragraph(rng) for _ in range(rng.randint(8, 22))]
    ld = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": title,
        "datePublished": published.isoformat(),
        "dateModified": (published + timedelta(minutes=rng.randint(0, 50))).isoformat(),
        "author": [{"@type": "Person", "name": author}],
        "publisher": {"@type": "Organization", "name": site},
        "articleSection": section.title(),
        "mainEntityOfPage": url,
    }
    body = []
    for i, p in enumerate(paragraphs):
        body.append(f"<p>{html.escape(p)}</p>")
        if i == 2:
            body.append('<div class="ad-slot" data-ad="mid-1"><span>Advertisement</span></div>')
        if i == 5:
            body.append(
                '<aside class="newsletter"><h4>Get the morning briefing</h4><p>Sign up for our '
                'newsletter.</p><form><input type="email" name="e"/><button>Subscribe</button>'
                "</form></aside>"
            )
        if i == len(paragraphs) // 2:
            body.append(f"<p><strong>Trending on {html.escape(site)}</strong></p>")
    script = "var cfg=" + json.dumps({"k": rng.randbytes(3000).hex(), "s": section}) + ";"
    style = "".join(f".c{i}{{margin:{i}px;padding:{i % 7}px}}" for i in range(rng.randint(80, 200)))
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"/>'
        f"<title>{html.escape(title)} | {html.escape(site)}</title>"
        f'<meta name="description" content="{html.escape(paragraphs[0][:150])}"/>'
        f'<meta property="og:title" content="{html.escape(title)}"/>'
        f'<meta property="og:image" content="{base}/img/lead-{index}.jpg"/>'
        f'<meta name="author" content="{author}"/><link rel="canonical" href="{url}"/>'
        f'<script type="application/ld+json">{json.dumps(ld)}</script>'
        f"<style>{style}</style><script>{script}</script></head><body>"
        f'<header class="site-header"><a class="logo" href="{base}/">{html.escape(site)}</a>'
        f'<nav class="main-nav"><ul>{_links(rng, base, rng.randint(90, 150))}</ul></nav>'
        f'<div class="ticker"><span>Breaking</span><ul>{_links(rng, base, 8, (5, 9))}</ul></div>'
        '</header><main><article class="story">'
        f'<h1 class="headline">{html.escape(title)}</h1>'
        f'<div class="byline">By <a href="{base}/authors/{index % 50}">{author}</a> · '
        f'<time datetime="{published.isoformat()}">{published:%B %d, %Y %H:%M} UTC</time></div>'
        f'<figure class="lead"><img src="{base}/img/lead-{index}.jpg" alt=""/><figcaption>'
        f"{html.escape(_sentence(rng, 9))} (Photo: {rng.choice(LAST)}/AFP)</figcaption></figure>"
        f'<div class="story-body">{"".join(body)}</div>'
        '<div class="share"><a href="#">Share on Facebook</a> <a href="#">Share on X</a></div>'
        "</article>"
        f'<section class="related"><h2>More in {section.title()}</h2>'
        f"{_teasers(rng, base, rng.randint(16, 30))}</section>"
        f'<aside class="most-read"><h2>Most read</h2><ol>{_links(rng, base, 10, (5, 9))}</ol>'
        "</aside>"
        '<section class="comments"><h3>Leave a Reply</h3><form><textarea></textarea>'
        "<button>Post comment</button></form></section></main>"
        f'<footer><ul class="footer-links">{_links(rng, base, rng.randint(120, 200))}</ul>'
        f"<p>© 2024 {html.escape(site)}. All rights reserved.</p></footer></body></html>"
    )


def page_url(index: int, day: datetime, seed: int) -> str:
    rng = random.Random(seed * 7_919 + index)
    host = f"news-site-{index % SITES:02d}.example.com"
    slug = "-".join(rng.choice(WORDS) for _ in range(5))
    return f"https://{host}/{rng.choice(SECTIONS)}/{day:%Y/%m/%d}/{slug}-{index}.html"


def write_backfill(
    folder: Path,
    day: datetime,
    hours: Sequence[int],
    pages: int,
    *,
    files_per_hour: int = 2,
    seed: int = 12,
    url_day: datetime | None = None,
) -> dict[str, int]:
    """``pages`` pages spread evenly over ``hours`` of ``day`` and ``files_per_hour`` files
    each (URLs dated ``url_day``, default ``day``: the same pages crawled on another day keep
    their URLs); returns {"pages", "bytes" (HTML), "files", "warc_bytes"}."""
    folder.mkdir(parents=True, exist_ok=True)
    per_hour = [
        pages // len(hours) + (1 if i < pages % len(hours) else 0) for i in range(len(hours))
    ]
    index, html_bytes, files = 0, 0, []
    for hour, count in zip(hours, per_hour, strict=True):
        start = day.replace(hour=hour, minute=0, second=0, microsecond=0, tzinfo=UTC)
        for f in range(files_per_hour):
            n = count // files_per_hour + (1 if f < count % files_per_hour else 0)
            path = folder / f"CC-NEWS-{start:%Y%m%d%H%M%S}-{f:05d}.warc.gz"
            with path.open("wb") as fh:
                writer = WARCWriter(fh, gzip=True)
                for k in range(n):
                    when = start + timedelta(seconds=(3599 * (k + 1)) // (n + 1))
                    url = page_url(index, url_day or day, seed)
                    body = page_html(index, url, when - timedelta(minutes=10), seed).encode()
                    html_bytes += len(body)
                    _write(writer, url, when, body)
                    index += 1
            files.append(path)
    return {
        "pages": index,
        "bytes": html_bytes,
        "files": len(files),
        "warc_bytes": sum(p.stat().st_size for p in files),
    }


def _write(writer: WARCWriter, url: str, when: datetime, body: bytes) -> None:
    date = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = StatusAndHeaders(
        "200 OK",
        [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))],
        protocol="HTTP/1.1",
    )
    record = writer.create_warc_record(
        url,
        "response",
        payload=io.BytesIO(body),
        http_headers=headers,
        warc_headers_dict={"WARC-Date": date},
    )
    writer.write_record(record)
