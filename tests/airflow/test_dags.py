"""The DAGs as Airflow sees them: parsing, documentation, retries, the hourly timetable, pools,
assets, XCom, and what ``plan`` does for a manual run without a logical date.

Fast: one subprocess (tests/support/dag_probe.py, ~5 s) parses ``dags/`` with Airflow's
``DagBag`` and reports facts as JSON; the tests below check them. Airflow is never imported by
the test session itself (it would reconfigure logging for every other test). The probe runs with a
sources path that does not exist and ``NEWSETL_LAKE=s3://nonexistent/x``: the DAG must import
all the same, since it may read neither at parse time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
PROBE = ROOT / "tests" / "support" / "dag_probe.py"
SOURCE_IDS = ["seeds-urls", "seeds-rss", "seeds-sitemap"]  # seeds/sources.demo.yaml, in order

# A DAG file that does what news_ingest must not: reads a file, opens a socket (to a closed
# loopback port) and imports etl at parse time. The probe must see all three.
CONTROL_DAG = """
import socket
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

import etl.config

SETTINGS = Path(__file__).with_name("settings.yaml").read_text()
with socket.socket() as s:
    try:
        s.connect(("127.0.0.1", 9))
    except OSError:
        pass


@dag(dag_id="io_at_parse", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"))
def io_at_parse():
    @task
    def noop():
        return None

    noop()


io_at_parse()
"""


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def probe(airflow_local: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("dag_probe")
    control = tmp / "control_dags"
    control.mkdir()
    (control / "io_at_parse.py").write_text(CONTROL_DAG, encoding="utf-8")
    (control / "settings.yaml").write_text("x: 1\n", encoding="utf-8")
    template = (ROOT / "seeds" / "sources.demo.yaml").read_text(encoding="utf-8")
    sources = tmp / "sources.yaml"  # for the plan check only (passed as the `sources` param)
    sources.write_text(template.replace("{{BASE}}", "http://127.0.0.1:9"), encoding="utf-8")
    variables = airflow_local.airflow_vars(tmp / "home", jwt_secret=airflow_local.new_jwt_secret())
    missing = tmp / "missing" / "sources.yaml"
    extra = {
        "NEWSETL_SOURCES": str(missing),
        "NEWSETL_LAKE": "s3://nonexistent/x",
        "NEWSETL_TASK_TIMEOUT_MIN": "45",  # the configurable execution_timeout of every task
        "NEWSETL_RETRY_DELAY_S": "7",  # and the first retry's delay
    }
    env = airflow_local.subprocess_env(variables, extra)
    args = [sys.executable, str(PROBE), str(DAGS), str(control), str(sources), str(tmp / "lake")]
    proc = subprocess.run(
        args, env=env, cwd=tmp, capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def test_dags_folder_imports_without_errors(probe: dict[str, Any]) -> None:
    parse = probe["parse"]
    assert parse["import_errors"] == {}
    assert parse["dags"] == ["news_compact", "news_ingest"]
    assert str(DAGS / "news_ingest.py") in parse["code_opened"]
    assert str(DAGS / "news_compact.py") in parse["code_opened"]  # the audit hook saw the parse


def test_no_io_and_no_heavy_imports_at_parse_time(probe: dict[str, Any]) -> None:
    # NEWSETL_SOURCES names a missing file and NEWSETL_LAKE a bucket that does not exist: the
    # DAG imported (previous test) and touched neither, nor the network, nor etl / boto3 /
    # pyarrow / httpx (each task imports what it needs when it runs).
    assert probe["parse"]["io"] == []
    assert probe["parse"]["imported"] == []


def test_the_parse_checks_catch_a_dag_that_does_io(probe: dict[str, Any]) -> None:
    control = probe["control"]
    assert control["import_errors"] == {} and control["dags"] == ["io_at_parse"]
    events = {event for event, _ in control["io"]}
    opened = [arg for event, arg in control["io"] if event == "open"]
    assert "socket.connect" in events
    assert any(arg.endswith("settings.yaml") for arg in opened)
    assert "etl.config" in control["imported"]


def test_every_dag_has_tags_docs_and_retries(probe: dict[str, Any]) -> None:
    assert probe["dags"]
    for dag_id, dag in probe["dags"].items():
        assert dag["tags"], dag_id
        assert (dag["doc_md"] or "").strip(), dag_id
        for task_id, task in dag["tasks"].items():
            assert task["retries"] >= 2, (dag_id, task_id, task["retries"])
            # a hung task (a stalled server, a wedged lake) is killed and retried, never stuck
            assert (task["execution_timeout_s"] or 0) > 0, (dag_id, task_id)


def test_news_ingest_task_timeout_is_configurable(probe: dict[str, Any]) -> None:
    tasks = probe["dags"]["news_ingest"]["tasks"]
    assert {t["execution_timeout_s"] for t in tasks.values()} == {45 * 60.0}
    assert {t["retry_delay_s"] for t in tasks.values()} == {7.0}


def test_news_ingest_runs_have_one_hour_data_intervals(probe: dict[str, Any]) -> None:
    tt = probe["timetable"]
    assert tt["class"].endswith("CronDataIntervalTimetable")
    # a manual run / `airflow dags test news_ingest T`: the last whole hour before T
    assert tt["manual"] == {
        "2022-05-14T10:00:00+00:00": ["2022-05-14T09:00:00+00:00", "2022-05-14T10:00:00+00:00"],
        "2022-05-14T10:30:00+00:00": ["2022-05-14T09:00:00+00:00", "2022-05-14T10:00:00+00:00"],
        "2024-02-29T23:59:59Z": ["2024-02-29T22:00:00+00:00", "2024-02-29T23:00:00+00:00"],
    }
    # scheduled runs: back to back, one hour each, each run created when its hour is over
    runs = tt["scheduled"]
    assert runs[0]["interval"] == ["2000-01-01T00:00:00+00:00", "2000-01-01T01:00:00+00:00"]
    for run, following in pairwise(runs):
        assert run["interval"][1] == following["interval"][0]
    for run in runs:
        start, end = (_t(x) for x in run["interval"])
        assert end - start == timedelta(hours=1)
        assert _t(run["run_after"]) == end
    assert tt["after_2022_05_14_09"] == ["2022-05-14T10:00:00+00:00", "2022-05-14T11:00:00+00:00"]


def test_news_ingest_does_not_catch_up(probe: dict[str, Any]) -> None:
    assert probe["dags"]["news_ingest"]["catchup"] is False
    # the first scheduled run starts near now, not at start_date (2000-01-01)
    start, end = (_t(x) for x in probe["timetable"]["first_without_catchup"])
    now = _t(probe["timetable"]["now"])
    assert end - start == timedelta(hours=1)
    assert now - timedelta(hours=2) <= start <= now


def test_fetch_is_mapped_per_source_in_the_news_http_pool(probe: dict[str, Any]) -> None:
    tasks = probe["dags"]["news_ingest"]["tasks"]
    assert tasks["fetch"]["pool"] == "news_http"
    assert tasks["fetch"]["mapped"] and tasks["discover"]["mapped"] and tasks["process"]["mapped"]
    others = {t for t, v in tasks.items() if t != "fetch" and v["pool"] == "news_http"}
    assert not others  # only fetches take a slot of the HTTP pool


def test_validate_emits_the_news_articles_asset(probe: dict[str, Any]) -> None:
    tasks = probe["dags"]["news_ingest"]["tasks"]
    assert tasks["validate"]["outlets"] == [{"type": "Asset", "name": "news_articles"}]
    assert all(not v["outlets"] for t, v in tasks.items() if t != "validate")


def test_each_task_pushes_one_small_xcom(probe: dict[str, Any]) -> None:
    # a TaskFlow task annotated `-> dict[...]` would otherwise push every key once more as its
    # own XCom (multiple_outputs inferred from the annotation)
    tasks = probe["dags"]["news_ingest"]["tasks"]
    assert {t: v["multiple_outputs"] for t, v in tasks.items()} == dict.fromkeys(tasks, False)


def test_plan_without_a_logical_date_takes_the_last_hour_before_the_run(
    probe: dict[str, Any],
) -> None:
    plan = probe["plan"]
    assert plan["run_after"] == "2026-11-25T14:37:12+00:00"
    expected = ("2026-11-25T13:00:00+00:00", "2026-11-25T14:00:00+00:00")
    for case in ("none", "zero"):  # no data interval; a zero-length one
        items = plan["items"][case]
        assert [i["source"] for i in items] == SOURCE_IDS
        assert {(i["start"], i["end"]) for i in items} == {expected}, case
    hour = plan["items"]["hour"]
    assert {(i["start"], i["end"]) for i in hour} == {
        ("2022-05-14T09:00:00+00:00", "2022-05-14T10:00:00+00:00")
    }
    # the run's params win over NEWSETL_SOURCES / NEWSETL_LAKE
    assert all(i["lake"].endswith("lake") and i["sources"].endswith("sources.yaml") for i in hour)
    assert all(not i["lake"].startswith("s3://") for i in hour)


def test_news_compact_compacts_the_finished_day(probe: dict[str, Any]) -> None:
    dag = probe["dags"]["news_compact"]
    assert dag["catchup"] is False and list(dag["tasks"]) == ["compact"]
    assert dag["tasks"]["compact"]["outlets"] == [
        {"type": "Asset", "name": "news_articles_compacted"}
    ]
    # the run for [2022-05-14 03:00, 2022-05-15 03:00) compacts 2022-05-14 (an empty lake here)
    scheduled = probe["compact"]["scheduled"]
    assert scheduled["dt"] == "2022-05-14" and scheduled["skipped"] is True
    assert probe["compact"]["by_hand"]["dt"] == "2022-05-01"
