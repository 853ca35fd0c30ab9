"""The distributed Airflow of ``make cluster``, run for real: CeleryExecutor on PostgreSQL, a
Valkey broker, two Celery workers and the moto S3 server as the lake (scripts/cluster.py).

One cluster starts for the module. ``make backfill`` (attached to the running cluster through
its state file, not starting ``make airflow``'s stack) runs ``airflow backfill create`` over six
hours of a local news site (tests/support/backfill_site.py's stories on 2024-03-05
10:xx-12:xx, and a follow-up of each three hours later: two articles an hour); the task
instances' ``hostname`` (each worker names itself, scripts/worker_name.py) must show both
workers, and the lake must equal the one that one ``newsetl run`` per hour writes into a fresh
lake: the same ``article_id`` set, the same counts.
Then one hour is reprocessed and the worker running one of its tasks is SIGKILLed with its whole
session: the task is retried on the other worker and the lake is still exact.

Airflow runs only in subprocesses. No upper bound on time; the module's timeout only keeps a
hung scheduler from hanging CI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from etl.lake.manifest import read_manifest
from etl.lake.opener import open_lake
from etl.lake.query import run_query
from etl.lake.settings import LakeSettings, lake_settings_from_airflow_conn
from etl.records import Interval
from tests.support.backfill_site import STORIES, Story, at, build_site, write_sources
from tests.support.sites import Site, static_site

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

DAG_ID = "news_ingest"
HOURS = tuple(range(10, 16))  # six hours, 10:00-16:00 UTC


def follow_up(story: Story) -> Story:
    """The same story three hours later, reworded (paragraphs reversed, a new lead)."""
    return dataclasses.replace(
        story,
        slug=f"{story.slug}-update",
        published=story.published + timedelta(hours=3),
        title=f"Update: {story.title}",
        paragraphs=(
            f"This report on {story.title.lower()} was updated with new details.",
            *reversed(story.paragraphs),
        ),
    )


SIX_HOURS = (*STORIES, *(follow_up(s) for s in STORIES))


def interval(hour: int) -> Interval:
    return Interval(at(hour, 0), at(hour, 0) + timedelta(hours=1))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("site")
    build_site(root, SIX_HOURS)
    with static_site(root) as s:
        yield s


@pytest.fixture(scope="module")
def sources_file(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sources(tmp_path_factory.mktemp("config") / "sources.yaml", site.base)


@pytest.fixture(scope="module")
def cluster(
    airflow_local: Any, tmp_path_factory: pytest.TempPathFactory, sources_file: Path
) -> Iterator[Any]:
    from cluster import LAKE, Cluster
    from pg_local import free_port

    extra = {
        "NEWSETL_SOURCES": str(sources_file),
        "NEWSETL_LAKE": LAKE,
        # only backfill runs: no scheduled run of the current hour sneaks in
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # a killed worker's running tasks are found within 30 s (default 5 min), and what
        # it had taken from the queue but not started is queued again after 3 (default 10)
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "180",
    }
    c = Cluster(tmp_path_factory.mktemp("cluster_home"), api_port=free_port(), extra_env=extra)
    try:
        c.start_cluster()
        yield c
    finally:
        left = c.stop()
    assert not left, f"processes left after stop: {left}"


@pytest.fixture(scope="module")
def backfill(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Any, ...]]:
    """``make backfill`` over the six hours, attached to the running cluster (its state file)
    rather than starting ``make airflow``'s stack in AF_HOME; its runs."""
    from airflow_local import ROOT
    from pg_local import free_port

    af_home = tmp_path_factory.mktemp("unused") / "airflow_home"
    cmd = ["make", "--no-print-directory", "backfill", f"FROM={at(HOURS[0], 0):%Y-%m-%dT%H:%M}"]
    cmd += [f"TO={at(HOURS[-1], 0):%Y-%m-%dT%H:%M}", f"AF_HOME={af_home}"]
    cmd += [f"CLUSTER_HOME={cluster.home}", f"PORT={free_port()}", f"SITE_PORT={free_port()}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NEWSETL"))}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    (backfill_id,) = cluster.query("SELECT max(id) FROM backfill")[0]
    runs: list[tuple[Any, ...]] = cluster.query(
        "SELECT run_id, state, data_interval_start FROM dag_run WHERE backfill_id = %s"
        " ORDER BY data_interval_start",
        backfill_id,
    )
    assert proc.returncode == 0, f"backfill failed: {runs}; logs in {cluster.logs}\n{out}"
    assert "the running make cluster stack" in out, out
    assert not (af_home / ".newsetl-stack.json").exists(), "make backfill started its own stack"
    assert out.count("success  backfill__") == len(HOURS), out
    return runs


def lake_figures(settings: LakeSettings | str) -> tuple[list[str], dict[int, int]]:
    """Every article_id in the lake (with repeats), and each hour's manifest article count."""
    _, rows = run_query(settings, "SELECT article_id FROM articles")
    lake = open_lake(settings)
    counts = {}
    for h in HOURS:
        manifest = read_manifest(lake, interval(h))
        assert manifest is not None, f"no manifest for {interval(h).id}"
        counts[h] = int(manifest["articles"])
    return [r[0] for r in rows], counts


@pytest.fixture(scope="module")
def reference(
    airflow_local: Any, sources_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[str], dict[int, int]]:
    """The figures of one ``newsetl run`` per hour into a fresh local lake."""
    return lake_figures(str(reference_lake(tmp_path_factory.mktemp("ref"), sources_file)))


def reference_lake(tmp: Path, sources: Path) -> Path:
    import airflow_local

    lake = tmp / "reference-lake"
    for h in HOURS:
        start = at(h, 0)
        cmd = [airflow_local.bin_path("newsetl"), "run", "--sources", str(sources)]
        cmd += ["--lake", str(lake), "--start", start.isoformat()]
        cmd += ["--end", (start + timedelta(hours=1)).isoformat()]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"newsetl run {start}: {proc.stdout[-2000:]}{proc.stderr}"
    return lake


def test_backfill_spreads_over_both_workers_and_equals_newsetl_run(
    cluster: Any,
    backfill: list[tuple[Any, ...]],
    reference: tuple[list[str], dict[int, int]],
) -> None:
    from cluster import SETTINGS

    assert [(r[1], r[2]) for r in backfill] == [("success", at(h, 0)) for h in HOURS]

    # Every task instance of the backfill ran on a Celery worker, and both workers ran some.
    hosts = Counter(
        host
        for (host,) in cluster.query(
            "SELECT ti.hostname FROM task_instance ti JOIN dag_run r"
            " ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id"
            " WHERE ti.dag_id = %s AND r.run_type = 'backfill' AND ti.state = 'success'",
            DAG_ID,
        )
    )
    workers = set(cluster.workers())
    assert len(workers) == SETTINGS["workers"] == 2
    assert set(hosts) == workers, f"task instances per worker: {dict(hosts)}"
    assert all(hosts[w] >= 2 for w in workers), dict(hosts)

    # The lake on the S3 server equals one `newsetl run` per hour into a fresh lake.
    assert_lake_equals(cluster, reference)


def s3_lake(cluster: Any) -> LakeSettings:
    """The cluster's lake, read through the news_lake connection its tasks use."""
    from cluster import lake_connection

    conn = lake_connection(cluster.s3)
    return lake_settings_from_airflow_conn(conn, cluster.extra_env["NEWSETL_LAKE"])


def assert_lake_equals(cluster: Any, reference: tuple[list[str], dict[int, int]]) -> None:
    ids, counts = lake_figures(s3_lake(cluster))
    ref_ids, ref_counts = reference
    assert len(ids) == len(set(ids)) == len(SIX_HOURS)  # every story once, no duplicate
    assert sorted(ids) == sorted(ref_ids)
    assert counts == ref_counts == dict.fromkeys(HOURS, 2)


def kill_session(leader: int) -> list[int]:
    """SIGKILL a worker and every process of its session or below it (a machine dying)."""
    from procs import descendants, session

    every = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    pids = {leader} | descendants([leader]) | {p for p in every if session(p) == leader}
    for pid in sorted(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return sorted(pids)


def test_a_worker_killed_mid_task_has_its_task_retried_on_the_other(
    cluster: Any,
    backfill: list[tuple[Any, ...]],
    reference: tuple[list[str], dict[int, int]],
) -> None:
    """Reprocess one hour (a replay of its raw archive); SIGKILL the worker running a task
    as soon as one runs: the task is retried on the other worker, and the lake stays exact."""
    (last,) = cluster.query("SELECT max(id) FROM backfill")[0]
    start = end = at(HOURS[0], 0)
    # Airflow allows one unfinished backfill per DAG, and a backfill is marked complete a
    # scheduler loop after its last run ended: wait for the fixture's one to be (the create
    # was refused with AlreadyRunningBackfill on a busy box)
    while cluster.query(
        "SELECT id FROM backfill WHERE dag_id = %s AND completed_at IS NULL", DAG_ID
    ):
        time.sleep(1)
    cluster.cli(
        "backfill", "create", "--dag-id", DAG_ID, "--from-date", start.isoformat(),
        "--to-date", end.isoformat(), "--reprocess-behavior", "completed",
    )  # fmt: skip
    (backfill_id,) = cluster.query("SELECT max(id) FROM backfill")[0]
    assert backfill_id > last
    running = (
        "SELECT ti.run_id, ti.task_id, ti.map_index, ti.hostname FROM task_instance ti"
        " JOIN dag_run r ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id"
        " WHERE r.backfill_id = %s AND ti.state = 'running' AND ti.hostname <> ''"
    )
    while not (rows := cluster.query(running, backfill_id)):
        time.sleep(0.2)
    victim = rows[0][3]
    (leader,) = [p["pid"] for p in cluster.pids if p["name"] == victim]
    kill_session(leader)
    killed = {r[:3] for r in cluster.query(running, backfill_id) if r[3] == victim}
    assert killed, "the task finished before its worker was killed"
    (survivor,) = set(cluster.workers()) - {victim}

    while True:  # the backfill's runs end (a killed worker is no error here)
        states = [r[0] for r in cluster.query(
            "SELECT state FROM dag_run WHERE backfill_id = %s", backfill_id
        )]  # fmt: skip
        if states and all(s in ("success", "failed") for s in states):
            break
        time.sleep(1)
    assert states == ["success"], f"logs in {cluster.logs}"
    for run_id, task_id, index in killed:
        ((state, tries, host),) = cluster.query(
            "SELECT state, try_number, hostname FROM task_instance WHERE dag_id = %s"
            " AND run_id = %s AND task_id = %s AND map_index = %s",
            DAG_ID, run_id, task_id, index,
        )  # fmt: skip
        assert (state, host) == ("success", survivor) and tries >= 2, (task_id, tries, host)
        before = cluster.query(
            "SELECT hostname FROM task_instance_history WHERE dag_id = %s AND run_id = %s"
            " AND task_id = %s AND map_index = %s AND try_number < %s",
            DAG_ID, run_id, task_id, index, tries,
        )  # fmt: skip
        assert (victim,) in before
    assert_lake_equals(cluster, reference)
