"""Local scratch folders of a run, and the sweeping of those that killed runs left behind.

Every scratch folder lives under one known root, ``<tmp>/newsetl-work/`` (``<tmp>`` is
``tempfile.gettempdir()``: ``$TMPDIR`` or ``/tmp``), named ``<host>-<pid>-<kind>-<random>``.
A run removes its folders when it ends; a run that was killed cannot, so the first
:func:`workdir` of every process sweeps the root: folders of this host whose process is gone,
and folders of other hosts (a shared ``/tmp``) older than a day.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["root", "sweep", "workdir"]

log = logging.getLogger("etl.workdir")

OTHER_HOST_MAX_AGE_S = 24 * 3600
_swept: set[str] = set()
_lock = threading.Lock()


def root() -> Path:
    return Path(tempfile.gettempdir()) / "newsetl-work"


def _host() -> str:
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:40] or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep(base: Path | None = None) -> list[Path]:
    """Remove the scratch folders of dead runs under ``base`` (default :func:`root`)."""
    base = base or root()
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    me, now = _host(), time.time()
    for d in entries:
        host, _, rest = d.name.partition("-")
        pid_text = rest.partition("-")[0]
        if not pid_text.isdigit():
            continue
        try:
            if host == me:
                stale = not _alive(int(pid_text))
            else:
                stale = now - d.stat().st_mtime > OTHER_HOST_MAX_AGE_S
        except OSError:
            continue
        if stale:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    if removed:
        log.info("removed %d scratch folder(s) of killed runs under %s", len(removed), base)
    return removed


def new_workdir(kind: str) -> Path:
    """A fresh scratch folder for ``kind`` that the caller removes (a killed process's is swept)."""
    base = root()
    with _lock:
        if str(base) not in _swept:
            _swept.add(str(base))
            sweep(base)
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{_host()}-{os.getpid()}-{kind}-", dir=base))


@contextlib.contextmanager
def workdir(kind: str) -> Iterator[Path]:
    """A fresh scratch folder for ``kind`` (discover, fetch, process …), removed on exit."""
    path = new_workdir(kind)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
