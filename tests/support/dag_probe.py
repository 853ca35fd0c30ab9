"""Parse the dags folder as Airflow's DAG processor does and print what
``tests/airflow/test_dags.py`` checks, as one JSON object on the last line of stdout.

Run in a subprocess (``python tests/support/dag_probe.py DAGS CONTROL PLAN_SOURCES PLAN_LAKE``)
with an ``AIRFLOW_HOME`` of its own: importing Airflow configures logging for the whole process and
reads its settings once, which the test session must not inherit.

What it reports:

- ``parse``: the wall time of ``DagBag(dag_folder)`` with ``airflow.dag_processing.dagbag``
  already imported (the DAG processor has it loaded when it parses a file, so that import is
  not the DAG file's cost; everything the DAG file imports itself is), the import errors, the
  modules the parse imported, and the I/O it did, seen by an audit hook: network calls,
  subprocesses, and files opened other than Python code (the DAG file itself is code);
- per DAG: tags, doc_md, catchup and, per task, retries, pool, outlets, whether its dict
  return value is pushed as one XCom (``multiple_outputs`` off) and whether it is mapped;
- ``news_ingest``'s timetable through Airflow's own API (the core timetable the scheduler uses,
  ``infer_manual_data_interval`` and ``next_dagrun_info``);
- what the ``plan`` task returns without a data interval (a manual run with no logical date),
  with a zero-length one, and with a real one;
- what ``news_compact``'s task returns for a scheduled run and with a ``day`` param;
- ``control``: the same parse facts for ``CONTROL``, a folder whose DAG does I/O at parse time
  (so the test knows the checks can fail).
"""

from __future__ import annotations

import json
import os
import sys
import time
from types import SimpleNamespace
from typing import Any

CODE_SUFFIXES = (".py", ".pyc", ".pyi", ".so", ".pth", ".typed")
NETWORK_EVENTS = ("socket.", "urllib.", "http.client.", "ftplib.", "smtplib.")
PROCESS_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn")
HEAVY = ("etl", "boto3", "botocore", "httpx", "pyarrow", "trafilatura", "duckdb", "lxml")


def _io_recorder() -> tuple[list[list[str]], set[str], dict[str, bool]]:
    events: list[list[str]] = []
    code: set[str] = set()  # code files opened (proof the hook saw the parse)
    state = {"on": False}

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if not state["on"]:
            return
        if event.startswith(NETWORK_EVENTS) or event.startswith(PROCESS_EVENTS):
            events.append([event, repr(args)[:300]])
        elif event == "open" and args and isinstance(args[0], str | bytes | os.PathLike):
            path = os.fsdecode(args[0])
            if not path.endswith(CODE_SUFFIXES):
                events.append([event, path])
            else:
                code.add(os.path.abspath(path))

    sys.addaudithook(hook)
    return events, code, state


def _timetable(dag: Any) -> dict[str, Any]:
    import pendulum
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    tt = coerce_to_core_timetable(dag.timetable)

    def span(info: Any) -> list[str] | None:
        di = info.data_interval if info is not None else None
        return None if di is None else [di.start.isoformat(), di.end.isoformat()]

    manual = {}
    for when in ("2022-05-14T10:00:00+00:00", "2022-05-14T10:30:00+00:00", "2024-02-29T23:59:59Z"):
        di = tt.infer_manual_data_interval(run_after=pendulum.parse(when))
        manual[when] = [di.start.isoformat(), di.end.isoformat()]
    start = pendulum.instance(dag.start_date)
    scheduled = []
    last = None
    for _ in range(3):  # the first runs of a catch-up schedule from start_date
        info = tt.next_dagrun_info(
            last_automated_data_interval=last,
            restriction=TimeRestriction(earliest=start, latest=None, catchup=True),
        )
        scheduled.append({"interval": span(info), "run_after": info.run_after.isoformat()})
        last = info.data_interval
    h9 = pendulum.datetime(2022, 5, 14, 9, tz="UTC")
    h10 = h9.add(hours=1)
    after = DataInterval(h9, h10)
    following = tt.next_dagrun_info(
        last_automated_data_interval=after,
        restriction=TimeRestriction(earliest=start, latest=None, catchup=True),
    )
    no_catchup = tt.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=start, latest=None, catchup=False),
    )
    return {
        "class": f"{type(tt).__module__}.{type(tt).__name__}",
        "manual": manual,
        "scheduled": scheduled,
        "after_2022_05_14_09": span(following),
        "first_without_catchup": span(no_catchup),
        "now": pendulum.now("UTC").isoformat(),
    }


def _plan(dag: Any, sources: str, lake: str) -> dict[str, Any]:
    import pendulum

    fn = dag.task_dict["plan"].python_callable
    params = {"sources": sources, "lake": lake, "refetch": False}
    run_after = pendulum.datetime(2026, 11, 25, 14, 37, 12, tz="UTC")
    dag_run = SimpleNamespace(run_after=run_after)
    h9 = pendulum.datetime(2022, 5, 14, 9, tz="UTC")
    h10 = h9.add(hours=1)
    out = {}
    for name, start, end in (("none", None, None), ("zero", h10, h10), ("hour", h9, h10)):
        items = fn(params=params, data_interval_start=start, data_interval_end=end, dag_run=dag_run)
        out[name] = items
    return {"run_after": run_after.isoformat(), "items": out}


def _compact(dag: Any, lake: str) -> dict[str, Any]:
    """What news_compact's task does for a scheduled run and for a ``day`` param (empty lake)."""
    import pendulum

    fn = dag.task_dict["compact"].python_callable
    start = pendulum.datetime(2022, 5, 14, 3, tz="UTC")
    scheduled = fn(
        params={"lake": lake, "day": None},
        data_interval_start=start,
        data_interval_end=start.add(days=1),
    )
    by_hand = fn(params={"lake": lake, "day": "2022-05-01"}, data_interval_end=start)
    return {"scheduled": scheduled, "by_hand": by_hand}


def _parse(folder: str, recorder: tuple[list[list[str]], set[str], dict[str, bool]]) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    events, code, state = recorder
    events.clear()
    code.clear()
    before = set(sys.modules)
    state["on"] = True
    t0 = time.perf_counter()
    bag = DagBag(dag_folder=folder)
    seconds = time.perf_counter() - t0
    state["on"] = False
    root = os.path.abspath(folder)
    return bag, {
        "seconds": seconds,
        "dags": sorted(bag.dags),
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "imported": sorted(m for m in set(sys.modules) - before if m.split(".")[0] in HEAVY),
        "io": list(events),
        "code_opened": sorted(c for c in code if c.startswith(root)),
    }


def _describe(bag: Any) -> dict[str, Any]:
    dags: dict[str, Any] = {}
    for dag_id, dag in bag.dags.items():
        tasks = {}
        for t in dag.tasks:
            partial = getattr(t, "partial_kwargs", {}) or {}
            one_xcom = partial.get("multiple_outputs", getattr(t, "multiple_outputs", None))
            tasks[t.task_id] = {
                "retries": t.retries,
                "retry_delay_s": t.retry_delay.total_seconds() if t.retry_delay else None,
                "execution_timeout_s": (
                    t.execution_timeout.total_seconds() if t.execution_timeout else None
                ),
                "pool": t.pool,
                "outlets": [
                    {"type": type(o).__name__, "name": getattr(o, "name", None)} for o in t.outlets
                ],
                "multiple_outputs": one_xcom,
                "mapped": bool(getattr(t, "is_mapped", False)),
            }
        dags[dag_id] = {
            "tags": sorted(dag.tags),
            "doc_md": dag.doc_md,
            "catchup": dag.catchup,
            "fileloc": dag.fileloc,
            "tasks": tasks,
        }
    return dags


def main() -> None:
    dags_folder, control_folder, plan_sources, plan_lake = sys.argv[1:5]
    import airflow.dag_processing.dagbag  # noqa: F401  (warm: the DAG processor has it loaded)

    recorder = _io_recorder()
    bag, parse = _parse(dags_folder, recorder)
    # the negative control, before anything below imports etl: a DAG file doing I/O at parse
    control = _parse(control_folder, recorder)[1]
    report: dict[str, Any] = {"parse": parse, "control": control, "dags": _describe(bag)}
    if "news_ingest" in bag.dags:
        report["timetable"] = _timetable(bag.dags["news_ingest"])
        report["plan"] = _plan(bag.dags["news_ingest"], plan_sources, plan_lake)
    if "news_compact" in bag.dags:
        report["compact"] = _compact(bag.dags["news_compact"], plan_lake)
    sys.stdout.write("\n" + json.dumps(report, default=str) + "\n")


if __name__ == "__main__":
    main()
