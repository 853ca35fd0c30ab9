"""Transient failures never freeze into the archive (issue 7): pending URLs, retries, reruns.

Reproduced on the old code: an article answering 503 (or timing out, or behind a robots.txt
answering 503) became a final fetch_log row, the page index was written, and every later run of
the interval replayed the archive without asking again: the article was lost for good. Now the
interval stays *incomplete* with the URL pending; a retry of the fetch step (same attempt, as
Airflow retries the task) or a rerun (a new ``newsetl run``) asks for that URL alone and merges
it into the archive. Real sites on 127.0.0.1; the server's request log is the reference.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from etl.errors import EtlError
from etl.lake.layout import raw_key
from etl.lake.manifest import read_manifest
from etl.runner.discover import discover_step
from etl.runner.interval import fetch_step, raise_if_incomplete, run_interval
from etl.runner.rawzone import read_index
from tests.support.article_factory import prose
from tests.support.runner_helpers import (
    FERRY,
    HOUR9,
    LIBRARY,
    article_html,
    articles,
    fetch_log,
    html,
    open_run,
    paragraphs,
    record_at,
    rss,
    sources_file,
)
from tests.support.sites import Response, Site, SiteRequest

WHEN = "Sat, 14 May 2022 09:30:00 +0000"
FERRY_PATH, LIBRARY_PATH = "/news/ferry-returns/", "/news/library-hours/"


def flaky(fail: Response, ok: Response, times: int) -> Callable[[SiteRequest], Response]:
    """A route answering ``fail`` for its first ``times`` requests, then ``ok``."""
    count = {"n": 0}

    def route(_req: SiteRequest) -> Response:
        count["n"] += 1
        return fail if count["n"] <= times else ok

    return route


def gazette(site: Site, library: Any, robots: Any = None) -> None:
    site.routes.update(
        {
            "/robots.txt": robots
            or Response(200, b"User-agent: *\nAllow: /\n", content_type="text/plain"),
            "/feed.xml": rss(site.base, [(FERRY_PATH, WHEN), (LIBRARY_PATH, WHEN)]),
            FERRY_PATH: html(FERRY),
            LIBRARY_PATH: library,
        }
    )


def sources(tmp_path: Path, site: Site, **fetch: Any) -> Path:
    entry = {"id": "gazette", "kind": "rss", "url": site.url("/feed.xml")}
    return sources_file(tmp_path, entry, **{"max_attempts": 2, **fetch})


def asked_since(site: Site, n: int) -> list[str]:
    return [r.path for r in site.requests()[n:]]


def check_archive(run: Any) -> None:
    """Every raw_ref of the index and of the published fetch_log reads back its own response."""
    index = read_index(run.lake, "gazette", HOUR9)
    assert index is not None
    for page in index.pages:
        assert record_at(run, page["raw_ref"]).url == page["url"]
    for r in fetch_log(run):
        if r["raw_ref"]:
            got = record_at(run, r["raw_ref"])
            assert (got.url, got.http_status) == (r["url"], r["status"]), r
    for row in articles(run):
        assert record_at(run, row["raw_ref"]).url == row["url"]


def first_run_leaves_library_pending(tmp_path: Path, site: Site, src: Path, kind: str) -> Any:
    run = open_run(tmp_path, src)
    out = run_interval(run)
    assert out["status"] == "incomplete"
    assert out["pending"] == [site.url(LIBRARY_PATH)]
    assert [r["url"] for r in articles(run)] == [site.url(FERRY_PATH)]
    manifest = read_manifest(run.lake, HOUR9)
    assert manifest is not None and manifest["status"] == "incomplete"
    [pending] = manifest["pending"]
    assert (pending["url"], pending["source"], pending["purpose"], pending["runs"]) == (
        site.url(LIBRARY_PATH),
        "gazette",
        "article",
        1,
    )
    assert pending["error_class"] == kind
    # the failure is a row meanwhile: nothing is dropped silently
    rows = [r for r in fetch_log(run) if r["url"] == site.url(LIBRARY_PATH)]
    assert [r["error_class"] for r in rows] == [kind]
    check_archive(run)
    return run


@pytest.mark.parametrize(
    ("failure", "kind", "tries"),
    [  # a 503 is retried within a run (max_attempts 2), a timeout is not
        (Response(503, b"busy", content_type="text/plain"), "http-5xx", 2),
        (Response(200, LIBRARY, delay_s=1.5), "timeout", 1),
    ],
    ids=["503", "timeout"],
)
def test_a_rerun_fetches_only_the_pending_article_and_completes_the_interval(
    tmp_path: Path, site: Site, failure: Response, kind: str, tries: int
) -> None:
    gazette(site, flaky(failure, html(LIBRARY), times=tries))  # every try of the first run fails
    src = sources(tmp_path, site, read_timeout_s=0.5, total_timeout_s=1.0)
    run = first_run_leaves_library_pending(tmp_path, site, src, kind)

    n = len(site.requests())
    out = run_interval(open_run(tmp_path, src))  # a rerun: a new attempt

    assert asked_since(site, n) == [LIBRARY_PATH]  # one request, for that URL: no re-listing
    assert out["sources"][0]["mode"] == "resume"
    assert out["status"] == "complete" and out["pending"] == []
    assert sorted(r["url"] for r in articles(run)) == [
        site.url(FERRY_PATH),
        site.url(LIBRARY_PATH),
    ]
    manifest = read_manifest(run.lake, HOUR9)
    assert manifest is not None and manifest["status"] == "complete" and manifest["pending"] == []
    rows = [r for r in fetch_log(run) if r["url"] == site.url(LIBRARY_PATH)]
    assert [(r["status"], r["error_class"]) for r in rows] == [(200, None)]  # the failure replaced
    check_archive(run)

    n = len(site.requests())
    again = run_interval(open_run(tmp_path, src))  # complete now: a plain replay
    assert asked_since(site, n) == [] and again["sources"][0]["mode"] == "replay"
    assert again["articles"] == 2


def test_a_retry_of_the_fetch_step_fetches_only_the_pending_article(
    tmp_path: Path, site: Site
) -> None:
    """Airflow retries the fetch task with the same input and the same attempt."""
    gazette(site, flaky(Response(503, b"busy"), html(LIBRARY), times=2))
    src = sources(tmp_path, site)
    run = open_run(tmp_path, src, attempt="dag-run-1")
    found = json.loads(json.dumps(discover_step(run, "gazette")))
    fetched = fetch_step(run, found)
    assert fetched["status"] == "incomplete" and fetched["pending"] == [site.url(LIBRARY_PATH)]
    with pytest.raises(EtlError) as info:  # what the DAG task raises: Airflow retries it
        raise_if_incomplete(fetched)
    assert info.value.transient and site.url(LIBRARY_PATH) in str(info.value)

    n = len(site.requests())
    retried = fetch_step(open_run(tmp_path, src, attempt="dag-run-1"), found)

    assert asked_since(site, n) == [LIBRARY_PATH]
    assert retried["status"] == "complete" and retried["pages"] == 2
    raise_if_incomplete(retried)  # nothing left: no error


def test_a_robots_txt_503_leaves_its_articles_pending_until_it_answers(
    tmp_path: Path, make_site: Callable[..., Site]
) -> None:
    """Listing on one host, articles on another whose robots.txt answers 503 the first time."""
    news = make_site()
    robots_ok = Response(200, b"User-agent: *\nAllow: /\n", content_type="text/plain")
    gazette(news, html(LIBRARY), robots=flaky(Response(503, b"down"), robots_ok, times=1))
    listing = make_site({"/robots.txt": robots_ok})
    listing.routes["/feed.xml"] = rss(news.base, [(LIBRARY_PATH, WHEN)])
    entry = {"id": "gazette", "kind": "rss", "url": listing.url("/feed.xml")}
    src = sources_file(tmp_path, entry, max_attempts=2)

    run = open_run(tmp_path, src)
    out = run_interval(run)
    assert out["status"] == "incomplete" and out["pending"] == [news.url(LIBRARY_PATH)]
    assert [r.path for r in news.requests()] == ["/robots.txt"]  # the article was not asked
    manifest = read_manifest(run.lake, HOUR9)
    assert manifest is not None
    assert [(p["purpose"], p["error_class"]) for p in manifest["pending"]] == [
        ("article", "robots")
    ]

    n = len(news.requests())
    out = run_interval(open_run(tmp_path, src))
    assert asked_since(news, n) == ["/robots.txt", LIBRARY_PATH]  # robots.txt again, the article
    assert len(listing.requests("/feed.xml")) == 1  # no re-listing
    assert out["status"] == "complete" and out["articles"] == 1
    log = fetch_log(run)
    robots_rows = [r for r in log if r["url"] == news.url("/robots.txt")]
    assert [r["status"] for r in robots_rows] == [200]  # the 503 was not final
    check_archive(run)


def test_a_url_failing_every_run_becomes_terminal_once_its_budget_is_used(
    tmp_path: Path, site: Site
) -> None:
    gazette(site, Response(503, b"busy", content_type="text/plain"))
    src = sources(tmp_path, site, max_attempts_across_runs=2)
    run = first_run_leaves_library_pending(tmp_path, site, src, "http-5xx")

    out = run_interval(open_run(tmp_path, src))  # the second run uses the budget up
    assert out["status"] == "complete" and out["pending"] == []
    rows = [r for r in fetch_log(run) if r["url"] == site.url(LIBRARY_PATH)]
    assert len(rows) == 1
    assert rows[0]["error_class"] == "http-5xx" and rows[0]["status"] == 503
    assert rows[0]["attempts"] == 4  # 2 runs x max_attempts 2
    assert "gave up after 2 runs" in rows[0]["error"]
    assert len(site.requests(LIBRARY_PATH)) == 4

    n = len(site.requests())
    again = run_interval(open_run(tmp_path, src))  # terminal now: replayed, never asked again
    assert asked_since(site, n) == [] and again["sources"][0]["mode"] == "replay"
    assert [r["url"] for r in articles(run)] == [site.url(FERRY_PATH)]
    check_archive(run)


def test_a_fetch_retried_after_its_commit_adds_nothing_twice(tmp_path: Path, site: Site) -> None:
    """A task killed after it wrote the raw zone but before it returned is retried with the same
    input: the listings it archived are not merged again, no URL is asked again."""
    gazette(site, html(LIBRARY))
    src = sources(tmp_path, site)
    run = open_run(tmp_path, src, attempt="dag-run-2")
    found = discover_step(run, "gazette")
    fetch_step(run, found)
    index = read_index(run.lake, "gazette", HOUR9)
    assert index is not None
    warc = run.lake.get_bytes(index.warc)
    n = len(site.requests())

    fetch_step(open_run(tmp_path, src, attempt="dag-run-2"), found)

    assert asked_since(site, n) == []
    again = read_index(run.lake, "gazette", HOUR9)
    assert again is not None and again.pages == index.pages
    assert run.lake.get_bytes(again.warc) == warc


def test_an_unreadable_raw_index_fails_its_source_only_and_refetch_rebuilds_it(
    tmp_path: Path, site: Site
) -> None:
    gazette(site, html(LIBRARY))
    src = sources(tmp_path, site)
    run_interval(open_run(tmp_path, src))
    run = open_run(tmp_path, src)
    key = raw_key("gazette", HOUR9).removesuffix(".warc.gz") + ".pages.jsonl"
    run.lake.put_bytes(key, b"{not json\n")

    out = run_interval(run)
    [failed] = out["failed_sources"]
    assert failed["source"] == "gazette" and key in failed["error"]

    out = run_interval(open_run(tmp_path, src, refetch=True))
    assert out["failed_sources"] == [] and out["articles"] == 2


def test_a_run_deadline_leaves_the_urls_not_fetched_pending_and_a_rerun_fetches_only_them(
    tmp_path: Path, site: Site
) -> None:
    """fetch.run_deadline_s: after it no request starts; the URLs left are pending (``deadline``,
    not counted against their budget), never dropped, and the rerun asks for them alone."""
    paths = [f"/news/story-{i}/" for i in range(8)]
    site.routes.update(
        {
            "/robots.txt": Response(200, b"User-agent: *\nAllow: /\n", content_type="text/plain"),
            "/feed.xml": rss(site.base, [(p, WHEN) for p in paths]),
        }
    )
    for i, p in enumerate(paths):  # a slow site: 0.4 s per page, one at a time
        body = article_html(f"Story {i}", paragraphs(prose(i, 80), prose(100 + i, 80)))
        site.routes[p] = Response(200, body, content_type="text/html", delay_s=0.4)
    entry = {"id": "gazette", "kind": "rss", "url": site.url("/feed.xml")}
    fetch = {"max_concurrency": 1, "per_host_concurrency": 1, "max_attempts_across_runs": 2}
    short = sources_file(tmp_path, entry, run_deadline_s=1.0, **fetch)

    run = open_run(tmp_path, short)
    out = run_interval(run)  # 8 x 0.4 s cannot fit in 1 s

    assert out["status"] == "incomplete"
    pending = set(out["pending"])
    asked = {r.path for r in site.requests() if r.path in paths}
    assert pending and len(asked) < len(paths)
    assert pending >= {site.url(p) for p in paths if p not in asked}  # never dropped
    manifest = read_manifest(run.lake, HOUR9)
    assert manifest is not None
    kinds = {p["url"]: p["error_class"] for p in manifest["pending"]}
    unasked = [site.url(p) for p in paths if p not in asked]
    assert unasked and all(kinds[u] == "deadline" for u in unasked)
    # a URL the deadline kept from being asked has not used a run of its budget; one cut in
    # flight has (a `timeout`: a page slower than any run deadline still ends)
    assert all(p["runs"] == 0 for p in manifest["pending"] if p["error_class"] == "deadline")
    cut = [p for p in manifest["pending"] if p["error_class"] != "deadline"]
    assert all((p["error_class"], p["runs"]) == ("timeout", 1) for p in cut), cut
    by_url = {r["url"]: r for r in fetch_log(run)}
    assert all(by_url[u]["error_class"] == "deadline" for u in unasked)  # a row meanwhile

    n = len(site.requests())
    roomy = sources_file(tmp_path, entry, **fetch)
    out = run_interval(open_run(tmp_path, roomy))

    again = asked_since(site, n)
    assert sorted(again) == sorted(p for p in paths if site.url(p) in pending)  # only those
    assert out["status"] == "complete" and out["pending"] == []
    assert sorted(r["url"] for r in articles(run)) == sorted(site.url(p) for p in paths)
    rows = [r for r in fetch_log(run) if r["purpose"] == "article"]
    assert sorted((r["url"], r["status"]) for r in rows) == sorted(
        (site.url(p), 200) for p in paths
    )  # every URL ends with one row
    check_archive(run)
