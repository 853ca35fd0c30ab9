"""
### news_ingest — hourly news ingestion into the lake

Each run owns one real hour, `[data_interval_start, data_interval_end)` (a
`CronDataIntervalTimetable`, not Airflow 3's zero-length default), and writes that interval of
the lake exactly once, however often it is retried, rerun or backfilled.

`plan` (read and validate the sources; store the interval's seen index once, read by the
other tasks with one GET) → `discover` (mapped per source) → `split` (one item
per chunk of a source with a `chunk_size`, see etl/runner/chunks.py; one per other source) → `fetch`
(mapped per chunk, in the `news_http` pool) → `process` (mapped: extract, clean, normalize to
staging Parquet) → `publish` (the exactly-once switch) → `validate` (the quality gate; emits
the `news_articles` asset for downstream DAGs).

* **Backfills**: `airflow backfill create --dag-id news_ingest --from-date … --to-date …`.
  An interval whose raw WARC archive exists is *replayed* with the current rules (no network);
  otherwise dated sources (sitemaps, WARC files) are discovered for that interval. The `refetch`
  param forces a fresh fetch.
* **Manual runs** without a logical date (`airflow dags trigger news_ingest`) cover the last
  hour complete when the run was created (its `run_after`), so retries keep the interval.
* **Params** `sources` and `lake` override `NEWSETL_SOURCES` / `NEWSETL_LAKE` for one run; an S3
  lake is reached through the `news_lake` connection (conn type `aws`, `endpoint_url` in its
  extra) when it exists, else the standard AWS settings.
* Transient errors (timeouts, 5xx, S3 throttling) raise and are retried; terminal ones become
  `fetch_log` rows, or fail the task without retries (bad configuration, quality gate).
* **A failing source never sinks the others**: `discover` records a source's failure (a
  `fetch_log` row, the raw index) instead of failing; a transient one raises while retries
  remain. `fetch` archives what succeeded, then raises while URLs are pending and retries remain
  (the retry fetches only those); on the last try both return, `publish` publishes what there is
  with the interval marked `incomplete` (manifest `pending`, `failed_sources`), and `validate`
  fails the run naming the pending URLs; a rerun (clear, backfill) fetches just those.
* **Attempt**: `plan` makes one attempt id per DAG run (from its run_id); every task stages under
  `_staging/<interval>/<attempt>/` and `publish` reads only that attempt's files.
* **Interval lease**: every task from `plan` to `publish` holds `_leases/interval/<interval>.json`
  as the DAG run's holder (`airflow:<dag_id>/<run_id>#<clear_number>`), renewing it while it
  runs; `publish` releases it. Another run of the same interval (a `newsetl run`, another DAG
  run) is refused with a transient error naming the holder, and retried later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, cast

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task

ARTICLES = Asset(name="news_articles", uri="newsetl://lake/articles")

if TYPE_CHECKING:  # the XCom values: the step results of etl.runner plus the task's item
    from etl.runner import Discovered, Fetched, Processed, Published, Validated

_R = TypeVar("_R", bound=Mapping[str, Any])


class Base(TypedDict):
    """What every task of a DAG run is given (``plan``)."""

    attempt: str
    start: str
    end: str
    lake: str
    sources: str
    refetch: bool
    holder: str


class Item(Base):
    """One mapped task's item: the run's base and its source."""

    source: str


if TYPE_CHECKING:

    class DiscoverItem(Item, Discovered): ...

    class FetchItem(Item, Fetched, total=False): ...

    class ProcessItem(Item, Processed, total=False): ...

    class PublishItem(Item, Published): ...


def _env_number(name: str, default: float, *, minimum: float) -> float:
    """A number from the environment (``default`` when unset, unparsable or below ``minimum``).

    Read here rather than through etl.config because the DAG must not import etl at parse time;
    a bad value falls back to the default rather than breaking the DAG's import."""
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw.strip() else default
    except ValueError:
        return default
    return value if value >= minimum else default


def _task_timeout() -> timedelta:
    """Every task's ``execution_timeout``: ``NEWSETL_TASK_TIMEOUT_MIN`` (minutes, default 60)."""
    return timedelta(minutes=_env_number("NEWSETL_TASK_TIMEOUT_MIN", 60.0, minimum=1e-9))


def _retry_delay() -> timedelta:
    """The first retry's delay: ``NEWSETL_RETRY_DELAY_S`` (seconds, default 30; it doubles per
    retry up to 10 minutes)."""
    return timedelta(seconds=_env_number("NEWSETL_RETRY_DELAY_S", 30.0, minimum=0.0))


def _settings(lake: str | None, sources: str | None) -> Any:
    """Settings for a run; S3 (an s3:// lake, s3:// WARC or URL-list sources) is reached through
    the ``news_lake`` connection when it exists (its endpoint, region and keys), else through the
    standard AWS settings."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    from etl.config import load_settings
    from etl.lake import CONN_ID

    settings = load_settings(lake=lake, sources=sources)
    try:
        c = Connection.get(CONN_ID)
    except AirflowNotFoundException:
        return settings  # no connection: the standard AWS chain
    conn = {"login": c.login, "password": c.password, "extra": c.extra}
    return load_settings(lake=settings.lake, sources=sources, lake_conn=conn)


def _run(item: Mapping[str, Any]) -> Any:
    """The etl Run for a task's item; a terminal etl error fails the task without retries."""
    from datetime import datetime

    from etl.records import Interval
    from etl.runner import Run

    settings = _step(_settings, item["lake"], item["sources"])
    interval = Interval(datetime.fromisoformat(item["start"]), datetime.fromisoformat(item["end"]))
    refetch = bool(item.get("refetch"))
    return _step(Run.open, settings, interval, refetch=refetch, attempt=item.get("attempt"))


def _tries_left(context: dict[str, Any]) -> bool:
    """Whether Airflow will retry this task instance if it fails now."""
    ti = context.get("ti")
    try_number, max_tries = getattr(ti, "try_number", None), getattr(ti, "max_tries", None)
    if not isinstance(try_number, int) or not isinstance(max_tries, int):
        return False
    return try_number <= max_tries


def _retry_unless_last(result: _R, context: dict[str, Any]) -> _R:
    """Raise a transient error for what ``result`` left pending while retries remain (Airflow
    retries the task); on the last try return it, so the others are published all the same."""
    from etl.runner import raise_if_incomplete

    if _tries_left(context):
        raise_if_incomplete(result)
    return result


def _step(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one etl step; a terminal EtlError becomes AirflowFailException (no retry)."""
    from airflow.sdk.exceptions import AirflowFailException

    from etl.errors import EtlError

    try:
        return fn(*args, **kwargs)
    except EtlError as exc:
        if exc.transient:
            raise
        raise AirflowFailException(str(exc)) from exc


def _holder(context: Any) -> str:
    """The interval-lease holder id all tasks of this DAG run share."""
    import os
    import socket

    dag_run = context.get("dag_run")
    if dag_run is None or not getattr(dag_run, "run_id", None):  # called outside a DAG run
        return f"airflow@{socket.gethostname()}:{os.getpid()}"
    return f"airflow:{dag_run.dag_id}/{dag_run.run_id}#{getattr(dag_run, 'clear_number', 0) or 0}"


def _leased(item: Mapping[str, Any], fn: Any, *args: Any, last: bool = False) -> Any:
    """Run one etl step holding the interval lease as the DAG run's holder. ``last``: release
    it after success or a terminal failure (a transient one keeps it for the retry)."""
    from airflow.sdk.exceptions import AirflowFailException

    from etl.lake import interval_lease, new_holder

    run = _run(item)
    holder = item.get("holder") or new_holder("airflow")
    settings = run.settings.lease
    with interval_lease(
        run.lake,
        run.interval.id,
        holder=holder,
        settings=settings,
        attempt=run.attempt,
        release=False,
    ) as lease:
        try:
            result = _step(fn, run, *args)
        except AirflowFailException:
            if last:
                lease.release()
            raise
    if last:
        lease.release()
    return result


@dag(
    dag_id="news_ingest",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2000, 1, 1, tz="UTC"),  # backfills may reach far back
    catchup=False,
    max_active_runs=4,
    doc_md=__doc__,
    tags=["newsetl", "ingest", "news"],
    default_args={
        "owner": "newsetl",
        "retries": 2,
        "retry_delay": _retry_delay(),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": _task_timeout(),  # a hung task is killed (then retried)
    },
    params={
        "sources": Param(None, type=["null", "string"], description="sources.yaml path"),
        "lake": Param(None, type=["null", "string"], description="lake URI"),
        "refetch": Param(False, type="boolean", description="fetch again even if archived"),
    },
)
def news_ingest() -> None:
    @task
    def plan(**context: Any) -> list[Item]:
        """Resolve the interval and configuration, validate sources.yaml: one item per source."""
        from etl.lake import new_attempt
        from etl.records import Interval
        from etl.runner import Run, plan_step

        params = context.get("params") or {}
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if start and end and end > start:
            interval = Interval(start, end)
        else:  # a manual run without a logical date: the last hour complete when it was created
            run_after = getattr(context.get("dag_run"), "run_after", None)
            interval = Interval.last_complete_hour(run_after)
        settings = _step(_settings, params.get("lake"), params.get("sources"))
        _step(Run.open, settings, interval)  # validates the sources file (terminal if bad)
        # one attempt per DAG run: every task of the run stages under it, retries included
        attempt = new_attempt(getattr(context.get("dag_run"), "run_id", None) or "manual")
        base: Base = {
            "attempt": attempt,
            "start": interval.start.isoformat(),
            "end": interval.end.isoformat(),
            "lake": settings.lake,
            "sources": str(settings.sources),
            "refetch": bool(params.get("refetch")),
            "holder": _holder(context),
        }
        # plan_step also stores the interval's seen index once for the run's tasks
        return [{**base, "source": sid} for sid in _leased(base, plan_step)]

    # multiple_outputs=False: a task returning a dict pushes one XCom, not one more per key.
    @task(multiple_outputs=False)
    def discover(item: Item, **context: Any) -> DiscoverItem:
        from etl.runner import discover_step

        result: Discovered = _leased(item, discover_step, item["source"])
        found: DiscoverItem = {**item, **result}
        return _retry_unless_last(found, context)

    @task
    def split(found: list[DiscoverItem]) -> list[DiscoverItem]:
        """One item per chunk of a large source (etl.runner.chunks), one per other source."""
        from etl.runner import split_items

        return split_items(list(found[:]))

    @task(pool="news_http", multiple_outputs=False)
    def fetch(item: DiscoverItem, **context: Any) -> FetchItem:
        from etl.runner import fetch_step

        result: Fetched = _leased(item, fetch_step, item)
        fetched: FetchItem = {**item, **result}
        if fetched.get("mode") == "failed":  # discover used its retries: record, go on
            return fetched
        return _retry_unless_last(fetched, context)

    @task(multiple_outputs=False)
    def process(item: FetchItem) -> ProcessItem:
        from etl.runner import process_step

        result: Processed = _leased(item, process_step, item)
        return {**item, **result}

    @task(multiple_outputs=False)
    def publish(items: list[ProcessItem]) -> PublishItem:
        from etl.runner import publish_step

        items = list(items[:])  # one slice request for the mapped results, not one per item
        result: Published = _leased(items[0], publish_step, items, last=True)
        # the first item's keys ride along (validate reads only the base and the result's)
        return cast("PublishItem", {**items[0], **result})

    @task(outlets=[ARTICLES], multiple_outputs=False)
    def validate(published: PublishItem) -> Validated:
        from airflow.sdk.exceptions import AirflowFailException

        from etl.runner import validate_step

        figures: Validated = _step(validate_step, _run(published))
        if figures.get("status") == "incomplete":
            pending = figures.get("pending") or []
            failed = [f["source"] for f in published.get("failed_sources") or []]
            raise AirflowFailException(
                f"interval {figures['interval']} published INCOMPLETE: {len(pending)} URLs "
                f"pending {pending[:10]}, failed sources {failed}; rerun the interval to fetch them"
            )
        return figures

    # .expand() gives an XComArg that resolves to the list of mapped results at run time; the
    # airflow_mypy outputs plugin types a task's call (``plan()``), not .expand(): hence the cast.
    found = cast("list[DiscoverItem]", discover.expand(item=plan()))
    processed = cast("list[ProcessItem]", process.expand(item=fetch.expand(item=split(found))))
    validate(publish(processed))


news_ingest()
