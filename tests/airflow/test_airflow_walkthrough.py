"""The README's Airflow walkthrough, run as written through its make targets on a fresh Airflow
home: ``make airflow``, ``make backfill FROM=2022-05-14T09:00 TO=2022-05-14T11:00``, the same
with ``REPROCESS=completed``, ``make airflow-down``.

The ports are free ones rather than the README's fixed 8080/8765 (other suites may run beside
this one), passed as ``PORT=``/``SITE_PORT=``; the home and the lake are temp folders
(``AF_HOME=``, ``LAKE=``). One Airflow start for the module. No upper bound on time: the
timeout only keeps a hung scheduler from hanging CI.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from tests.support.s3_server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
KHARKIV = "Russian forces begin withdrawing from Kharkiv as Ukraine 'wins battle'"
HOURS: tuple[str, ...] = ("20220514T0900Z-20220514T1000Z", "20220514T1000Z-20220514T1100Z")
HOURS += ("20220514T1100Z-20220514T1200Z",)


class Walkthrough:
    def __init__(self, tmp: Path) -> None:
        self.home, self.lake = tmp / "airflow_home", tmp / "lake"
        self.vars = [
            f"AF_HOME={self.home}",
            f"LAKE={self.lake}",
            f"PORT={free_port()}",
            f"SITE_PORT={free_port()}",
            f"CLUSTER_HOME={tmp / 'cluster_home'}",  # never a developer's running make cluster
        ]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NEWSETL"))}

    def make(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "--no-print-directory", *args, *self.vars],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )

    def ok(self, *args: str) -> str:
        proc = self.make(*args)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"make {' '.join(args)} exited {proc.returncode}:\n{out}"
        return out

    def stack(self) -> Any:
        from airflow_stack import AirflowStack

        stack = AirflowStack.attach(self.home)
        assert stack is not None
        return stack

    def articles(self, dt: str) -> list[dict[str, Any]]:
        files = sorted((self.lake / "articles" / f"dt={dt}").glob("*.parquet"))
        columns = ["article_id", "title", "dt"]
        return [r for f in files for r in pq.read_table(f, columns=columns).to_pylist()]


@pytest.fixture(scope="module")
def walk(airflow_local: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walkthrough]:
    w = Walkthrough(tmp_path_factory.mktemp("walkthrough"))
    try:
        yield w
    finally:
        from airflow_stack import AirflowStack

        stack = AirflowStack.attach(w.home)  # a failed test must not leave the stack running
        if stack is not None:
            stack.stop()


def test_make_airflow_starts_the_scheduler_the_ui_and_the_site(walk: Walkthrough) -> None:
    out = walk.ok("airflow")
    stack = walk.stack()
    assert all(stack.running().values()), stack.running()
    assert {p["name"] for p in stack.pids} == {
        "postgres",
        "site",
        "api-server",
        "scheduler",
        "dag-processor",
    }
    # the printed login works against the API
    user, password = stack.ui_login()
    assert f"UI         {stack.base}   login {user} / {password}" in out
    token = httpx.post(
        f"{stack.base}/auth/token",
        json={"username": user, "password": password},
        timeout=30,
    )
    assert token.status_code in (200, 201), token.text
    assert f"Logs       {stack.logs}/" in out
    # the site on its fixed port, the sources file for that port, the pool, the DAG unpaused
    site = stack.meta["site"]
    assert httpx.get(f"{site}/robots.txt", timeout=30).status_code == 200
    sources = Path(stack.extra_env["NEWSETL_SOURCES"]).read_text(encoding="utf-8")
    assert f"{site}/" in sources and "{{BASE}}" not in sources
    assert stack.query("SELECT slots FROM slot_pool WHERE pool = 'news_http'") == [(4,)]
    assert stack.query("SELECT is_paused FROM dag WHERE dag_id = 'news_ingest'") == [(False,)]
    # a second `make airflow` finds it running and starts nothing
    again = walk.ok("airflow")
    assert "already running" in again
    assert walk.stack().pids == stack.pids


def test_make_backfill_puts_the_kharkiv_article_in_its_day(walk: Walkthrough) -> None:
    out = walk.ok("backfill", "FROM=2022-05-14T09:00", "TO=2022-05-14T11:00")
    lines = [ln for ln in out.splitlines() if "success  backfill__" in ln]
    assert len(lines) == 3, out
    for interval in HOURS:
        assert f"  {interval}  " in out
    assert "seeds-rss fetch" in out and KHARKIV in out
    rows = walk.articles("2022-05-14")
    assert [r["title"] for r in rows] == [KHARKIV]
    manifest = json.loads((walk.lake / "_runs" / f"{HOURS[0]}.json").read_text())
    assert manifest["articles"] == 1


def test_make_backfill_with_reprocessing_gives_the_same_ids(walk: Walkthrough) -> None:
    before = sorted(r["article_id"] for r in walk.articles("2022-05-14"))
    out = walk.ok("backfill", "FROM=2022-05-14T09:00", "TO=2022-05-14T11:00", "REPROCESS=completed")
    assert len([ln for ln in out.splitlines() if "success  backfill__" in ln]) == 3, out
    assert "seeds-rss replay" in out and "fetch," not in out
    after = sorted(r["article_id"] for r in walk.articles("2022-05-14"))
    assert after == before and len(after) == 1


def test_make_backfill_reports_a_failed_interval(walk: Walkthrough) -> None:
    """A broken sources file fails ``plan`` (terminal: no retries): the target names the task
    and the first line of its error, and exits 1."""
    sources = Path(walk.stack().extra_env["NEWSETL_SOURCES"])
    good = sources.read_text(encoding="utf-8")
    sources.write_text("sources:\n  - id: broken\n    kind: carrier-pigeon\n", encoding="utf-8")
    try:
        proc = walk.make("backfill", "FROM=2022-05-15T09:00", "TO=2022-05-15T09:00")
    finally:
        sources.write_text(good, encoding="utf-8")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "backfill] Error 1" in proc.stderr, out
    assert "failed   backfill__" in out
    assert "error: 1 of 1 interval(s) failed:" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("  2022-05-15 09:00  plan: "))
    assert "carrier-pigeon" in line or "kind" in line, line


def test_make_airflow_down_leaves_no_process(walk: Walkthrough) -> None:
    stack = walk.stack()
    before = stack.processes()
    workers = [p for p in before if "LocalExecutor" in Path(f"/proc/{p}/cmdline").read_text()]
    assert len(before) > len(stack.pids) and workers  # executor workers, PostgreSQL backends
    out = walk.ok("airflow-down")
    assert "no process of it is left" in out
    from procs import alive

    assert not [p for p in before if alive(p)]
    assert walk.stack().processes() == []
    assert "Nothing to stop" in walk.ok("airflow-down")
