"""Processes started for a local stack, found and stopped by PID, none left behind.

Every process a stack starts gets its own session (``setsid``: its PID is the session id) and
the variable ``NEWSETL_STACK=<tag>`` in its environment. Its children are found three ways:
in its session (LocalExecutor workers and task processes stay in it), by the tag that they
inherit (while they keep their environment: a process that sets its title overwrites what
``/proc/<pid>/environ`` shows), and below it by parent PID (PostgreSQL's backends start their
own sessions). Linux only (``/proc``).

    pid = spawn([...], env=tag_env(env, tag), log=path)
    stop([[(pid, SIGTERM), ...], [(pg, SIGINT)]], tag)   # by stage; then SIGKILL what is left
    assert not tagged(tag)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

TAG_VAR = "NEWSETL_STACK"


def tag_env(env: Mapping[str, str], tag: str) -> dict[str, str]:
    return {**env, TAG_VAR: tag}


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def has_tag(pid: int, tag: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{TAG_VAR}={tag}".encode() in environ.split(b"\0")


def started(pid: int) -> int | None:
    """The process's start time (clock ticks since boot): with the PID, who it is."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def session(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[3])
    except (OSError, ValueError, IndexError):
        return None


def tagged(tag: str, sessions: Iterable[int] = ()) -> list[int]:
    """Every live process (but this one) started for the stack ``tag`` or a child of one: the
    tag in its environment, or in one of the stack's ``sessions`` (a process that sets its
    title, as Airflow's and PostgreSQL's do, overwrites the environment ``/proc`` shows)."""
    me, sids = os.getpid(), set(sessions)
    pids = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    return sorted(
        p
        for p in pids
        if p != me and (has_tag(p, tag) or (sids and session(p) in sids)) and alive(p)
    )


def descendants(pids: Iterable[int]) -> set[int]:
    """Every live process below ``pids`` (by parent PID). PostgreSQL's backends rewrite their
    environment area for their process titles: they are found this way, from the postmaster."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[-1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out: set[int] = set()
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return {p for p in out if alive(p)}


def describe(pid: int) -> str:
    try:
        cmd = (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        cmd = "?"
    return f"{pid} {cmd.strip()[:120]}"


def spawn(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str],
    log: Path,
    cwd: Path | None = None,
) -> int:
    """Start ``cmd`` in its own session, output appended to ``log``; returns its PID. The
    process is not waited for: it outlives this one (``stop`` ends it, by PID)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _REAPABLE.add(proc)
    return proc.pid


_REAPABLE: set[subprocess.Popen[bytes]] = set()


def _reap() -> None:
    """Collect the exit status of processes this interpreter started (no zombies)."""
    for proc in list(_REAPABLE):
        if proc.poll() is not None:
            _REAPABLE.discard(proc)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    pending = set(pids)
    deadline = time.monotonic() + timeout
    while True:
        _reap()
        pending = {p for p in pending if alive(p)}
        if not pending or time.monotonic() >= deadline:
            return sorted(pending)
        time.sleep(0.2)


def stop(
    stages: Sequence[Sequence[tuple[int, int]]],
    tag: str,
    *,
    grace: float = 30.0,
) -> list[str]:
    """Stop a stack, stage by stage: each stage's ``(pid, signal)`` pairs signalled at once
    (SIGTERM for Airflow, SIGINT, a fast shutdown, for PostgreSQL), then waited for up to
    ``grace`` (each ends its own children); then SIGTERM and at last SIGKILL to every process
    still carrying the tag, in one of their sessions, or below them. A recorded PID is
    signalled only while it still leads its own session (a reused PID does not). Returns what
    is left (empty: nothing)."""
    sids = {pid for stage in stages for pid, _ in stage}  # each was started in its own session
    ours = [[(p, sig) for p, sig in stage if alive(p) and session(p) == p] for stage in stages]
    family = descendants(p for stage in ours for p, _ in stage)  # before any is re-parented
    for stage in ours:
        for pid, sig in stage:
            _signal(pid, sig)
        wait_gone([pid for pid, _ in stage], grace)

    def left() -> list[int]:
        return sorted(set(tagged(tag, sids)) | {p for p in family if alive(p)})

    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        rest = left()
        if not rest:
            break
        for pid in rest:
            _signal(pid, sig)
        wait_gone(rest, wait)
    return [describe(p) for p in left()]
