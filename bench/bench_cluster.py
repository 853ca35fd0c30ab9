"""A CC-NEWS-like WARC backfill on the distributed Airflow (``make cluster``'s stack), with 1 and
with 2 Celery workers, and the orchestration cost per interval against ``newsetl run``.

1. Writes ``--pages`` (20,000) generated news pages (bench/ccnews.py: whole pages with
   navigation, boilerplate and related-stories grids, 50-65 KB each) into CC-NEWS-like
   ``.warc.gz`` files, ``--files-per-hour`` (2) per hour over ``--hours`` (8) hours, twice:
   the same pages (same URLs, same bytes) dated 2024-03-05 for the one-worker backfill and
   2024-03-06 for the two-worker one, so each backfill has its own fresh intervals.
2. Starts the cluster (scripts/cluster.py: PostgreSQL, Valkey broker, moto S3 lake, api-server,
   scheduler, dag-processor) with ONE Celery worker of concurrency 1, and the per-task process
   pool at 1 (``NEWSETL_WORKERS=1``): one task is one core. ``airflow backfill create`` over the
   hours (``--max-active-runs`` 4, lake ``s3://news-lake/bench-1w``, through the DAG run conf);
   then adds a second worker (concurrency 1) and backfills the other day into
   ``s3://news-lake/bench-2w``. Pages per second = pages / (backfill created -> last run
   ended, from the metadata database). Target: 2 workers >= ``--target`` (1.7) x 1 worker. Both
   lakes must hold the same ``article_id`` set, every page once.
3. Orchestration cost, measured first (one worker): ``--orch-rounds`` (2) small intervals of
   ``--orch-pages`` (40) pages, each as ``newsetl run`` (a whole command, interpreter start
   included) onto the same S3 server and as one DAG run on the cluster (backfill created ->
   run ended), each into its own lake prefix, after one untimed warm-up round (which also warms
   the worker for the backfill); the difference, and that difference per task instance.
   Then 30 s with nothing running: the metadata database's idle load.

Also counted, per phase: S3 requests (the moto server's request log), metadata-database
transactions and row writes (``pg_stat_database``), task instances; they feed the sizing in the
README ("Distributed Airflow"). The sources are one ``warc`` source (``--split-sources``: one
source per file index, i.e. mapped tasks per WARC file through today's per-source mapping);
``--chunk-size N`` splits each source into chunked mapped tasks of N records (byte ranges of
its WARC files; sources.yaml ``chunk_size``); ``--env K=V`` passes settings to every Airflow
process. Every process is stopped by PID at the end, also on Ctrl-C or SIGTERM.

    uv run python bench/bench_cluster.py [--pages 20000] [--hours 8] [--quick] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "bench")]

import ccnews  # noqa: E402
from airflow_local import bin_path  # noqa: E402
from cluster import Cluster, lake_connection  # noqa: E402
from pg_local import free_port  # noqa: E402

DAG_ID = "news_ingest"
BUCKET = "s3://news-lake"
DAYS = {1: datetime(2024, 3, 5, tzinfo=UTC), 2: datetime(2024, 3, 6, tzinfo=UTC)}
ORCH_DAY = datetime(2024, 3, 8, tzinfo=UTC)
S3_LINE = re.compile(r'"(?:\x1b\[[0-9;]*m)*(GET|PUT|HEAD|POST|DELETE) ')  # werkzeug colours 4xx


def write_sources(
    path: Path, folder: Path, files_per_hour: int, split: bool, chunk_size: int | None = None
) -> Path:
    groups = [f"*-{f:05d}" for f in range(files_per_hour)] if split else ["*"]
    sources = [
        {"id": f"cc-news-{i}" if split else "cc-news", "kind": "warc",
         "path": str(folder / f"CC-NEWS-{g}.warc.gz"), "language": "en"}
        for i, g in enumerate(groups)
    ]  # fmt: skip
    doc: dict[str, Any] = {"sources": sources}
    if chunk_size:  # chunked mapped tasks: WARC byte ranges of chunk_size records each
        doc["chunk_size"] = chunk_size
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")  # YAML ⊃ JSON
    return path


def s3_requests(cluster: Cluster, since: int) -> tuple[int, Counter[str]]:
    """The S3 server's log size now, and its requests by method since offset ``since``."""
    log = cluster.logs / "s3.log"
    with log.open("rb") as fh:
        fh.seek(since)
        text = fh.read().decode(errors="replace")
    return since + len(text.encode()), Counter(m.group(1) for m in S3_LINE.finditer(text))


def pg_stats(cluster: Cluster) -> tuple[int, int]:
    """(committed transactions, rows inserted + updated + deleted) of the metadata database."""
    ((commits, writes),) = cluster.query(
        "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database"
        " WHERE datname = 'airflow'"
    )
    return int(commits), int(writes)


def backfill(cluster: Cluster, start: datetime, hours: int, lake: str, sources: Path,
             max_active_runs: int) -> dict[str, Any]:  # fmt: skip
    """One ``airflow backfill create`` over ``hours`` hours from ``start``; waits for its runs."""
    while cluster.query(
        "SELECT id FROM backfill WHERE dag_id = %s AND completed_at IS NULL", DAG_ID
    ):  # Airflow allows one unfinished backfill per DAG: the one before completes after its runs
        time.sleep(1)
    s3_mark, _ = s3_requests(cluster, 0)
    pg0 = pg_stats(cluster)
    (last,) = cluster.query("SELECT coalesce(max(id), 0) FROM backfill")[0]
    end = start + timedelta(hours=hours - 1)
    conf = json.dumps({"lake": lake, "sources": str(sources)})
    t0 = time.monotonic()
    cluster.cli(
        "backfill", "create", "--dag-id", DAG_ID, "--from-date", start.isoformat(),
        "--to-date", end.isoformat(), "--max-active-runs", str(max_active_runs),
        "--dag-run-conf", conf,
    )  # fmt: skip
    ((backfill_id, created),) = cluster.query(
        "SELECT id, created_at FROM backfill WHERE dag_id = %s AND id > %s", DAG_ID, last
    )
    while True:
        runs = cluster.query(
            "SELECT state, start_date, end_date FROM dag_run WHERE backfill_id = %s", backfill_id
        )
        if len(runs) == hours and all(r[0] in ("success", "failed") for r in runs):
            break
        dead = [n for n, up in cluster.running().items() if not up]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} stopped; see {cluster.logs}/")
        time.sleep(1)
    command_s = time.monotonic() - t0
    tis = cluster.query(
        "SELECT ti.task_id, ti.hostname, ti.start_date, ti.end_date FROM task_instance ti"
        " JOIN dag_run r ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id"
        " WHERE r.backfill_id = %s",
        backfill_id,
    )
    pg1 = pg_stats(cluster)
    _, s3 = s3_requests(cluster, s3_mark)
    busy = Counter[str]()
    for task, _, t_start, t_end in tis:
        if t_start and t_end:
            busy[task] += (t_end - t_start).total_seconds()
    return {
        "states": Counter(r[0] for r in runs),
        "seconds": (max(r[2] for r in runs) - created).total_seconds(),
        "command_s": command_s,
        "hosts": Counter(str(h) for _, h, _, _ in tis),
        "tasks": len(tis),
        "busy": busy,
        "s3": s3,
        "pg": (pg1[0] - pg0[0], pg1[1] - pg0[1]),
    }


def article_ids(cluster: Cluster, lake: str) -> list[str]:
    from etl.lake import lake_settings_from_airflow_conn, run_query

    settings = lake_settings_from_airflow_conn(lake_connection(cluster.s3), lake)
    _, rows = run_query(settings, "SELECT article_id FROM articles")
    return [str(r[0]) for r in rows]


def newsetl_run(cluster: Cluster, sources: Path, lake: str, start: datetime) -> float:
    """Seconds of one ``newsetl run`` of the hour from ``start`` onto the cluster's S3 server."""
    env = {**cluster.env, "NEWSETL_S3_PATH_STYLE": "true", "NEWSETL_WORKERS": "1"}
    cmd = [bin_path("newsetl"), "run", "--sources", str(sources), "--lake", lake]
    cmd += ["--start", start.isoformat(), "--end", (start + timedelta(hours=1)).isoformat()]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"newsetl run failed ({proc.returncode}):\n{proc.stdout[-1500:]}")
    return time.monotonic() - t0


def phase_line(workers: int, pages: int, r: dict[str, Any]) -> str:
    hosts = ", ".join(f"{h} {n}" for h, n in sorted(r["hosts"].items()))
    s3 = ", ".join(f"{m} {n}" for m, n in sorted(r["s3"].items()))
    return (
        f"  {workers} worker{'s' if workers > 1 else ' '}  {pages / r['seconds']:7.1f} pages/s"
        f"   {r['seconds']:7.1f} s (command {r['command_s']:.1f} s)   runs {dict(r['states'])}"
        f"\n      task instances {r['tasks']} ({hosts}); busy s by task "
        f"{ {k: round(v, 1) for k, v in sorted(r['busy'].items())} }"
        f"\n      S3 requests {sum(r['s3'].values())} ({s3}); metadata DB "
        f"{r['pg'][0]} transactions, {r['pg'][1]} row writes"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=20_000)
    ap.add_argument("--hours", type=int, default=8)
    ap.add_argument("--files-per-hour", type=int, default=2)
    ap.add_argument("--split-sources", action="store_true", help="one source per file index")
    ap.add_argument("--chunk-size", type=int, help="chunk_size of the sources (records a chunk)")
    ap.add_argument("--max-active-runs", type=int, default=4)
    ap.add_argument("--orch-rounds", type=int, default=2)
    ap.add_argument("--orch-pages", type=int, default=40)
    ap.add_argument("--target", type=float, default=1.7, help="2-worker / 1-worker pages/s")
    ap.add_argument("--quick", action="store_true", help="1,000 pages over 4 hours, 1 round")
    ap.add_argument("--env", action="append", default=[], help="K=V for every Airflow process")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (logs, WARCs)")
    args = ap.parse_args()
    if args.quick:
        args.pages, args.hours, args.orch_rounds = 1_000, 4, 1
    extra = dict(kv.split("=", 1) for kv in args.env)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below

    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp_name:
        tmp = args.keep.resolve() if args.keep else Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        made, sources = {}, {}
        hours = list(range(args.hours))
        for workers, day in DAYS.items():
            folder = tmp / f"warc-{workers}w"
            made[workers] = ccnews.write_backfill(
                folder, day, hours, args.pages, files_per_hour=args.files_per_hour,
                url_day=DAYS[1],
            )  # fmt: skip
            sources[workers] = write_sources(
                tmp / f"sources-{workers}w.yaml",
                folder,
                args.files_per_hour,
                args.split_sources,
                args.chunk_size,
            )
        orch_folder = tmp / "warc-orch"
        ccnews.write_backfill(
            orch_folder, ORCH_DAY, list(range(args.orch_rounds + 1)),
            args.orch_pages * (args.orch_rounds + 1), files_per_hour=1, seed=99,
        )  # fmt: skip
        orch_sources = write_sources(tmp / "sources-orch.yaml", orch_folder, 1, False)
        m = made[1]
        print(
            f"Generated {m['pages']} pages x 2 days: {m['files']} WARC files a day, "
            f"{m['bytes'] / m['pages'] / 1024:.1f} KB of HTML a page, "
            f"{m['warc_bytes'] / 2**20:.0f} MiB of .warc.gz a day ({time.monotonic() - t0:.0f} s)",
            flush=True,
        )
        env = {
            "NEWSETL_SOURCES": str(sources[1]),
            "NEWSETL_LAKE": f"{BUCKET}/bench-1w",
            "NEWSETL_WORKERS": "1",  # the per-task process pool: one task = one core
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # backfill runs only
            **extra,
        }
        meta = {"workers": 1, "worker_concurrency": 1}
        cluster = Cluster(tmp / "cluster_home", api_port=free_port(), extra_env=env, meta=meta)
        try:
            t1 = time.monotonic()
            cluster.start_cluster()
            print(
                f"Cluster ready in {time.monotonic() - t1:.0f} s: 1 worker, concurrency 1 (home"
                f" {cluster.home}; if this process is SIGKILLed: scripts/cluster.py down --home it)"
            )
            return measure(cluster, args, sources, orch_sources)
        finally:
            left = cluster.stop()
            print("Stopped every process of the cluster" if not left else f"LEFT: {left}")


def orchestration(cluster: Cluster, args: argparse.Namespace, orch_sources: Path) -> dict[str, Any]:
    """``--orch-rounds`` intervals each as ``newsetl run`` and as a DAG run (same interval, own
    lakes), after one untimed warm-up round (bytecode, OS caches, the worker's first task)."""
    plain, dag, per_task, s3, tasks = [], [], [], {}, 0
    for r in range(args.orch_rounds + 1):
        start = ORCH_DAY + timedelta(hours=r)
        mark, _ = s3_requests(cluster, 0)
        seconds = newsetl_run(cluster, orch_sources, f"{BUCKET}/orch-run-{r}", start)
        _, s3["newsetl run"] = s3_requests(cluster, mark)
        res = backfill(cluster, start, 1, f"{BUCKET}/orch-dag-{r}", orch_sources, 1)
        if r == 0:
            continue  # the warm-up
        s3["DAG run"], tasks = res["s3"], res["tasks"]
        plain.append(seconds)
        dag.append(res["seconds"])
        per_task.append((res["seconds"] - seconds) / res["tasks"])
    return {"plain": plain, "dag": dag, "per_task": per_task, "s3": s3, "tasks": tasks}


def measure(cluster: Cluster, args: argparse.Namespace, sources: dict[int, Path],
            orch_sources: Path) -> int:  # fmt: skip
    orch = orchestration(cluster, args, orch_sources)
    pg0, t0 = pg_stats(cluster), time.monotonic()
    time.sleep(30)  # the metadata database's load with nothing running (scheduler loop, heartbeats)
    pg1, idle_s = pg_stats(cluster), time.monotonic() - t0
    idle = ((pg1[0] - pg0[0]) / idle_s, (pg1[1] - pg0[1]) / idle_s)
    results = {}
    for workers, day in DAYS.items():
        if workers == 2:
            cluster.meta["workers"] = 2
            cluster.add_worker("worker-2")
            cluster.wait_worker("worker-2")
        lake = f"{BUCKET}/bench-{workers}w"
        results[workers] = backfill(
            cluster, day, args.hours, lake, sources[workers], args.max_active_runs
        )
        print(phase_line(workers, args.pages, results[workers]), flush=True)
    ids = {w: article_ids(cluster, f"{BUCKET}/bench-{w}w") for w in DAYS}
    same = sorted(ids[1]) == sorted(ids[2]) and len(set(ids[1])) == len(ids[1]) == args.pages
    ok_runs = all(set(r["states"]) == {"success"} for r in results.values())
    both = {"worker-1", "worker-2"} <= set(results[2]["hosts"])
    rate = {w: args.pages / r["seconds"] for w, r in results.items()}
    ratio = rate[2] / rate[1]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())

    plain, dag, per_task = orch["plain"], orch["dag"], orch["per_task"]
    print(f"\nCC-NEWS-like WARC backfill, {args.pages} pages over {args.hours} hours "
          f"(load average now {load}):")  # fmt: skip
    print(f"  1 worker  {rate[1]:7.1f} pages/s;  2 workers {rate[2]:7.1f} pages/s;  ratio "
          f"{ratio:.2f}  (target >= {args.target}: {'PASS' if ratio >= args.target else 'MISS'})")  # fmt: skip
    print(f"  runs all success: {'PASS' if ok_runs else 'MISS'};  both workers ran tasks: "
          f"{'PASS' if both else 'MISS'};  lake check (same {len(set(ids[1]))} article_ids "
          f"both times, each once, = pages): {'PASS' if same else 'MISS'}")  # fmt: skip
    best_plain, best_dag = min(plain), min(dag)
    print(
        f"Orchestration, one interval of {args.orch_pages} pages (best of {args.orch_rounds},"
        " after a warm-up; 1 worker):"
        f" newsetl run {best_plain:.1f} s, DAG run on the cluster {best_dag:.1f} s"
        f" (created -> ended): +{best_dag - best_plain:.1f} s, {orch['tasks']} task instances,"
        f" +{min(per_task):.2f} s per task;  rounds newsetl {[round(x, 1) for x in plain]}"
        f" DAG {[round(x, 1) for x in dag]}"
    )
    for name, counts in orch["s3"].items():
        print(f"  S3 requests per interval, {name}: {sum(counts.values())} {dict(counts)}")
    print(f"Metadata DB idle (scheduler loop, heartbeats): {idle[0]:.1f} transactions/s, "
          f"{idle[1]:.1f} row writes/s")  # fmt: skip
    for w, r in results.items():
        extra = (r["pg"][0] - idle[0] * r["seconds"], r["pg"][1] - idle[1] * r["seconds"])
        print(f"  {w}-worker backfill above idle: {extra[0] / r['tasks']:.0f} transactions, "
              f"{extra[1] / r['tasks']:.0f} row writes per task instance")  # fmt: skip
    return 0 if ratio >= args.target and same and ok_runs and both else 1


if __name__ == "__main__":
    sys.exit(main())
