"""The DuckDB engine lake queries run on: one database per process, a fresh session per query.

Entry point :func:`session`. Making a DuckDB database costs ~12 ms of CPU (its catalog of
functions), and a new database's first scan allocates its buffers afresh: one page fault per
4 KiB decoded (~29,000 for a 110 MiB day of text). A process that queries more than once
(``newsetl report``, a notebook, a task validating a lake, the benchmarks) pays both once, not
per query: :func:`session` hands out a new connection to the process's database (a cursor).

Each session is isolated as a standalone database would be: it works in its own in-memory
catalog (``ATTACH ':memory:'``, made the default with ``USE``), so the views it creates and
any table a statement creates live there and are dropped with it (``DETACH``); objects
registered with ``register`` belong to the connection. The settings are the process's and
locked (``lock_configuration``): no statement changes them for the sessions after it, and the
``memory_limit`` (:data:`MEMORY_LIMIT`) bounds all sessions of a process together. A forked
child (Airflow's LocalExecutor) makes its own database: DuckDB's threads do not survive
``fork``.

SQL a user typed (``newsetl query``) runs instead in a standalone database that
:func:`lock_down` confines to the lake files its views read.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import duckdb

log = logging.getLogger("etl.lake.engine")

MEMORY_LIMIT = "512MB"  # DuckDB's working memory; larger sorts and joins spill to temp files
# No insertion order to keep for a query without ORDER BY: batches stream as they are read
# instead of waiting in memory for their turn.
# No extension is ever installed or loaded behind a statement's back (a URL in a statement made
# DuckDB download httpfs from extensions.duckdb.org).
CONFIG: dict[str, str | int | float | list[str]] = {
    "memory_limit": MEMORY_LIMIT,
    "preserve_insertion_order": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}

_lock = threading.Lock()
_databases: dict[int, duckdb.DuckDBPyConnection] = {}  # by process id: one per process


def new_database() -> duckdb.DuckDBPyConnection:
    """A standalone in-memory DuckDB database with the engine's settings."""
    return duckdb.connect(config=dict(CONFIG))


def _cursor() -> duckdb.DuckDBPyConnection:
    pid = os.getpid()
    with _lock:
        if pid not in _databases:  # a forked child never touches (nor closes) its parent's
            database = new_database()
            database.execute("SET lock_configuration = true")  # no session changes another's
            _databases[pid] = database
            log.debug("DuckDB database made for process %d", pid)
        return _databases[pid].cursor()


@contextmanager
def session() -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the process's database, working in a catalog of its own (see the
    module doc); closed, and its catalog dropped, on exit."""
    con = _cursor()
    catalog = f"session_{uuid.uuid4().hex}"
    try:
        con.execute(f"ATTACH ':memory:' AS {catalog}")
        con.execute(f"USE {catalog}")
        yield con
    finally:
        con.close()
        cleaner = _cursor()  # a fresh connection: the session's may be in a failed state
        try:
            cleaner.execute(f"DETACH DATABASE IF EXISTS {catalog}")
        except duckdb.Error as exc:
            log.warning("query session %s: its catalog could not be dropped: %s", catalog, exc)
        finally:
            cleaner.close()


def lock_down(con: duckdb.DuckDBPyConnection, readable: Sequence[str]) -> None:
    """Make the standalone database of ``con`` read only ``readable`` (the lake files its views
    name) and nothing else: no other file or URL (``read_text('/etc/…')``, ``COPY … TO``,
    ``ATTACH`` are refused), no extension installed or loaded, and no setting changed after
    (``lock_configuration``). Sorts and joins still spill, to a temp folder of its own, removed
    with the connection. For SQL a user typed (``newsetl query``); never on the shared database,
    whose sessions read other lakes."""
    spill = tempfile.mkdtemp(prefix="newsetl-query-")
    weakref.finalize(con, shutil.rmtree, spill, True)
    con.execute("SET temp_directory = ?", [spill])
    con.execute("SET allowed_directories = ?", [[spill + "/"]])
    if readable:
        con.execute("SET allowed_paths = ?", [list(readable)])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
