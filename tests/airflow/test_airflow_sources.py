"""``news_ingest`` through Airflow (``airflow dags test``) when sources fail (issue 7).

Old code: a mapped ``discover`` that failed (a 404 feed, a bad port) failed its task; ``fetch``
and ``process`` of that source were upstream-failed, and so was ``publish``: the other sources'
articles were never published. Now ``discover`` records the failure (a ``fetch_log`` row, the
raw index, the manifest's ``failed_sources``) and the DAG publishes the others.

Slow: one Airflow process per DAG run, in the session's migrated Airflow home.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from etl.records import Interval
from tests.support.sites import Site, static_site

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KHARKIV = "Russian forces begin withdrawing from Kharkiv as Ukraine 'wins battle'"


@pytest.fixture(scope="module")
def seeds_site() -> Iterator[Site]:
    with static_site(ROOT / "seeds" / "site") as site:
        yield site


def test_a_failing_mapped_source_does_not_stop_the_others_being_published(
    airflow_env: dict[str, str], airflow_local: Any, seeds_site: Site, tmp_path: Path
) -> None:
    base = seeds_site.base
    sources = {
        "allow_private_addresses": True,
        "user_agent": "newsetl-test/0.1 (+https://example.org/newsetl-tests)",
        "fetch": {"max_attempts": 1, "backoff_base_s": 0.01},
        "sources": [
            {"id": "missing", "kind": "rss", "url": f"{base}/missing-feed.xml",
             "per_host_delay_s": 0},
            {"id": "seeds-rss", "kind": "rss", "url": f"{base}/feed.xml", "per_host_delay_s": 0},
        ],
    }  # fmt: skip
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(sources, sort_keys=False), encoding="utf-8")
    lake = tmp_path / "lake"
    env = airflow_local.subprocess_env(
        airflow_env, {"NEWSETL_SOURCES": str(path), "NEWSETL_LAKE": str(lake)}
    )
    when = datetime(2022, 5, 14, 10, tzinfo=UTC)
    interval = Interval(datetime(2022, 5, 14, 9, tzinfo=UTC), when)

    result = airflow_local.dags_test(env, when, log=tmp_path / "dags-test.log", timeout=300)

    assert result.ok, result.tail()
    manifest = json.loads((lake / "_runs" / f"{interval.id}.json").read_text(encoding="utf-8"))
    assert manifest["articles"] == 1
    assert {f["source"]: f["transient"] for f in manifest["failed_sources"]} == {
        "missing": False,
    }
    assert manifest["status"] == "complete"  # terminal failures: nothing to retry
    assert manifest["attempt"] and "-" in manifest["attempt"]
    rows = [r for s in manifest["shards"] for r in pq.read_table(lake / s["key"]).to_pylist()]
    assert [r["title"] for r in rows] == [KHARKIV]
    log = pq.read_table(io.BytesIO((lake / manifest["fetch_log"]["key"]).read_bytes()))
    by = {(r["source_id"], r["purpose"]): r for r in log.to_pylist()}
    assert by["missing", "feed"]["status"] == 404
    assert not list((lake / "_staging").rglob("*.*")) if (lake / "_staging").exists() else True


def test_transient_failures_are_retried_by_airflow_and_the_interval_completes(
    airflow_env: dict[str, str], airflow_local: Any, tmp_path: Path
) -> None:
    """A feed answering 503 once and an article answering 503 once: ``discover`` and ``fetch``
    raise while Airflow has retries left; the fetch retry asks for the pending article alone."""
    from tests.support.runner_helpers import FERRY, LIBRARY, html, rss
    from tests.support.sites import Response, Site, SiteRequest

    when = "Sat, 14 May 2022 09:30:00 +0000"
    calls = {"/feed.xml": 0, "/news/library-hours/": 0}

    def once_busy(ok: Response) -> Any:
        def route(req: SiteRequest) -> Response:
            calls[req.path] += 1
            return Response(503, b"busy") if calls[req.path] == 1 else ok

        return route

    with Site() as site:
        feed = rss(site.base, [("/news/ferry-returns/", when), ("/news/library-hours/", when)])
        site.routes.update(
            {
                "/robots.txt": Response(200, b"User-agent: *\n", content_type="text/plain"),
                "/feed.xml": once_busy(feed),
                "/news/ferry-returns/": html(FERRY),
                "/news/library-hours/": once_busy(html(LIBRARY)),
            }
        )
        sources = {
            "allow_private_addresses": True,
            "user_agent": "newsetl-test/0.1 (+https://example.org/newsetl-tests)",
            "fetch": {"max_attempts": 1},
            "sources": [{"id": "gazette", "kind": "rss", "url": site.url("/feed.xml"),
                         "per_host_delay_s": 0}],
        }  # fmt: skip
        path = tmp_path / "sources.yaml"
        path.write_text(yaml.safe_dump(sources, sort_keys=False), encoding="utf-8")
        lake = tmp_path / "lake"
        env = airflow_local.subprocess_env(
            airflow_env,
            {
                "NEWSETL_SOURCES": str(path),
                "NEWSETL_LAKE": str(lake),
                "NEWSETL_RETRY_DELAY_S": "1",  # the retries themselves are what is tested
            },
        )
        end = datetime(2022, 5, 14, 10, tzinfo=UTC)
        interval = Interval(datetime(2022, 5, 14, 9, tzinfo=UTC), end)

        result = airflow_local.dags_test(env, end, log=tmp_path / "retries.log", timeout=600)

        assert result.ok, result.tail()
        assert calls == {"/feed.xml": 2, "/news/library-hours/": 2}  # one retry each
        fetched = [r.path for r in site.requests() if r.path.startswith("/news/")]
        assert sorted(fetched) == [
            "/news/ferry-returns/",
            "/news/library-hours/",
            "/news/library-hours/",
        ]  # the fetch retry asked for the pending article alone
        manifest = json.loads((lake / "_runs" / f"{interval.id}.json").read_text("utf-8"))
        assert manifest["status"] == "complete" and manifest["articles"] == 2
        assert manifest["pending"] == [] and manifest["failed_sources"] == []
        log = pq.read_table(lake / manifest["fetch_log"]["key"]).to_pylist()
        library = [r for r in log if r["url"].endswith("/news/library-hours/")]
        assert [r["status"] for r in library] == [200]
