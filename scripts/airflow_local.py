"""Airflow on this machine for the demo, the tests and the benchmark: one Airflow home with a
SQLite database, the project's ``dags/`` folder, and nothing that reaches past 127.0.0.1.

Nothing here imports Airflow (importing it reconfigures logging and reads ``AIRFLOW_HOME`` once
per process): every Airflow command runs as a subprocess of this interpreter's environment, with
the variables :func:`airflow_vars` builds, merged over the caller's environment by
:func:`subprocess_env`.

    vars = airflow_vars(home, jwt_secret=new_jwt_secret())
    env = subprocess_env(vars, {"NEWSETL_SOURCES": ..., "NEWSETL_LAKE": ...})
    prepare_home(home, env)                 # `airflow db migrate` once, the news_http pool
    result = dags_test(env, logical_date)   # `airflow dags test news_ingest <T>`
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = ROOT / "dags"
DAG_ID = "news_ingest"
POOL, POOL_SLOTS, POOL_DESCRIPTION = "news_http", 4, "newsetl HTTP fetches"
LOOPBACK = ("127.0.0.1", "localhost")
_MARKER = ".newsetl-airflow.json"  # written after a successful `airflow db migrate`
_FINISHED = re.compile(r"DagRun Finished: .*?\bstate=(\w+)")
_TASK_END = re.compile(r"\[DAG TEST\] end task task_id=(\S+) map_index=(-?\d+)")
_EXCEPTION = re.compile(r"^[\w.]+(?:Error|Exception): .+$", re.MULTILINE)

# Inherited variables that would point a local run somewhere else (another Airflow home or
# database, another configuration): dropped. Connections (AIRFLOW_CONN_*) and variables
# (AIRFLOW_VAR_*) are kept: they are how a caller hands a run the `news_lake` connection.
_DROPPED_PREFIXES = ("AIRFLOW__",)
_DROPPED = ("AIRFLOW_HOME", "AIRFLOW_CONFIG")


def bin_path(name: str) -> str:
    """A console script of this environment (``airflow``, ``newsetl``)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def new_jwt_secret() -> str:
    return secrets.token_urlsafe(32)


def airflow_vars(
    home: Path, *, jwt_secret: str, api_port: int = 8080, database: str | None = None
) -> dict[str, str]:
    """The Airflow settings of a local run: the Airflow home and its database (``database``, a
    SQLAlchemy URI; default SQLite in the home), the project's dags folder, no example DAGs,
    one JWT secret, and Airflow's own network features off (metrics, traces, Sentry, e-mail;
    the API URLs point at loopback, and ``dags test`` runs the execution API in-process)."""
    home = Path(home).resolve()
    base = f"http://127.0.0.1:{api_port}"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database or f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__METRICS__STATSD_ON": "False",
        "AIRFLOW__METRICS__OTEL_ON": "False",
        "AIRFLOW__TRACES__OTEL_ON": "False",
        "AIRFLOW__SENTRY__SENTRY_ON": "False",
        "AIRFLOW__EMAIL__DEFAULT_EMAIL_ON_FAILURE": "False",
        "AIRFLOW__EMAIL__DEFAULT_EMAIL_ON_RETRY": "False",
    }


def no_proxy(current: str | None) -> str:
    names = [n for n in (current or "").split(",") if n.strip()]
    return ",".join([*names, *(n for n in LOOPBACK if n not in names)])


def subprocess_env(
    airflow: Mapping[str, str],
    extra: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``base`` (default: this process's environment) without inherited Airflow settings, with
    no instance-metadata lookups and no proxy for loopback, then ``airflow`` and ``extra``."""
    base = os.environ if base is None else base
    env = {
        k: v for k, v in base.items() if not k.startswith(_DROPPED_PREFIXES) and k not in _DROPPED
    }
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["NO_PROXY"] = env["no_proxy"] = no_proxy(env.get("NO_PROXY") or env.get("no_proxy"))
    env.update(airflow)
    env.update(extra or {})
    return env


def _airflow(
    env: Mapping[str, str], *args: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [bin_path("airflow"), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


def _check(proc: subprocess.CompletedProcess[str], what: str) -> None:
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _db_query(home: Path, sql: str, *params: object) -> list[tuple[object, ...]] | None:
    """Rows of a read-only query on the home's SQLite database; None when it cannot answer."""
    db = Path(home) / "airflow.db"
    if not db.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute(sql, params).fetchall()
    except sqlite3.Error:
        return None


def is_migrated(home: Path) -> bool:
    """True when ``airflow db migrate`` ran here for the installed Airflow version."""
    marker = Path(home) / _MARKER
    try:
        done = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    rows = _db_query(home, "SELECT version_num FROM alembic_version")
    return done.get("airflow") == version("apache-airflow-core") and bool(rows)


def pool_slots(home: Path, name: str = POOL) -> int | None:
    rows = _db_query(home, "SELECT slots FROM slot_pool WHERE pool = ?", name)
    return int(str(rows[0][0])) if rows else None


def prepare_home(home: Path, env: Mapping[str, str], *, timeout: float = 600) -> list[str]:
    """Migrate the database unless already done, and create the ``news_http`` pool unless it
    exists; returns what was done (empty: nothing to do)."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    done = []
    if not is_migrated(home):
        _check(_airflow(env, "db", "migrate", timeout=timeout), "airflow db migrate")
        marker = {"airflow": version("apache-airflow-core"), "at": datetime.now(UTC).isoformat()}
        (home / _MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        done.append("db migrate")
    if pool_slots(home) != POOL_SLOTS:
        args = ("pools", "set", POOL, str(POOL_SLOTS), POOL_DESCRIPTION)
        _check(_airflow(env, *args, timeout=timeout), "airflow pools set")
        done.append(f"pool {POOL}={POOL_SLOTS}")
    return done


@dataclass(frozen=True)
class DagsTest:
    """What ``airflow dags test`` did: exit status, the run's final state, wall time, log."""

    returncode: int
    state: str | None
    seconds: float
    log: Path
    tasks: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.state == "success"

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def errors(self) -> list[str]:
        """The exceptions the log reports (``module.Error: message`` lines), each once."""
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return list(dict.fromkeys(m.group(0) for m in _EXCEPTION.finditer(text)))


def dags_test(
    env: Mapping[str, str],
    logical_date: datetime,
    *,
    log: Path,
    dag_id: str = DAG_ID,
    on_task: Callable[[str], None] | None = None,
    timeout: float = 900,
) -> DagsTest:
    """Run ``airflow dags test <dag_id> <logical_date>`` (the whole DAG, in-process, for the
    data interval the timetable infers from the date), its output into ``log``;
    ``on_task(name)`` is called as each task instance ends (``fetch[2]`` for mapped ones)."""
    stamp = logical_date.astimezone(UTC).replace(microsecond=0).isoformat()
    log.parent.mkdir(parents=True, exist_ok=True)
    state, tasks = None, []
    t0 = time.perf_counter()
    command = [bin_path("airflow"), "dags", "test", dag_id, stamp]
    with (
        log.open("w", encoding="utf-8") as out,
        subprocess.Popen(
            command,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            cwd=ROOT,
        ) as proc,
    ):
        watchdog = threading.Timer(timeout, proc.kill)  # a hung run ends with a negative status
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                if m := _TASK_END.search(line):
                    name = m.group(1) if m.group(2) == "-1" else f"{m.group(1)}[{m.group(2)}]"
                    tasks.append(name)
                    if on_task is not None:
                        on_task(name)
                elif m := _FINISHED.search(line):
                    state = m.group(1)
            rc = proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
    return DagsTest(rc, state, time.perf_counter() - t0, log, tuple(tasks))
