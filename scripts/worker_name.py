"""The host name a Celery worker of the local cluster reports for its tasks.

Both workers of ``make cluster`` run on one machine, so the machine's name would not tell them
apart. Each worker's environment names it (``NEWSETL_WORKER_NAME``), and the cluster points
Airflow's ``[core] hostname_callable`` here (``worker_name.hostname``, scripts/ on the worker's
``PYTHONPATH``): a task instance's ``hostname`` in the metadata database (and the UI) says which
worker ran it.
"""

from __future__ import annotations

import os
import socket

VAR = "NEWSETL_WORKER_NAME"


def hostname() -> str:
    return os.environ.get(VAR) or socket.getfqdn()
