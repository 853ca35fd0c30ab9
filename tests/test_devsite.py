"""One static site: ``newsetl serve`` (etl.devsite.DevSite) and the test suite's
``static_site`` (tests/support/sites.py) answer every request alike, from one function
(:func:`etl.devsite.static_file`); the tests serve folders through ``static_site`` only."""

from __future__ import annotations

from pathlib import Path

import httpx

from etl.devsite import DevSite
from tests.support.sites import static_site

SEEDS = Path(__file__).resolve().parents[1] / "seeds" / "site"
PATHS = (
    "/",
    "/feed.xml",
    "/sitemap.xml",
    "/robots.txt",
    "/2022/05/14/russia-withdraw-kharkiv/",
    "/2022/05/14/russia-withdraw-kharkiv/?utm_source=rss",
    "/no/such/page/",
    "/../../etc/passwd",
)


def answers(base: str) -> list[tuple[str, int, str | None, bytes]]:
    with httpx.Client(base_url=base, trust_env=False) as client:
        out: list[tuple[str, int, str | None, bytes]] = []
        for path in PATHS:
            r = client.get(path)
            if r.status_code != 200:  # a 404's own page is the server's, not the site's
                out.append((path, r.status_code, None, b""))
                continue
            body = r.content.replace(base.encode(), b"{{BASE}}")
            out.append((path, r.status_code, r.headers.get("content-type"), body))
        return out


def test_devsite_and_the_test_site_serve_the_same_answers() -> None:
    with DevSite(SEEDS) as dev, static_site(SEEDS) as site:
        served, tested = answers(dev.base), answers(site.base)
    assert served == tested
    statuses = {path: status for path, status, _, _ in served}
    assert statuses["/no/such/page/"] == statuses["/../../etc/passwd"] == 404
    assert [s for p, s in statuses.items() if "no/such" not in p and "passwd" not in p] == [200] * 6
    by_path = {path: (ctype, body) for path, _, ctype, body in served}
    assert by_path["/feed.xml"][0] == "application/xml"
    assert b"{{BASE}}/2022/" in by_path["/feed.xml"][1]  # the site's own address, substituted
    assert by_path["/"][0] == "text/html"  # no charset parameter: each page declares its own
