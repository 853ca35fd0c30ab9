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

from etl.devsite import DevSite
from etl.records import Interval

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
KHARKIV = "Russian forces begin withdrawing from Kharkiv as Ukraine 'wins battle'"


@pytest.fixture(scope="module")
def seeds_site() -> Iterator[DevSite]:
    with DevSite(ROOT / "seeds" / "site") as site:
        yield site


def test_a_failing_mapped_source_does_not_stop_the_others_being_published(
    airflow_env: dict[str, str], airflow_local: Any, seeds_site: DevSite, tmp_path: Path
) -> None:
    base = seeds_site.base
    sources = {
        "allow_private_addresses": True,
        "user_agent": "newsetl-test/0.1 (+https://example.org/newsetl-tests)",
        "fetch": {"max_attempts": 1, "backoff_base_s": 0.01},
        "sources": [
            {"id": "missing", "kind": "rss", "url": f"{base}/missing-feed.xml",
             "per_host_delay_s": 0},
            {"id": "bad-port", "kind": "rss", "url": "http://127.0.0.1:99999/feed.xml",
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
        "bad-port": False,
    }
    assert manifest["status"] == "complete"  # terminal failures: nothing to retry
    assert manifest["attempt"] and "-" in manifest["attempt"]
    rows = [r for s in manifest["shards"] for r in pq.read_table(lake / s["key"]).to_pylist()]
    assert [r["title"] for r in rows] == [KHARKIV]
    log = pq.read_table(io.BytesIO((lake / manifest["fetch_log"]["key"]).read_bytes()))
    by = {(r["source_id"], r["purpose"]): r for r in log.to_pylist()}
    assert by["missing", "feed"]["status"] == 404
    assert by["bad-port", "source"]["error_class"] == "bad-url"
    assert not list((lake / "_staging").rglob("*.*")) if (lake / "_staging").exists() else True
