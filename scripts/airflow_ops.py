"""``make airflow``, ``make airflow-down``, ``make backfill``: the scheduler and the UI on
PostgreSQL (scripts/airflow_stack.py), with the demo site, in one command each.

    airflow_ops.py up [--home airflow_home] [--lake ./lake] [--port 8080] [--site-port 8765]
                      [--foreground]
    airflow_ops.py down [--home airflow_home]
    airflow_ops.py backfill --from 2022-05-14T09:00 --to 2022-05-14T11:00 [--reprocess completed]
                           [--stack auto|airflow|cluster] [--cluster-home cluster_home]

``up`` serves ``seeds/site`` on 127.0.0.1:<site-port> (its own process), writes
``<home>/sources.airflow.yaml`` for that port, starts the stack (PostgreSQL, api-server,
scheduler, dag-processor), makes the ``news_http`` pool (and the ``news_lake`` connection for
an S3 lake), unpauses ``news_ingest``, prints the UI's address and login and where the logs are,
and returns: the stack keeps running (``down`` stops it). With ``--foreground`` it stays and
Ctrl-C stops everything. ``backfill`` starts the stack when it is not running, creates the
backfill, prints a line per interval as each run ends, then the intervals' manifests and a
sample query; exit status 1 when any run failed (naming the task and its error). ``backfill``
runs on the ``make cluster`` stack (scripts/cluster.py: CeleryExecutor, its S3 lake) instead
when one is running in ``--cluster-home`` (its state file, every process alive): ``--stack
auto`` (the default) takes the cluster when it runs, else ``make airflow``'s stack (started if
need be); ``--stack cluster`` refuses to start anything, ``--stack airflow`` ignores the cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_local import DAG_ID, ROOT, bin_path
from airflow_stack import AirflowStack
from demo import DUMMY_AWS, SITE, TEMPLATE, lake_uri, say, shown
from pg_local import port_taken

if TYPE_CHECKING:
    from cluster import Cluster

HOME = ROOT / "airflow_home"
CLUSTER_HOME = ROOT / "cluster_home"
TERMINAL = ("success", "failed")


def stack_env(home: Path, lake: str, site_port: int) -> dict[str, str]:
    sources = home / "sources.airflow.yaml"
    base = f"http://127.0.0.1:{site_port}"
    home.mkdir(parents=True, exist_ok=True)
    sources.write_text(TEMPLATE.read_text(encoding="utf-8").replace("{{BASE}}", base), "utf-8")
    env = {"NEWSETL_SOURCES": str(sources), "NEWSETL_LAKE": lake}
    if not lake.lower().startswith("s3://") and not (
        os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")
    ):
        env.update(DUMMY_AWS)  # a local lake: nothing may go looking for AWS credentials
    return env


def lake_connection(stack: AirflowStack) -> str | None:
    """Create the ``news_lake`` connection from the standard AWS settings (an S3 lake)."""
    if stack.query("SELECT 1 FROM connection WHERE conn_id = 'news_lake'"):
        return None
    extra = {
        k: v
        for k, v in (
            (
                "endpoint_url",
                os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
            ),
            ("region_name", os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")),
        )
        if v
    }
    conn = {"conn_type": "aws", "extra": extra}
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        conn["login"] = os.environ["AWS_ACCESS_KEY_ID"]
        conn["password"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    stack.cli("connections", "add", "news_lake", "--conn-json", json.dumps(conn))
    return "news_lake"


def up(home: Path, lake: str, port: int, site_port: int, *, quiet: bool = False) -> AirflowStack:
    """The running stack of ``home``, started when it is not."""
    with AirflowStack(home).locked():
        old = AirflowStack.attach(home)
        if old is not None and old.pids and all(old.running().values()):
            if not quiet:
                say(f"Airflow is already running in {shown(str(home))}/")
                info(old)
            return old
        if old is not None and old.pids:  # partly dead: stop the rest, start anew
            old.stop()
        if port_taken(site_port):
            raise RuntimeError(f"port {site_port} on 127.0.0.1 is taken (set SITE_PORT=...)")
        pg_port = old.pg_port if old is not None and not port_taken(old.pg_port) else 0
        stack = AirflowStack(
            home,
            api_port=port,
            pg_port=pg_port,
            extra_env=stack_env(home, lake, site_port),
            meta={"site": f"http://127.0.0.1:{site_port}"},
        )
        say("Starting   PostgreSQL, the demo site, api-server, scheduler, dag-processor ...")
        t0 = time.monotonic()
        site = [bin_path("newsetl"), "serve", str(SITE), "--port", str(site_port)]
        stack.start(before={"site": site})
        made = lake_connection(stack) if lake.lower().startswith("s3://") else None
        if stack.query("SELECT 1 FROM dag WHERE dag_id = %s AND is_paused", DAG_ID):
            stack.cli("dags", "unpause", DAG_ID)
        extra = f"; connection {made} created" if made else ""
        say(f"Ready      in {time.monotonic() - t0:.0f} s, {DAG_ID} unpaused{extra}")
        info(stack)
        return stack


def info(stack: AirflowStack) -> None:
    login = stack.ui_login()
    env = stack.extra_env
    who = f"   login {login[0]} / {login[1]}" if login else ""
    say(f"UI         {stack.base}{who}")
    say(f"Site       seeds/site at {stack.meta.get('site')}")
    say(f"Sources    {shown(env['NEWSETL_SOURCES'])}")
    say(f"Lake       {shown(env['NEWSETL_LAKE'])}")
    say(f"Database   PostgreSQL on 127.0.0.1:{stack.pg_port}, data {shown(str(stack.pg.data))}/")
    say(f"Logs       {shown(str(stack.logs))}/  (<component>.log; task logs in dag_id={DAG_ID}/)")
    say("Stop with  make airflow-down")


def down(home: Path) -> int:
    with AirflowStack(home).locked():
        stack = AirflowStack.attach(home)
        if stack is None or not stack.pids:
            say(f"Nothing to stop: no Airflow started in {shown(str(home))}/")
            return 0
        names = ", ".join(f"{p['name']} {p['pid']}" for p in stack.pids)
        say(f"Stopping   {names} and their children ...")
        left = stack.stop()
    if left:
        say("error: still running after SIGKILL:")
        for line in left:
            say("  " + line)
        return 1
    say("Stopped    no process of it is left")
    return 0


# -- backfill ----------------------------------------------------------------------------------


def running_cluster(home: Path) -> Cluster | None:
    """The ``make cluster`` stack of ``home`` when it is running (every recorded process alive),
    attached from its state file with the cluster's environment (Celery, its S3 lake); None
    when none was started there (or it was stopped). A cluster partly down is an error: a
    backfill must not go quietly to another stack."""
    from cluster import Cluster

    stack = Cluster.attach(home)
    if stack is None or not stack.pids:
        return None
    assert isinstance(stack, Cluster)  # attach() builds the class it is called on
    dead = [name for name, up in stack.running().items() if not up]
    if dead:
        raise RuntimeError(
            f"the cluster in {shown(str(home))}/ is partly down ({', '.join(dead)} not running):"
            " make cluster-down, then make cluster; or STACK=airflow"
        )
    return stack


def backfill_stack(args: argparse.Namespace, home: Path) -> AirflowStack:
    """The stack a backfill runs on: the running cluster, else ``make airflow``'s."""
    cluster_home: Path = args.cluster_home.resolve()
    if args.stack != "airflow":
        cluster = running_cluster(cluster_home)
        if cluster is not None:
            lake = cluster.extra_env.get("NEWSETL_LAKE")
            say(f"Cluster    the running make cluster stack in {shown(str(cluster_home))}/")
            say(f"           (CeleryExecutor, workers {', '.join(cluster.workers())}; lake {lake})")
            return cluster
        if args.stack == "cluster":
            raise RuntimeError(
                f"no cluster is running in {shown(str(cluster_home))}/ (make cluster starts it)"
            )
    return up(home, lake_uri(args.lake), args.port, args.site_port, quiet=True)


def when(value: str) -> datetime:
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)


def _runs(stack: AirflowStack, backfill_id: int) -> list[tuple[Any, ...]]:
    """(logical date, run id, state, interval start, end, end date, reason) per interval."""
    return stack.query(
        "SELECT b.logical_date, r.run_id, r.state, r.data_interval_start, r.data_interval_end,"
        " r.end_date, b.exception_reason FROM backfill_dag_run b"
        " LEFT JOIN dag_run r ON r.id = b.dag_run_id"
        " WHERE b.backfill_id = %s ORDER BY b.sort_ordinal",
        backfill_id,
    )


def task_error(stack: AirflowStack, run_id: str) -> str:
    """The failed task of a run and the first line of its error (from its task log)."""
    rows = stack.query(
        "SELECT task_id, map_index, try_number FROM task_instance WHERE dag_id = %s"
        " AND run_id = %s AND state = 'failed' ORDER BY end_date LIMIT 1",
        DAG_ID,
        run_id,
    )
    if not rows:
        return "no task failed (the run was marked failed)"
    task, index, attempt = rows[0]
    name = task if index < 0 else f"{task}[{index}]"
    folder = stack.logs / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task}"
    if index >= 0:
        folder /= f"map_index={index}"
    log = folder / f"attempt={attempt}.log"
    error = "(no error in its log)"
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return f"{name}: no log at {log}"
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        details = entry.get("error_detail") if isinstance(entry, dict) else None
        if details:
            last = details[-1]
            text = f"{last.get('exc_type')}: {last.get('exc_value')}"
            return f"{name}: {text.splitlines()[0]}   (log {shown(str(log))})"
        if entry.get("level") == "error" and error.startswith("("):
            error = str(entry.get("event", "")).splitlines()[0]
    return f"{name}: {error}   (log {shown(str(log))})"


def follow(stack: AirflowStack, backfill_id: int, created: datetime) -> list[tuple[Any, ...]]:
    """Print a line per interval as its run ends; return the final rows."""
    reported: set[Any] = set()
    while True:
        rows = _runs(stack, backfill_id)
        for logical, run_id, state, start, end, ended, reason in rows:
            if logical in reported:
                continue
            if run_id is None:
                say(f"  {logical:%Y-%m-%d %H:%M}  skipped ({reason})")
            elif state in TERMINAL and ended is not None and ended >= created:
                say(f"  {start:%Y-%m-%d %H:%M} → {end:%H:%M}  {state:<8} {run_id}")
                if state == "failed":
                    say(f"      {task_error(stack, run_id)}")
            else:
                continue
            reported.add(logical)
        done = stack.query("SELECT completed_at FROM backfill WHERE id = %s", backfill_id)
        if (rows and len(reported) == len(rows)) or (not rows and done and done[0][0]):
            return rows
        if not all(stack.running().values()):
            raise RuntimeError(f"a component of the stack stopped; see {stack.logs}/")
        time.sleep(1)


def wait_previous(stack: AirflowStack) -> None:
    """Airflow allows one unfinished backfill per DAG: wait for the one before."""
    said = False
    while rows := stack.query(
        "SELECT id FROM backfill WHERE dag_id = %s AND completed_at IS NULL", DAG_ID
    ):
        if not said:
            say(f"Waiting    for backfill {rows[0][0]} to complete (one at a time per DAG)")
            said = True
        time.sleep(2)


def backfill(stack: AirflowStack, start: datetime, end: datetime, reprocess: str | None) -> int:
    wait_previous(stack)
    (last,) = stack.query("SELECT coalesce(max(id), 0) FROM backfill")[0]
    args = ["--from-date", start.isoformat(), "--to-date", end.isoformat()]
    if reprocess:
        args += ["--reprocess-behavior", reprocess]
    say(f"Backfill   airflow backfill create --dag-id {DAG_ID} {' '.join(args)}")
    stack.cli("backfill", "create", "--dag-id", DAG_ID, *args)
    found = stack.query(
        "SELECT id, created_at FROM backfill WHERE dag_id = %s AND id > %s ORDER BY id",
        DAG_ID,
        last,
    )
    if not found:
        say("error: airflow backfill create made no backfill")
        return 1
    backfill_id, created = found[-1]
    say(f"           backfill {backfill_id}: one run per hour, as each ends:")
    rows = follow(stack, backfill_id, created)
    failed = [r for r in rows if r[2] == "failed"]
    summary(stack, rows)
    if failed:
        say(f"error: {len(failed)} of {len(rows)} interval(s) failed:")
        for r in failed:
            say(f"  {r[3]:%Y-%m-%d %H:%M}  {task_error(stack, r[1])}")
        return 1
    return 0


def summary(stack: AirflowStack, rows: list[tuple[Any, ...]]) -> None:
    """Each interval's manifest (articles, failures, mode per source), then a sample query."""
    from etl.config import load_settings
    from etl.lake import open_lake, read_manifest, run_query
    from etl.records import Interval

    settings = load_settings(stack.env)
    lake = open_lake(settings.lake_settings)
    say()
    say(f"Lake       {shown(stack.extra_env['NEWSETL_LAKE'])}: the intervals' manifests")
    days = set()
    for _, run_id, state, start, end, _, _ in rows:
        if run_id is None:
            continue
        interval = Interval(start, end)
        days.add(interval.dt)
        manifest = read_manifest(lake, interval)
        if manifest is None:
            say(f"  {interval.id}  {state}: no manifest")
            continue
        sources = (manifest.get("extra") or {}).get("sources") or {}
        failed = sum(int(p.get("failed", 0)) for p in sources.values())
        modes = ", ".join(f"{sid} {p.get('mode')}" for sid, p in sorted(sources.items()))
        say(f"  {interval.id}  {manifest['articles']} articles, {failed} failed   ({modes})")
    if not days:
        return
    first, last = min(days), max(days)
    sql = (
        "SELECT dt, title, published_at FROM articles"
        f" WHERE dt BETWEEN '{first}' AND '{last}' ORDER BY published_at"
    )
    say()
    lake_flag = stack.extra_env["NEWSETL_LAKE"]
    say(f'Sample query:  .venv/bin/newsetl query --lake {shown(lake_flag)} "{sql}"')
    columns, result = run_query(settings.lake_settings, sql)
    if not result:
        say("  (no articles in those days)")
        return
    say("  " + "\t".join(columns))
    for row in result[:20]:
        say("  " + "\t".join(str(v) for v in row))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    parsers = {name: sub.add_parser(name) for name in ("up", "down", "backfill")}
    for name, p in parsers.items():
        p.add_argument("--home", type=Path, default=HOME, help="Airflow home (%(default)s)")
        if name != "down":
            p.add_argument("--lake", help="lake URI (default: $NEWSETL_LAKE or ./lake)")
            p.add_argument("--port", type=int, default=8080, help="UI/API port (%(default)s)")
            p.add_argument("--site-port", type=int, default=8765, help="demo site port")
    parsers["up"].add_argument("--foreground", action="store_true", help="stay; Ctrl-C stops")
    parsers["backfill"].add_argument("--from", dest="start", required=True, help="ISO time, UTC")
    parsers["backfill"].add_argument("--to", dest="end", required=True, help="ISO time (inclusive)")
    parsers["backfill"].add_argument(
        "--reprocess", choices=("none", "completed", "failed"), help="runs that exist already"
    )
    parsers["backfill"].add_argument(
        "--stack",
        choices=("auto", "airflow", "cluster"),
        default="auto",
        help="auto: the running make cluster stack, else make airflow's (%(default)s)",
    )
    parsers["backfill"].add_argument(
        "--cluster-home", type=Path, default=CLUSTER_HOME, help="make cluster's home"
    )
    args = ap.parse_args(argv)
    home: Path = args.home.resolve()
    if args.command == "down":
        return down(home)
    try:
        if args.command == "backfill":
            start, end = when(args.start), when(args.end)
            return backfill(backfill_stack(args, home), start, end, args.reprocess)
        stack = up(home, lake_uri(args.lake), args.port, args.site_port)
    except (RuntimeError, ValueError) as exc:
        say(f"error: {exc}")
        return 1
    if args.foreground:
        say("Running    in the foreground: Ctrl-C stops everything")
        stopping: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda n, _f: stopping.append(n))
        while not stopping and all(stack.running().values()):
            time.sleep(1)
        return down(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
