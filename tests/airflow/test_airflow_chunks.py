"""``news_ingest`` with chunked sources, through ``airflow dags test`` (slow): one mapped
``fetch`` and ``process`` task instance per chunk, and a chunk failing transiently retried alone
(the retry asks for its pending URL only) while the interval completes."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from etl.records import Interval
from tests.support.runner_helpers import UA
from tests.support.warc_sites import two_sites, warc_file

pytestmark = pytest.mark.slow


def test_the_dag_maps_a_task_per_chunk_and_retries_a_failing_chunk_alone(
    airflow_env: dict[str, str], airflow_local: Any, tmp_path: Path
) -> None:
    a, b = two_sites(3, flaky={"/b/1/": 1})  # host B's chunk fails once, transiently
    try:
        warc = tmp_path / "crawl.warc.gz"
        warc_file(warc, 5)  # 5 records, 2 a chunk: 3 chunks
        sources = {
            "allow_private_addresses": True,
            "user_agent": UA,
            "fetch": {"max_attempts": 1},
            "sources": [
                {"id": "wire", "kind": "rss", "url": a.url("/feed.xml"), "per_host_delay_s": 0,
                 "chunk_size": 3},
                {"id": "crawl", "kind": "warc", "path": str(warc), "chunk_size": 2},
            ],
        }  # fmt: skip
        path = tmp_path / "sources.yaml"
        path.write_text(yaml.safe_dump(sources, sort_keys=False), encoding="utf-8")
        lake = tmp_path / "lake"
        env = airflow_local.subprocess_env(
            airflow_env,
            {"NEWSETL_SOURCES": str(path), "NEWSETL_LAKE": str(lake), "NEWSETL_RETRY_DELAY_S": "1"},
        )
        end = datetime(2022, 5, 14, 10, tzinfo=UTC)
        interval = Interval(datetime(2022, 5, 14, 9, tzinfo=UTC), end)

        result = airflow_local.dags_test(env, end, log=tmp_path / "chunks.log", timeout=900)

        assert result.ok, result.tail()
        done = Counter(result.tasks)
        # wire: 2 chunks (3 candidates of host A, 3 of host B); crawl: 3 chunks
        assert {t for t in done if t.startswith("fetch[")} == {f"fetch[{i}]" for i in range(5)}
        assert {t for t in done if t.startswith("process[")} == {f"process[{i}]" for i in range(5)}
        assert {t for t in done if t.startswith("discover[")} == {"discover[0]", "discover[1]"}
        pages_a = Counter(r.path for r in a.requests() if r.path.startswith("/a/"))
        pages_b = Counter(r.path for r in b.requests() if r.path.startswith("/b/"))
        assert pages_a == {"/a/0/": 1, "/a/1/": 1, "/a/2/": 1}  # host A's chunk: no retry
        assert pages_b == {"/b/0/": 1, "/b/1/": 2, "/b/2/": 1}  # the retry: its pending URL
        manifest = json.loads((lake / "_runs" / f"{interval.id}.json").read_text("utf-8"))
        assert manifest["status"] == "complete" and manifest["pending"] == []
        assert manifest["articles"] == 6 + 5
        figures = manifest["extra"]["sources"]
        assert (figures["wire"]["chunk_count"], figures["crawl"]["chunk_count"]) == (2, 3)
    finally:
        a.close()
        b.close()
