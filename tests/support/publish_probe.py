"""One interval's steps, as the DAG's tasks run them, with a given shard count
(tests/airflow/test_backfill.py runs it as a script). With ``kill-before-delete``, the
lake.delete of the publish's stale shards (after the new shards and fetch log are put, before
the new key index and the manifest) reports what was put and SIGKILLs the process.

    python publish_probe.py LAKE SOURCES START END N_SHARDS normal|kill-before-delete
"""

import json
import os
import signal
import sys
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from etl.config import load_settings
from etl.lake.local import LocalLake
from etl.records import Interval
from etl.runner.discover import discover_step
from etl.runner.interval import fetch_step
from etl.runner.process import process_step
from etl.runner.publish import publish_step, validate_step
from etl.runner.run import Run, plan

lake, sources, start, end, n_shards, mode = sys.argv[1:7]
settings = replace(load_settings(lake=lake, sources=sources), n_shards=int(n_shards))
interval = Interval(datetime.fromisoformat(start), datetime.fromisoformat(end))
run = Run.open(settings, interval)
assert isinstance(run.lake, LocalLake), run.lake
processed = [process_step(run, fetch_step(run, discover_step(run, s))) for s in plan(run)]
if mode == "kill-before-delete":
    puts: list[str] = []
    put_file, put_bytes = LocalLake.put_file, LocalLake.put_bytes

    def recording_put_file(self: LocalLake, key: str, path: str | os.PathLike[str]) -> None:
        put_file(self, key, path)
        puts.append(key)

    def recording_put_bytes(self: LocalLake, key: str, data: bytes) -> None:
        put_bytes(self, key, data)
        puts.append(key)

    delete = LocalLake.delete

    def killing_delete(self: LocalLake, keys: Iterable[str]) -> None:
        keys = list(keys)
        if not any(k.startswith("articles/") for k in keys):  # the old key index, first
            delete(self, keys)
            return
        print(json.dumps({"puts": puts, "deleting": keys}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    # the probe patches the class on purpose (its only process): mypy forbids method assignment
    LocalLake.put_file = recording_put_file  # type: ignore[method-assign]
    LocalLake.put_bytes = recording_put_bytes  # type: ignore[method-assign]
    LocalLake.delete = killing_delete  # type: ignore[method-assign]
published = publish_step(run, processed)
print(json.dumps({"published": published, "quality": validate_step(run)}), flush=True)
