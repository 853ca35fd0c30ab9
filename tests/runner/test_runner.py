"""The interval runner (etl.runner) end to end: discover → fetch → process → publish → validate.

Every test runs against real local sites on 127.0.0.1 (the shipped seeds site served by
tests/support/sites.py ``static_site``, or a ``Site`` route table) and a lake in a tmp folder.
What the server saw (its request log) is the reference for "every URL tried" and "no request".
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from etl.config import QualitySettings
from etl.errors import EtlError, QualityError
from etl.fetch.archive import read_record
from etl.lake.layout import raw_key
from etl.lake.manifest import read_manifest
from etl.lake.tables import read_articles
from etl.runner.discover import discover_step
from etl.runner.interval import fetch_step, raise_if_incomplete, run_interval
from etl.runner.process import process_step
from etl.runner.publish import publish_step, validate_step
from etl.runner.rawzone import read_index
from etl.runner.results import Validated
from etl.runner.run import Run
from tests.support.lake_helpers import RecordingLake
from tests.support.runner_helpers import (
    FERRY,
    HOUR9,
    HOUR10,
    LIBRARY,
    NO_TEXT,
    PDF,
    STORM,
    articles,
    fetch_log,
    html,
    log_key,
    open_run,
    record_at,
    rss,
    sources_file,
    utc,
    warc_records,
)
from tests.support.sites import Response, Site, static_site
from tests.support.warc_sites import write_warc

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds" / "site"
KHARKIV = "/2022/05/14/russia-withdraw-kharkiv/"


# -- sites ---------------------------------------------------------------------------------------


@pytest.fixture
def seeds_site() -> Iterator[Site]:
    with static_site(SEEDS) as site:
        yield site


def paths(site: Site) -> list[str]:
    """The paths the site was asked for, in arrival order."""
    return [r.path for r in site.requests()]


def served_seed(site: Site, path: str) -> bytes:
    """The bytes the site serves for a seeds page."""
    f = SEEDS / path.strip("/") / "index.html"
    return f.read_bytes().replace(b"{{BASE}}", site.base.encode())


# -- sources files, runs, lake reading -----------------------------------------------------------


def seeds_sources(tmp_path: Path, site: Site) -> Path:
    return sources_file(
        tmp_path,
        {"id": "seeds-sitemap", "kind": "sitemap", "url": f"{site.base}/sitemap.xml"},
        {"id": "seeds-feed", "kind": "rss", "url": f"{site.base}/feed.xml"},
    )


# -- the seeds site: one interval, end to end ----------------------------------------------------


def test_run_over_the_seeds_site_publishes_kharkiv_once_with_its_raw_archive(
    tmp_path: Path, seeds_site: Site
) -> None:
    base = seeds_site.base
    run = open_run(tmp_path, seeds_sources(tmp_path, seeds_site))
    lake = RecordingLake(run.lake)
    run = replace(run, lake=lake)

    out = run_interval(run)

    # the article, once: both sources listed it, dedupe kept one
    rows = articles(run)
    assert len(rows) == 1 and out["articles"] == 1
    row = rows[0]
    assert row["url"] == base + KHARKIV
    assert "Kharkiv" in row["title"]
    assert row["source_id"] in ("seeds-sitemap", "seeds-feed")
    assert row["http_status"] == 200 and row["dt"] == "2022-05-14"
    assert [(p["source"], p["mode"], p["count"], p["rows"]) for p in out["sources"]] == [
        ("seeds-sitemap", "fetch", 1, 1),
        ("seeds-feed", "fetch", 1, 1),
    ]
    manifest = read_manifest(run.lake, HOUR9)
    assert manifest is not None
    assert manifest["extra"]["dedupe"]["rows_in"] == 2
    assert manifest["extra"]["dedupe"]["duplicate_id"] == 1
    assert out["quality"]["articles"] == 1 and out["quality"]["empty_rate"] == 0.0

    # raw zone: a WARC per source with request + response for robots.txt, listing, article
    for source_id, listing in (("seeds-sitemap", "/sitemap.xml"), ("seeds-feed", "/feed.xml")):
        key = f"raw/dt=2022-05-14/source={source_id}/{HOUR9.id}.warc.gz"
        assert key == raw_key(source_id, HOUR9)
        records = warc_records(run.lake.get_bytes(key))
        assert records[0][0] == "warcinfo"
        for path in ("/robots.txt", listing, KHARKIV):
            assert ("request", base + path, None) in records, (source_id, path)
            assert ("response", base + path, "200") in records, (source_id, path)
        assert sum(1 for r in records if r[:2] == ("response", base + KHARKIV)) == 1
        index_key = key.removesuffix(".warc.gz") + ".pages.jsonl"
        head, *index = run.lake.get_bytes(index_key).decode().splitlines()
        assert json.loads(head)["kind"] == "archive" and json.loads(head)["warc"] == key
        assert len(index) == 1 and base + KHARKIV in index[0] and f'"{key}#' in index[0]

    # the row's raw_ref points at the response record of the article in a raw WARC
    ref = row["raw_ref"]
    assert ref.startswith(raw_key(row["source_id"], HOUR9) + "#")
    page = record_at(run, ref)
    assert page.url == base + KHARKIV and page.http_status == 200
    assert page.body == served_seed(seeds_site, KHARKIV)

    # fetch_log: one row per URL tried, exactly what the server saw
    log = fetch_log(run)
    assert Counter(urlsplit(r["url"]).path for r in log) == Counter(paths(seeds_site))
    assert Counter(r["purpose"] for r in log) == {
        "robots": 4,
        "sitemap": 1,
        "feed": 1,
        "article": 2,
    }
    assert all(r["status"] == 200 and r["error_class"] is None for r in log)
    assert {r["source_id"] for r in log} == {"seeds-sitemap", "seeds-feed"}
    assert manifest["fetch_log"]["rows"] == len(log) == out["urls_tried"] == 8
    # ... and each row's raw_ref is the response it describes
    for r in log:
        got = record_at(run, r["raw_ref"])
        assert (got.url, got.http_status) == (r["url"], r["status"]), r

    # the manifest is the last object written; only staging deletes follow it
    manifest_put = ("put", f"_runs/{HOUR9.id}.json")
    assert [op for op in lake.ops if op[0] == "put"][-1] == manifest_put
    after = lake.ops[lake.ops.index(manifest_put) + 1 :]
    assert after and all(op == "delete" and k.startswith("_staging/") for op, k in after)
    assert run.lake.list("_staging/") == []


def test_rerun_replays_the_raw_archive_without_a_request(tmp_path: Path, seeds_site: Site) -> None:
    sources = seeds_sources(tmp_path, seeds_site)
    run = open_run(tmp_path, sources)
    first = run_interval(run)
    keys = run.lake.list()
    rows, log = articles(run), fetch_log(run)
    raw = {k: run.lake.get_bytes(k) for k in keys if k.startswith("raw/")}
    seeds_site.log.clear()

    again = run_interval(open_run(tmp_path, sources))

    assert paths(seeds_site) == []  # no request reached the server
    assert [p["mode"] for p in again["sources"]] == ["replay", "replay"]
    assert [r["article_id"] for r in articles(run)] == [r["article_id"] for r in rows]
    assert [r["raw_ref"] for r in articles(run)] == [r["raw_ref"] for r in rows]
    assert (again["articles"], again["urls_tried"]) == (first["articles"], first["urls_tried"])
    assert sorted(fetch_log(run), key=log_key) == sorted(log, key=log_key)  # kept, same rows
    assert run.lake.list() == keys  # no stale or duplicate objects
    assert {k: run.lake.get_bytes(k) for k in raw} == raw  # the raw archive is untouched
    assert again["deleted"] == []


def test_refetch_fetches_again_and_still_keeps_one_copy(tmp_path: Path, seeds_site: Site) -> None:
    sources = seeds_sources(tmp_path, seeds_site)
    run = open_run(tmp_path, sources)
    run_interval(run)
    keys, ids = run.lake.list(), [r["article_id"] for r in articles(run)]
    first_requests = Counter(paths(seeds_site))
    seeds_site.log.clear()

    again = run_interval(open_run(tmp_path, sources, refetch=True))

    assert Counter(paths(seeds_site)) == first_requests  # fetched again, same URLs
    assert [p["mode"] for p in again["sources"]] == ["fetch", "fetch"]
    assert [r["article_id"] for r in articles(run)] == ids
    assert len(fetch_log(run)) == again["urls_tried"] == 8
    # the same objects, except that each raw archive now has a new key (named by its index)
    assert [k for k in run.lake.list() if not k.startswith("raw/")] == [
        k for k in keys if not k.startswith("raw/")
    ]
    assert run.lake.list(f"articles/dt={HOUR9.dt}/") == [
        f"articles/dt={HOUR9.dt}/{HOUR9.id}-000.parquet"
    ]
    for source_id in ("seeds-sitemap", "seeds-feed"):  # the raw archive replaced, not appended to
        index = read_index(run.lake, source_id, HOUR9)
        assert index is not None and index.warc != raw_key(source_id, HOUR9)
        assert index.warc.endswith(f".{index.attempt}.warc.gz")
        stem = raw_key(source_id, HOUR9).removesuffix(".warc.gz")
        assert sorted(run.lake.list(stem)) == sorted(
            [index.warc, str(index.fetch_log), stem + ".pages.jsonl"]
        )  # the old WARC and fetch log are gone
        assert all(p["raw_ref"].startswith(index.warc + "#") for p in index.pages)
        records = warc_records(run.lake.get_bytes(index.warc))
        assert sum(1 for r in records if r[:2] == ("response", seeds_site.base + KHARKIV)) == 1
        assert sum(1 for r in records if r[0] == "warcinfo") <= 2
    row = articles(run)[0]
    assert record_at(run, row["raw_ref"]).body == served_seed(seeds_site, KHARKIV)


# -- the seen index ------------------------------------------------------------------------------


@pytest.fixture
def news_site(site: Site) -> Site:
    """Articles with trailing-slash URLs, and a URL list naming the ferry story twice: in HOUR9,
    and again in HOUR10 (re-listed with a tracking parameter), next to a new story of HOUR10."""
    b = site.base
    site.routes.update(
        {
            "/robots.txt": Response(
                200, b"User-agent: *\nDisallow: /private/\n", content_type="text/plain"
            ),
            "/list.txt": Response(
                200,
                (
                    f"{b}/news/ferry-returns/ 2022-05-14T09:30:00Z\n"
                    f"{b}/news/ferry-returns/?utm_source=rss 2022-05-14T10:20:00Z\n"
                    f"{b}/news/library-hours/ 2022-05-14T10:40:00Z\n"
                ).encode(),
                content_type="text/plain; charset=utf-8",
            ),
            "/news/ferry-returns/": html(FERRY),
            "/news/library-hours/": html(LIBRARY),
        }
    )
    return site


def test_seen_article_is_not_fetched_again_but_its_own_interval_reproduces_it(
    tmp_path: Path, news_site: Site
) -> None:
    b = news_site.base
    sources = sources_file(tmp_path, {"id": "gazette", "kind": "urls", "url": f"{b}/list.txt"})
    earlier = open_run(tmp_path, sources, HOUR9)
    run_interval(earlier)
    ferry = articles(earlier)
    assert [r["url"] for r in ferry] == [f"{b}/news/ferry-returns/"]

    n = len(news_site.requests())
    later = run_interval(open_run(tmp_path, sources, HOUR10))
    asked = [r.path for r in news_site.requests()[n:]]
    assert "/news/ferry-returns/" not in asked  # the candidate was skipped: no request
    assert "/news/library-hours/" in asked
    assert later["sources"][0]["count"] == 1
    assert [r["url"] for r in articles(earlier, HOUR10)] == [f"{b}/news/library-hours/"]
    assert not any("ferry" in r["url"] for r in fetch_log(earlier, HOUR10))

    # rerunning the earlier interval reproduces it: it is never in its own seen index
    replayed = run_interval(open_run(tmp_path, sources, HOUR9))
    assert replayed["sources"][0]["mode"] == "replay"
    assert [r["article_id"] for r in articles(earlier)] == [r["article_id"] for r in ferry]
    n = len(news_site.requests())
    refetched = run_interval(open_run(tmp_path, sources, HOUR9, refetch=True))
    assert "/news/ferry-returns/" in [r.path for r in news_site.requests()[n:]]
    assert refetched["sources"][0]["count"] == 1 and refetched["articles"] == 1
    assert [r["article_id"] for r in articles(earlier)] == [r["article_id"] for r in ferry]
    # the day's partition holds each story once
    assert [r["url"] for r in read_articles(earlier.lake, HOUR9.dt).to_pylist()] == [
        f"{b}/news/ferry-returns/",
        f"{b}/news/library-hours/",
    ]


# -- failures are rows ---------------------------------------------------------------------------


def test_failures_become_fetch_log_rows_and_the_good_articles_are_published(
    tmp_path: Path, news_site: Site
) -> None:
    b = news_site.base
    when = "Sat, 14 May 2022 09:30:00 +0000"
    paths = [
        "/news/ferry-returns/",
        "/news/missing/",
        "/news/budget-report/",
        "/private/leak/",
        "/news/loading/",
        "/news/library-hours/",
    ]
    news_site.routes.update(
        {
            "/feed.xml": rss(b, [(p, when) for p in paths]),
            "/news/budget-report/": Response(200, PDF, content_type="application/pdf"),
            "/news/loading/": html(NO_TEXT),
            "/private/leak/": html(STORM),
        }
    )
    sources = sources_file(tmp_path, {"id": "gazette", "kind": "rss", "url": f"{b}/feed.xml"})
    run = open_run(tmp_path, sources)

    out = run_interval(run)

    assert sorted(r["url"] for r in articles(run)) == [
        f"{b}/news/ferry-returns/",
        f"{b}/news/library-hours/",
    ]
    log = fetch_log(run)
    by = {(r["purpose"], urlsplit(r["url"]).path): r for r in log}
    # one row per URL and purpose (robots.txt: once per step, discover and fetch)
    assert len(by) == len(log) - 1 and by["robots", "/robots.txt"]["status"] == 200
    assert (
        by["article", "/news/missing/"]["status"],
        by["article", "/news/missing/"]["error_class"],
    ) == (404, "http-4xx")
    assert by["article", "/news/budget-report/"]["error_class"] == "wrong-type"
    assert by["article", "/news/budget-report/"]["status"] == 200
    assert by["article", "/private/leak/"]["error_class"] == "robots"
    assert by["article", "/private/leak/"]["status"] is None
    assert by["article", "/news/loading/"]["error_class"] is None  # fetched fine ...
    no_text = by["extract", "/news/loading/"]  # ... but holds no article
    assert no_text["error_class"] == "no-text" and no_text["source_id"] == "gazette"
    assert by["article", "/news/ferry-returns/"]["error_class"] is None
    assert out["sources"][0]["failed"] == 1

    # every URL tried has its row; robots.txt kept the server from seeing the blocked one
    asked = Counter(r.path for r in news_site.requests())
    assert "/private/leak/" not in asked
    tried = Counter(urlsplit(r["url"]).path for r in log if r["purpose"] != "extract")
    assert tried - Counter({"/private/leak/": 1}) == asked
    # every response is in the raw archive, errors included
    records = warc_records(run.lake.get_bytes(raw_key("gazette", HOUR9)))
    assert ("response", f"{b}/news/missing/", "404") in records
    assert ("response", f"{b}/news/budget-report/", "200") in records
    assert ("response", f"{b}/news/loading/", "200") in records
    assert not any(uri == f"{b}/private/leak/" for _, uri, _ in records)
    for r in log:
        if r["raw_ref"]:
            got = record_at(run, r["raw_ref"])
            assert (got.url, got.http_status) == (r["url"], r["status"]), r

    # a replay keeps them all: same rows, same articles, no request
    n = len(news_site.requests())
    again = run_interval(open_run(tmp_path, sources))
    assert again["sources"][0]["mode"] == "replay" and len(news_site.requests()) == n
    assert sorted(fetch_log(run), key=log_key) == sorted(log, key=log_key)
    assert again["articles"] == 2 and again["sources"][0]["failed"] == 1


def test_a_listing_failing_with_503_leaves_the_interval_incomplete_until_it_answers(
    tmp_path: Path, site: Site
) -> None:
    """Old behaviour: discover raised and nothing was recorded. Now the failure is a row, the
    manifest says incomplete and names the listing; the next run discovers the source again."""
    site.routes["/feed.xml"] = Response(503, b"busy", content_type="text/plain")
    sources = sources_file(
        tmp_path, {"id": "busy-feed", "kind": "rss", "url": site.url("/feed.xml")}, max_attempts=2
    )
    run = open_run(tmp_path, sources)

    found = discover_step(run, "busy-feed")
    assert found["mode"] == "failed" and found["transient"] is True
    assert "busy-feed" in found["error"] and site.url("/feed.xml") in found["error"]
    assert len(site.requests("/feed.xml")) == 2  # retried, then gave up for the next try
    with pytest.raises(EtlError) as info:  # what the DAG raises to have Airflow retry the task
        raise_if_incomplete(found)
    assert info.value.transient and "busy-feed" in str(info.value)

    out = run_interval(open_run(tmp_path, sources))
    assert out["status"] == "incomplete" and out["articles"] == 0
    manifest = read_manifest(run.lake, HOUR9)
    assert manifest is not None and manifest["status"] == "incomplete"
    assert [(f["source"], f["transient"]) for f in manifest["failed_sources"]] == [
        ("busy-feed", True)
    ]
    assert [(p["url"], p["purpose"], p["runs"]) for p in manifest["pending"]] == [
        (site.url("/feed.xml"), "listing", 1)
    ]
    rows = [r for r in fetch_log(run) if r["purpose"] == "feed"]
    assert [(r["status"], r["error_class"]) for r in rows] == [(503, "http-5xx")]
    # the publishing attempt removed its staging; the lone discover's attempt is h2's to clean
    assert run.lake.list("_staging/") == run.lake.list(f"_staging/{HOUR9.id}/{run.attempt}/")

    # once the feed answers, the next run discovers it again (no replay of the failure)
    site.routes["/feed.xml"] = rss(
        site.base, [("/news/ferry-returns/", "Sat, 14 May 2022 09:30:00 +0000")]
    )
    site.routes["/news/ferry-returns/"] = html(FERRY)
    out = run_interval(open_run(tmp_path, sources))
    assert out["sources"][0]["mode"] == "fetch" and out["articles"] == 1
    assert out["status"] == "complete" and out["failed_sources"] == []
    manifest = read_manifest(run.lake, HOUR9)
    assert manifest is not None and manifest["status"] == "complete"
    assert manifest["pending"] == [] and manifest["failed_sources"] == []
    feed_rows = [r for r in fetch_log(run) if r["purpose"] == "feed"]
    assert [r["status"] for r in feed_rows] == [200]  # the 503 was not final: replaced


# -- a warc source -------------------------------------------------------------------------------


def test_warc_source_publishes_only_in_interval_records_of_allowed_domains(tmp_path: Path) -> None:
    warc = tmp_path / "crawl.warc.gz"
    a, other = "https://gazette.example", "https://elsewhere.example"
    write_warc(
        warc,
        [
            (f"{a}/news/ferry-returns", utc(2022, 5, 14, 9, 10), "text/html; charset=utf-8", FERRY),
            (f"{a}/news/library-hours", utc(2022, 5, 14, 8, 59), "text/html", LIBRARY),
            (f"{other}/news/storm", utc(2022, 5, 14, 9, 20), "text/html", STORM),
            (f"{a}/img/ferry.png", utc(2022, 5, 14, 9, 21), "image/png", b"\x89PNG\r\n\x1a\n"),
            (f"{a}/news/storm", utc(2022, 5, 14, 9, 59, 59), "text/html", STORM),
            (f"{a}/news/late", utc(2022, 5, 14, 10), "text/html", LIBRARY),  # [start, end)
        ],
    )
    sources = sources_file(
        tmp_path,
        {"id": "crawl", "kind": "warc", "path": str(warc), "domains": ["gazette.example"]},
    )
    run = open_run(tmp_path, sources)

    out = run_interval(run)

    rows = sorted(articles(run), key=lambda r: r["url"])
    assert [r["url"] for r in rows] == [f"{a}/news/ferry-returns", f"{a}/news/storm"]
    assert out["sources"][0]["mode"] == "warc"
    assert {r["source_id"] for r in rows} == {"crawl"}
    for r, body in zip(rows, (FERRY, STORM), strict=True):
        path, _, offset = r["raw_ref"].rpartition("#")
        assert path == str(warc)
        with warc.open("rb") as fh:
            page = read_record(fh, int(offset))
        assert (page.url, page.body) == (r["url"], body)
    assert run.lake.list("raw/") == []  # nothing fetched: no raw archive of our own

    again = run_interval(open_run(tmp_path, sources))  # a rerun reproduces it
    assert again["articles"] == 2
    assert sorted(r["article_id"] for r in articles(run)) == sorted(r["article_id"] for r in rows)


# -- the quality gate ----------------------------------------------------------------------------


def test_quality_gate_refuses_an_interval_with_too_many_short_articles(
    tmp_path: Path, news_site: Site
) -> None:
    b = news_site.base
    when = "Sat, 14 May 2022 09:30:00 +0000"
    news_site.routes["/feed.xml"] = rss(
        b, [(p, when) for p in ("/news/ferry-returns/", "/news/library-hours/", "/news/storm/")]
    )
    news_site.routes["/news/storm/"] = html(STORM)
    sources = sources_file(tmp_path, {"id": "gazette", "kind": "rss", "url": f"{b}/feed.xml"})
    run = open_run(tmp_path, sources)
    run_interval(run)  # the default gate passes
    words = sorted(r["word_count"] for r in articles(run))
    assert len(words) == 3 and words[0] < words[1] < words[2]

    def gate(**quality: Any) -> Callable[[], Validated]:
        settings = replace(run.settings, quality=replace(QualitySettings(), **quality))
        return lambda: validate_step(replace(run, settings=settings))

    assert gate(min_words=words[0])()["empty_rate"] == 0.0
    with pytest.raises(QualityError) as info:
        gate(min_words=words[2] + 1)()
    assert HOUR9.id in str(info.value) and "empty-text rate 100.0%" in str(info.value)
    # one of three is short: above a 0.3 threshold, within a 0.34 one
    with pytest.raises(QualityError):
        gate(min_words=words[1], max_empty_rate=0.3)()
    assert gate(min_words=words[1], max_empty_rate=0.34)()["empty_rate"] == pytest.approx(
        1 / 3, abs=1e-3
    )

    # a run whose settings demand long articles fails at its validate step
    strict = open_run(tmp_path, sources, quality=QualitySettings(min_words=10_000))
    with pytest.raises(QualityError):
        run_interval(strict)
    # and an interval never published does not pass
    with pytest.raises(QualityError, match="not published"):
        validate_step(replace(run, interval=HOUR10))


# -- the steps, one by one (as the DAG runs them) ------------------------------------------------


def test_steps_talk_through_the_lake_only(tmp_path: Path, seeds_site: Site) -> None:
    """Each step gets a fresh Run (as a separate Airflow task would) and JSON-able inputs."""
    sources = seeds_sources(tmp_path, seeds_site)

    def fresh() -> Run:  # one attempt, as the DAG carries it in the items
        return open_run(tmp_path, sources, attempt="dag-run-1")

    processed = []
    for source_id in ("seeds-sitemap", "seeds-feed"):
        found = json.loads(json.dumps(discover_step(fresh(), source_id)))
        fetched = json.loads(json.dumps(fetch_step(fresh(), found)))
        processed.append(json.loads(json.dumps(process_step(fresh(), fetched))))
    published = publish_step(fresh(), processed)
    assert published["articles"] == 1 and published["urls_tried"] == 8
    assert validate_step(fresh())["articles"] == 1
    assert fresh().lake.list("_staging/") == []


def test_manifest_names_no_staging_key_after_publish(tmp_path: Path, seeds_site: Site) -> None:
    run = open_run(tmp_path, seeds_sources(tmp_path, seeds_site))
    published = run_interval(run)
    manifest = json.loads(run.lake.get_bytes(published["manifest"]))
    assert "_staging/" not in json.dumps(manifest)
    assert run.lake.list("_staging/") == []
    assert all("mode" in figures for figures in manifest["extra"]["sources"].values())
