"""``news_ingest`` end to end through Airflow: ``airflow dags test`` on the seeds site into an S3
lake (moto on 127.0.0.1) reached through the ``news_lake`` connection, and the ``make run``
demo (scripts/demo.py) twice into a local lake.

Slow (each DAG run is an Airflow process, ~12-20 s on 2 cores); part of ``make test``. Airflow
runs only in subprocesses, in the session's migrated Airflow home (the ``airflow_env`` fixture
in conftest.py). Nothing leaves 127.0.0.1: the session's AWS endpoint is a closed loopback
port, so the S3 lake can only be reached through the connection's ``endpoint_url``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from etl.records import Interval
from etl.schema import article_schema
from tests.support.s3_server import CREDENTIALS, REGION, free_port
from tests.support.sites import Site, static_site

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = ROOT / "tests" / "cases" / "seeds" / "expected"
TITLES = {json.loads(p.read_text(encoding="utf-8"))["title"] for p in EXPECTED.glob("*.json")}
BOILERPLATE = ("Trending on", "Leave a Reply", "Your email address will not be published")
SOURCE_IDS = {"seeds-urls", "seeds-rss", "seeds-sitemap"}


@pytest.fixture(scope="module")
def seeds_site() -> Iterator[Site]:
    with static_site(ROOT / "seeds" / "site") as site:
        yield site


@pytest.fixture
def sources_file(seeds_site: Site, tmp_path: Path) -> Path:
    """seeds/sources.demo.yaml (the demo's template) pointed at the running seeds site."""
    text = (ROOT / "seeds" / "sources.demo.yaml").read_text(encoding="utf-8")
    path = tmp_path / "sources.yaml"
    path.write_text(text.replace("{{BASE}}", seeds_site.base), encoding="utf-8")
    return path


def _objects(client: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def _articles(objects: dict[str, bytes], interval: Interval) -> dict[str, Any]:
    prefix = f"lake/articles/dt={interval.dt}/{interval.id}-"
    return {k: pq.read_table(io.BytesIO(v)) for k, v in objects.items() if k.startswith(prefix)}


def test_dags_test_publishes_the_seeds_site_to_s3_through_the_news_lake_connection(
    airflow_env: dict[str, str],
    airflow_local: Any,
    s3_server: Any,
    sources_file: Path,
    tmp_path: Path,
) -> None:
    bucket = s3_server.new_bucket("e2e")
    conn = {
        "conn_type": "aws",
        "login": CREDENTIALS["aws_access_key_id"],
        "password": CREDENTIALS["aws_secret_access_key"],
        "extra": {"endpoint_url": s3_server.endpoint, "region_name": REGION},
    }
    env = airflow_local.subprocess_env(
        airflow_env,
        {
            "NEWSETL_SOURCES": str(sources_file),
            "NEWSETL_LAKE": f"s3://{bucket}/lake",
            "AIRFLOW_CONN_NEWS_LAKE": json.dumps(conn),
        },
    )
    # without the connection's endpoint the lake is unreachable: the session's default endpoint
    # is a closed loopback port
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
    when = datetime.now(UTC).replace(microsecond=0)
    interval = Interval.last_complete_hour(when)  # the urls source is undated: this hour takes it

    first = airflow_local.dags_test(env, when, log=tmp_path / "first.log", timeout=300)
    assert first.ok, first.tail()
    assert len(first.tasks) == 13  # plan, 3 discover, split, 3 fetch, 3 process, publish, validate

    client = s3_server.client()
    objects = _objects(client, bucket, "lake/")
    assert f"lake/_runs/{interval.id}.json" in objects, sorted(objects)
    manifest = json.loads(objects[f"lake/_runs/{interval.id}.json"])
    assert manifest["articles"] == len(TITLES) == 7
    assert {m["mode"] for m in manifest["extra"]["sources"].values()} == {"fetch"}
    assert f"lake/fetch_log/dt={interval.dt}/{interval.id}.parquet" in objects
    for sid in SOURCE_IDS:
        assert f"lake/raw/dt={interval.dt}/source={sid}/{interval.id}.warc.gz" in objects
    assert not [k for k in objects if k.startswith("lake/_staging/")]

    tables = _articles(objects, interval)
    assert tables and sorted(f"lake/{s['key']}" for s in manifest["shards"]) == sorted(tables)
    for key, data in objects.items():
        if key in tables:
            schema = pq.read_schema(io.BytesIO(data))
            assert schema.equals(article_schema(), check_metadata=True), key
    rows = [r for t in tables.values() for r in t.to_pylist()]
    assert {r["title"] for r in rows} == TITLES
    for r in rows:
        texts = [r["text"] or "", r["description"] or "", *(r["captions"] or [])]
        for phrase in BOILERPLATE:
            assert not any(phrase in t for t in texts), (r["url"], phrase)
        assert r["url"].startswith("http://127.0.0.1:")
    ids = [r["article_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 7

    # the same interval again: the raw archive is replayed, the interval rewritten, not added to
    second = airflow_local.dags_test(env, when, log=tmp_path / "second.log", timeout=300)
    assert second.ok, second.tail()
    again = _objects(client, bucket, "lake/")
    manifest2 = json.loads(again[f"lake/_runs/{interval.id}.json"])
    assert {m["mode"] for m in manifest2["extra"]["sources"].values()} == {"replay"}
    tables2 = _articles(again, interval)
    assert sorted(tables2) == sorted(tables)
    ids2 = [r["article_id"] for t in tables2.values() for r in t.to_pylist()]
    assert sorted(ids2) == sorted(ids)
    article_keys = sorted(k for k in again if k.startswith("lake/articles/"))
    assert article_keys == sorted(k for k in objects if k.startswith("lake/articles/"))


def test_a_past_hour_without_the_connection_uses_the_standard_aws_settings(
    airflow_env: dict[str, str],
    airflow_local: Any,
    s3_server: Any,
    sources_file: Path,
    tmp_path: Path,
) -> None:
    """No ``news_lake`` connection: the lake is reached through ``AWS_ENDPOINT_URL``. The hour
    is 2022-05-14 09:00-10:00: only the dated sources (feed, sitemap) list an article in it."""
    bucket = s3_server.new_bucket("e2e")
    env = airflow_local.subprocess_env(
        airflow_env,
        {
            "NEWSETL_SOURCES": str(sources_file),
            "NEWSETL_LAKE": f"s3://{bucket}/lake",
            "AWS_ENDPOINT_URL": s3_server.endpoint,
        },
    )
    env.pop("AIRFLOW_CONN_NEWS_LAKE", None)
    when = datetime(2022, 5, 14, 10, tzinfo=UTC)
    interval = Interval(datetime(2022, 5, 14, 9, tzinfo=UTC), when)

    result = airflow_local.dags_test(env, when, log=tmp_path / "past.log", timeout=300)
    assert result.ok, result.tail()
    objects = _objects(s3_server.client(), bucket, "lake/")
    manifest = json.loads(objects[f"lake/_runs/{interval.id}.json"])
    counts = {sid: m.get("count") for sid, m in manifest["extra"]["sources"].items()}
    assert counts["seeds-urls"] == 0  # undated: nothing for an old hour
    assert counts["seeds-rss"] == 1
    rows = [r for t in _articles(objects, interval).values() for r in t.to_pylist()]
    assert [r["title"] for r in rows] == [
        "Russian forces begin withdrawing from Kharkiv as Ukraine 'wins battle'"
    ]
    assert rows[0]["dt"] == "2022-05-14"


def test_demo_runs_twice_without_duplicates(airflow_env: dict[str, str], tmp_path: Path) -> None:
    """``make run`` (scripts/demo.py) in the session's Airflow home, into a temp lake, twice."""
    lake = tmp_path / "lake"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    args = [sys.executable, str(ROOT / "scripts" / "demo.py"), "--lake", str(lake)]
    # one port for both runs: article URLs (and ids) include it, and when the hour turns between
    # the runs, the second one must find the first one's articles in the seen index
    args += ["--home", airflow_env["AIRFLOW_HOME"], "--port", str(free_port())]
    outputs = []
    for _ in range(2):
        proc = subprocess.run(
            args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        outputs.append(proc.stdout)
    for out in outputs:
        assert "DAG run    success" in out
        assert "Lake total 7 articles, 7 distinct ids" in out
        assert "newsetl query --lake" in out and "title\tpublished_at\tword_count" in out
        for title in TITLES:
            assert title in out
    assert "ready (already migrated)" in outputs[0]  # the session's home is migrated already
    assert list((lake / "_runs").glob("*.json"))


def test_demo_exits_non_zero_when_the_dag_run_fails(
    airflow_env: dict[str, str], tmp_path: Path
) -> None:
    """A bad setting fails ``plan`` (a terminal error: no retries): the demo says why, exits 1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["NEWSETL_WORKERS"] = "many"
    args = [sys.executable, str(ROOT / "scripts" / "demo.py"), "--lake", str(tmp_path / "lake")]
    args += ["--home", airflow_env["AIRFLOW_HOME"], "--port", "0"]
    proc = subprocess.run(
        args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "error: the DAG run ended failed" in proc.stdout
    assert "NEWSETL_WORKERS: must be a whole number, got 'many'" in proc.stdout
    assert not (tmp_path / "lake" / "_runs").exists()
