"""The backfill tests' news site: six articles in a Google News sitemap, two per hour on
2024-03-05 (10:xx, 11:xx, 12:xx UTC), with in-body boilerplate the clean stage removes, and the
sources file that points ``newsetl`` at it (tests/airflow/test_backfill.py)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

DAY = "2024-03-05"
HOURS = (10, 11, 12)
SOURCE_ID = "backfill-news"

# -- the site ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Story:
    slug: str
    published: datetime
    title: str
    author: str
    section: str
    paragraphs: tuple[str, ...]

    @property
    def path(self) -> str:
        return f"/news/2024/03/05/{self.slug}/"


def at(hour: int, minute: int) -> datetime:
    return datetime(2024, 3, 5, hour, minute, tzinfo=UTC)


STORIES = (
    Story(
        "harbour-ferry-late-sailings",
        at(10, 5),
        "Harbour ferry adds late-night sailings for the summer season",
        "Maya Okafor",
        "Local",
        (
            "The harbour ferry will run two extra crossings after eleven o'clock every night "
            "from June to September, the regional transit authority said on Tuesday, after a "
            "pilot last summer drew more riders than planners had forecast.",
            "Crews on the Dartmouth route voted to accept the longer shifts in exchange for an "
            "additional paid day off each month, according to their union local, which had "
            "opposed the pilot when it was first proposed.",
            "Restaurant owners along the waterfront welcomed the change. Several said late "
            "diners had been leaving early to catch the last boat, cutting evening sales by as "
            "much as a fifth on busy weekends.",
        ),
    ),
    Story(
        "library-weekend-hours",
        at(10, 40),
        "City library extends weekend hours at six neighbourhood branches",
        "Daniel Brisebois",
        "Local",
        (
            "Six neighbourhood library branches will open on Sunday mornings starting next "
            "month, the library board decided at a meeting that ran past midnight, reversing "
            "cuts made during the pandemic.",
            "The board's chair said card holders had asked for longer hours in every survey "
            "since 2021, and that children's reading programs in particular had outgrown the "
            "Saturday slots they were squeezed into.",
            "The extra hours will cost roughly $410,000 a year, money the board plans to find "
            "by closing the central branch's rarely used microfilm room and leasing the space "
            "to a community college.",
        ),
    ),
    Story(
        "transit-fare-freeze",
        at(11, 10),
        "Transit board votes to freeze bus and subway fares for another year",
        "Priya Raman",
        "Politics",
        (
            "Bus and subway fares will stay at $3.35 for adults through next March after the "
            "transit commission voted eight to three to extend a freeze first introduced when "
            "ridership collapsed four years ago.",
            "Commissioners who opposed the motion warned that the agency's operating deficit "
            "would widen to nearly $90 million and said the province should be asked to cover "
            "the gap before any vote was taken.",
            "Riders' advocates called the freeze overdue relief for shift workers and students, "
            "who they said have absorbed steep rent increases and cannot easily switch to "
            "driving.",
        ),
    ),
    Story(
        "school-roof-repairs",
        at(11, 45),
        "School board approves emergency roof repairs at four elementary schools",
        "Gabriel Lindqvist",
        "Education",
        (
            "Leaking roofs at four elementary schools will be patched over the March break "
            "under an emergency contract the public school board approved without the usual "
            "tender, citing water damage in classrooms and a gymnasium.",
            "Facilities staff told trustees that buckets had been set out in hallways for most "
            "of February and that one kindergarten class had moved into the library after "
            "ceiling tiles fell overnight.",
            "Parents at one of the schools said they had raised the problem for three winters "
            "running. The board promised a full inventory of roof conditions across the "
            "district by the end of June.",
        ),
    ),
    Story(
        "farmers-market-rail-yard",
        at(12, 15),
        "Farmers' market to move into the restored rail yard sheds",
        "Hélène Tremblay",
        "Business",
        (
            "The downtown farmers' market will leave the parking garage it has occupied since "
            "2009 and move into two restored locomotive sheds at the old rail yard when the "
            "outdoor season opens in May.",
            "Vendors have complained for years about low ceilings, exhaust fumes and the steep "
            "ramp they haul produce up each Saturday; the heritage sheds offer loading docks, "
            "skylights and room for sixty more stalls.",
            "Heritage planners required that the original timber trusses stay exposed and that "
            "any new walls be removable, conditions the market's cooperative said it was happy "
            "to accept.",
        ),
    ),
    Story(
        "bridge-lane-closures",
        at(12, 50),
        "Lane closures on the river bridge will last until the end of April",
        "Tomasz Wielgus",
        "Traffic",
        (
            "Drivers crossing the river bridge should expect a single lane in each direction "
            "until the end of April while crews replace corroded expansion joints, the city's "
            "engineering department said.",
            "The work was scheduled to finish last autumn, but inspectors found more rust under "
            "the deck than the original survey showed, and replacement steel took eleven weeks "
            "to arrive from the fabricator.",
            "Cyclists keep their protected lane throughout. Commuters are encouraged to use the "
            "upstream crossing or the express bus, which gets a temporary priority signal at "
            "the bridge approach.",
        ),
    ),
)


def stories_in(hour: int) -> list[Story]:
    return [s for s in STORIES if s.published.hour == hour]


_PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} - Harbour City Herald</title>
  <link rel="canonical" href="{{{{BASE}}}}{path}">
  <meta name="description" content="{lead}">
  <meta property="og:title" content="{title}">
  <meta property="og:type" content="article">
  <meta property="og:site_name" content="Harbour City Herald">
  <meta property="article:published_time" content="{published}">
  <meta property="article:section" content="{section}">
  <script type="application/ld+json">{ld}</script>
  <link rel="stylesheet" href="/static/site.css">
</head>
<body>
  <div class="promo-banner">Subscribe today: unlimited digital access for $1 a week.</div>
  <header class="masthead">
    <a href="/"><img src="/static/logo.svg" alt="Harbour City Herald"></a>
    <nav><ul>
      <li><a href="/">Home</a></li><li><a href="/local/">Local</a></li>
      <li><a href="/politics/">Politics</a></li><li><a href="/business/">Business</a></li>
      <li><a href="/sports/">Sports</a></li><li><a href="/opinion/">Opinion</a></li>
    </ul></nav>
  </header>
  <main>
    <article class="story">
      <h1>{title}</h1>
      <p class="byline">By <span class="author">{author}</span>,
        <time datetime="{published}">March 5, 2024</time></p>
      <div class="story-body">
{body}
      </div>
      <div class="share-tools">Share this article: <a href="#">Facebook</a>
        <a href="#">X</a> <a href="#">Email</a></div>
    </article>
    <aside class="related">
      <h3>Most read</h3>
      <ol>
        <li><a href="/local/2024/03/04/snow-clearing-budget/">Snow clearing budget runs dry</a></li>
        <li><a href="/sports/2024/03/04/hockey-playoff-race/">Playoff race tightens</a></li>
      </ol>
      <div class="newsletter">Get the morning briefing in your inbox.
        <form><input type="email" placeholder="Email address"><button>Sign up</button></form>
      </div>
    </aside>
  </main>
  <footer class="site-footer">
    <p>Copyright © 2024 Harbour City Herald. All rights reserved.
      <a href="/privacy/">Privacy</a> <a href="/terms/">Terms of use</a></p>
  </footer>
</body>
</html>
"""

# In-body boilerplate the clean stage removes (rules newsletter-signup, share-prompt).
NEWSLETTER = "Sign up for our Morning Briefing newsletter to get the day's top stories."
SHARE = "Share this story:"

_SITEMAP_ENTRY = """\
  <url>
    <loc>{{{{BASE}}}}{path}</loc>
    <lastmod>{lastmod}</lastmod>
    <news:news>
      <news:publication>
        <news:name>Harbour City Herald</news:name>
        <news:language>en</news:language>
      </news:publication>
      <news:publication_date>{published}</news:publication_date>
      <news:title>{title}</news:title>
    </news:news>
  </url>
"""


def build_site(root: Path, stories: Sequence[Story] = STORIES) -> None:
    """Write the site: robots.txt, a Google News sitemap and one page per story."""
    from html import escape

    root.mkdir(parents=True, exist_ok=True)
    (root / "robots.txt").write_text(
        "User-agent: *\nDisallow: /search/\n\nSitemap: {{BASE}}/news-sitemap.xml\n"
    )
    entries = []
    for s in stories:
        published = s.published.isoformat()
        ld = json.dumps(
            {
                "@context": "https://schema.org",
                "@type": "NewsArticle",
                "headline": s.title,
                "datePublished": published,
                "author": {"@type": "Person", "name": s.author},
                "articleSection": s.section,
                "publisher": {"@type": "NewsMediaOrganization", "name": "Harbour City Herald"},
            },
            ensure_ascii=False,
        )
        paragraphs = [*s.paragraphs[:2], NEWSLETTER, *s.paragraphs[2:], SHARE]
        body = "\n".join(f"        <p>{escape(p)}</p>" for p in paragraphs)
        page = _PAGE.format(
            title=escape(s.title),
            path=s.path,
            lead=escape(s.paragraphs[0][:150], quote=True),
            published=published,
            section=s.section,
            ld=ld,
            author=escape(s.author),
            body=body,
        )
        folder = root / s.path.strip("/")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "index.html").write_text(page, encoding="utf-8")
        entries.append(
            _SITEMAP_ENTRY.format(
                path=s.path,
                lastmod=(s.published + timedelta(minutes=20)).isoformat(),
                published=published,
                title=escape(s.title),
            )
        )
    (root / "news-sitemap.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"\n'
        '        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">\n'
        + "".join(entries)
        + "</urlset>\n",
        encoding="utf-8",
    )


def write_sources(path: Path, base: str) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""\
            sources:
              - id: {SOURCE_ID}
                kind: sitemap
                url: {base}/news-sitemap.xml
                per_host_delay_s: 0.05
                language: en
            allow_private_addresses: true
            user_agent: "newsetl-test/1 (+https://example.org/newsetl-tests)"
            fetch:
              connect_timeout_s: 5
              read_timeout_s: 10
              max_attempts: 2
              backoff_base_s: 0.1
            """
        ),
        encoding="utf-8",
    )
    return path


def interval_id(hour: int) -> str:
    return f"20240305T{hour:02d}00Z-20240305T{hour + 1:02d}00Z"


def article_key(hour: int, shard: int = 0) -> str:
    return f"articles/dt={DAY}/{interval_id(hour)}-{shard:03d}.parquet"


def manifest_key(hour: int) -> str:
    return f"_runs/{interval_id(hour)}.json"
