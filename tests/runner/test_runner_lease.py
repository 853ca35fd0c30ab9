"""The runner under leases: two runs of one interval, a crashed attempt's staging, old staging,
and the validators two runs update at once. Real seeds site on 127.0.0.1; the lake is a local
folder or the S3 server (moto, its own process)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from etl.config import Settings
from etl.errors import LeaseError
from etl.lake.base import Lake
from etl.lake.layout import interval_lease_key
from etl.lake.lease_object import Lease
from etl.lake.manifest import read_manifest
from etl.lake.settings import LakeSettings, LeaseSettings
from etl.lake.tables import read_articles, read_table, write_table
from etl.records import Interval
from etl.runner.discover import discover_step
from etl.runner.interval import run_interval
from etl.runner.run import Run
from etl.schema import fetch_log_schema
from tests.support.s3_server import CREDENTIALS, REGION
from tests.support.sites import Response, Site, static_site

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds" / "site"
UA = "newsetl-test/0.1 (+https://example.org/newsetl-tests)"
HOUR9 = Interval(datetime(2022, 5, 14, 9, tzinfo=UTC), datetime(2022, 5, 14, 10, tzinfo=UTC))
DAG_HOLDER = "airflow:news_ingest/scheduled__2022-05-14T09:00:00+00:00#0"


@pytest.fixture
def seeds() -> Iterator[Site]:
    with static_site(SEEDS) as s:
        yield s


@pytest.fixture(params=["local", "s3"])
def lake_settings(request: pytest.FixtureRequest, tmp_path: Path) -> LakeSettings:
    if request.param == "local":
        return LakeSettings(uri=str(tmp_path / "lake"))
    server = request.getfixturevalue("s3_server")
    return LakeSettings(
        uri=f"s3://{server.new_bucket()}/news",
        endpoint_url=server.endpoint,
        region=REGION,
        access_key_id=CREDENTIALS["aws_access_key_id"],
        secret_access_key=CREDENTIALS["aws_secret_access_key"],
    )


def open_run(
    tmp_path: Path, site: Any, ls: LakeSettings, *, feed_only: bool = False, **lease: Any
) -> Run:
    tmp_path.mkdir(parents=True, exist_ok=True)
    sources = tmp_path / "sources.yaml"
    data = {
        "allow_private_addresses": True,
        "user_agent": UA,
        "fetch": {"backoff_base_s": 0.01, "backoff_max_s": 0.05},
        "sources": [
            {"id": "seeds-sitemap", "kind": "sitemap", "url": f"{site.base}/sitemap.xml"},
            {"id": "seeds-feed", "kind": "rss", "url": f"{site.base}/feed.xml"},
        ][1 if feed_only else 0 :],
    }
    sources.write_text(yaml.safe_dump(data), encoding="utf-8")
    settings = Settings(
        lake=ls.uri, sources=sources, lake_settings=ls, lease=LeaseSettings(poll_s=0.1, **lease)
    )
    return Run.open(settings, HOUR9)


class TimedLake:
    """A lake that notes when each non-lease object was written or deleted (reads pass)."""

    def __init__(self, inner: Lake) -> None:
        self.inner = inner
        self.writes: list[tuple[float, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _note(self, key: str) -> None:
        if not key.startswith("_leases/"):
            self.writes.append((time.monotonic(), key))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._note(key)
        self.inner.put_bytes(key, data)

    def put_file(self, key: str, path: Any) -> None:
        self._note(key)
        self.inner.put_file(key, path)

    def delete(self, keys: Any) -> None:
        keys = list(keys)
        for k in keys:
            self._note(k)
        self.inner.delete(keys)


def test_run_beside_a_dag_run_of_the_interval_is_refused_naming_it(
    tmp_path: Path, seeds: Site, lake_settings: LakeSettings
) -> None:
    run = open_run(tmp_path, seeds, lake_settings, wait_s=0.5)
    dag = Lease(run.lake, interval_lease_key(HOUR9.id), holder=DAG_HOLDER, ttl_s=600).acquire()
    run.lake.put_bytes(f"_staging/{HOUR9.id}/dag-attempt/candidates/seeds-feed.jsonl", b"{}\n")
    before = {k: run.lake.get_bytes(k) for k in run.lake.list()}
    with pytest.raises(LeaseError) as caught:
        run_interval(run, holder="newsetl-run@test")
    err = caught.value
    assert err.transient and err.holder == DAG_HOLDER
    assert DAG_HOLDER in str(err) and f"_leases/interval/{HOUR9.id}.json" in str(err)
    # nothing written, nothing of the DAG run's work in progress deleted
    assert {k: run.lake.get_bytes(k) for k in run.lake.list()} == before
    assert dag.release()
    out = run_interval(run, holder="newsetl-run@test")
    assert out["articles"] > 0 and run.lake.list("_leases/") == []


def test_two_runs_of_one_interval_at_once_do_not_mix(
    tmp_path: Path, seeds: Site, lake_settings: LakeSettings
) -> None:
    solo = run_interval(open_run(tmp_path / "solo", seeds, LakeSettings(str(tmp_path / "solo/l"))))
    runs = [
        replace(r, lake=TimedLake(r.lake))
        for r in (open_run(tmp_path, seeds, lake_settings, wait_s=300) for _ in range(2))
    ]
    results: dict[int, Any] = {}

    def go(i: int) -> None:
        try:
            results[i] = run_interval(runs[i], holder=f"run-{i}")
        except Exception as exc:  # the test looks at it
            results[i] = exc

    first = threading.Thread(target=go, args=(0,))
    first.start()
    while not runs[1].lake.exists(interval_lease_key(HOUR9.id)) and first.is_alive():
        time.sleep(0.01)
    second = threading.Thread(target=go, args=(1,))
    second.start()
    first.join()
    second.join()
    assert all(isinstance(r, dict) for r in results.values()), results
    w0, w1 = (r.lake.writes for r in runs)  # type: ignore[attr-defined]
    assert w0 and w1
    assert max(t for t, _ in w0) < min(t for t, _ in w1)  # the second waited for the first
    lake = runs[0].lake
    ids = Counter(read_articles(lake, HOUR9.dt).column("article_id").to_pylist())
    assert max(ids.values()) == 1 and sum(ids.values()) == solo["articles"]
    assert results[1]["articles"] == solo["articles"]
    assert lake.list("_staging/") == [] and lake.list("_leases/") == []


def test_next_run_drops_a_crashed_attempts_staging(
    tmp_path: Path, seeds: Site, lake_settings: LakeSettings
) -> None:
    """A crashed run left staged fetch-log rows and articles: they never reach the lake."""
    run = open_run(tmp_path, seeds, lake_settings, wait_s=30)
    crashed = Lease(run.lake, interval_lease_key(HOUR9.id), holder="crashed", ttl_s=0.2).acquire()
    ghost = pa.Table.from_pylist(
        [{"url": "https://crashed.example/ghost", "attempts": 1, "dt": HOUR9.dt}],
        schema=fetch_log_schema(),
    )
    write_table(run.lake, f"_staging/{HOUR9.id}/fetch_log/ghost-discover.parquet", ghost)
    write_table(run.lake, f"_staging/{HOUR9.id}/crashed-attempt/fetch_log/ghost.parquet", ghost)
    assert crashed.info is not None
    run_interval(run)
    manifest = read_manifest(run.lake, HOUR9)
    assert manifest is not None and manifest["fetch_log"] is not None
    urls = read_table(run.lake, manifest["fetch_log"]["key"]).column("url").to_pylist()
    assert urls and "https://crashed.example/ghost" not in urls
    assert run.lake.list("_staging/") == [] and run.lake.list("_leases/") == []


def test_publish_removes_staging_older_than_a_day(tmp_path: Path, seeds: Site) -> None:
    run = open_run(tmp_path, seeds, LakeSettings(uri=str(tmp_path / "lake")))
    old, young = "20220101T0000Z-20220101T0100Z", "20220102T0000Z-20220102T0100Z"
    run.lake.put_bytes(f"_staging/{old}/a/candidates/x.jsonl", b"{}\n")
    run.lake.put_bytes(f"_staging/{young}/a/candidates/x.jsonl", b"{}\n")
    two_days_ago = time.time() - 2 * 86400
    os.utime(run.lake.uri_for(f"_staging/{old}/a/candidates/x.jsonl"), (two_days_ago,) * 2)
    run_interval(run)
    assert run.lake.list("_staging/") == [f"_staging/{young}/a/candidates/x.jsonl"]


def test_validators_written_by_a_concurrent_run_are_kept(
    tmp_path: Path, site: Site, lake_settings: LakeSettings
) -> None:
    """Another interval's discover of the same source stores its validators while this one
    runs (between this run's read and its write): both runs' entries survive."""
    feed = (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>"
        f"<link>{site.base}/</link><description>d</description></channel></rss>"
    )
    site.routes["/feed.xml"] = Response(
        200, feed.encode(), content_type="application/rss+xml", headers={"ETag": '"feed-v7"'}
    )
    run = open_run(tmp_path, site, lake_settings, feed_only=True)
    key = "_state/validators/seeds-feed.json"
    other = {"https://other.example/feed.xml": {"etag": '"v1"', "last_modified": None}}

    class Concurrent(TimedLake):
        def put_file(self, k: str, path: Any) -> None:
            if k.endswith("discover/seeds-feed.warc.gz") and not self.inner.exists(key):
                self.inner.put_bytes(key, json.dumps(other).encode())  # the other run's write
            super().put_file(k, path)

    discover_step(replace(run, lake=Concurrent(run.lake)), "seeds-feed")
    stored = json.loads(run.lake.get_bytes(key))
    assert stored["https://other.example/feed.xml"] == other["https://other.example/feed.xml"]
    assert stored[f"{site.base}/feed.xml"]["etag"] == '"feed-v7"'  # and this run's own


def test_cli_run_beside_a_held_lease_fails_naming_the_holder(
    tmp_path: Path, seeds: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from etl.cli import app

    run = open_run(tmp_path, seeds, LakeSettings(uri=str(tmp_path / "lake")))
    dag = Lease(run.lake, interval_lease_key(HOUR9.id), holder=DAG_HOLDER, ttl_s=600).acquire()
    monkeypatch.setenv("NEWSETL_LEASE_WAIT_S", "0")
    args = ["run", "--sources", str(run.settings.sources), "--lake", run.settings.lake]
    args += ["--start", "2022-05-14T09:00:00Z", "--end", "2022-05-14T10:00:00Z"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    text = " ".join((result.stderr or result.output).split())
    assert DAG_HOLDER in text and "transient" in text and "_leases/interval/" in text
    assert run.lake.list() == [interval_lease_key(HOUR9.id)]
    dag.release()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert run.lake.list("_leases/") == []


def test_two_newsetl_run_processes_at_once(tmp_path: Path, seeds: Site) -> None:
    """Run it twice at once, as a user would: the second waits, both succeed, one copy each."""
    import subprocess

    run = open_run(tmp_path, seeds, LakeSettings(uri=str(tmp_path / "lake")))
    args = [str(ROOT / ".venv" / "bin" / "newsetl"), "run", "--sources", str(run.settings.sources)]
    args += ["--lake", run.settings.lake, "--start", "2022-05-14T09:00:00Z"]
    args += ["--end", "2022-05-14T10:00:00Z"]
    env = {**os.environ, "NEWSETL_LEASE_WAIT_S": "600"}
    procs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ids = Counter(read_articles(run.lake, HOUR9.dt).column("article_id").to_pylist())
    assert ids and max(ids.values()) == 1
    assert run.lake.list("_staging/") == [] and run.lake.list("_leases/") == []
