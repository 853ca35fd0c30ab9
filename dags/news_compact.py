"""
### news_compact — daily compaction of the lake's article files

Each run compacts one finished day: the `dt` partition of the day before the run's data interval
ends. The schedule (03:00 UTC, a real one-day interval) leaves the day's last hourly
`news_ingest` run three hours to finish. `compact` merges the day's hourly article files into a
few files sorted by (`source_id`, `published_at`), with row groups of about 128 MB, links
near-duplicates across sources through `duplicate_of`, and switches readers to the new files in
one step (the day's `_compact/dt=D.json` pointer); see `etl/lake/compact.py`.

* **Idempotent**: rerunning a day with nothing new does nothing; a run killed at any point is
  repaired by the next one (files of an unfinished generation are never read and get deleted).
* **Reruns and backfills** of a compacted day's hours still work: they publish only articles
  the compacted files lack and become visible at once; the next run of this DAG for that day
  (clear it, or trigger with `{"day": "YYYY-MM-DD"}`) folds them in.
* **Params** `lake` overrides `NEWSETL_LAKE`; `day` compacts that day instead. An S3 lake is
  reached through the `news_lake` connection when it exists.
* Emits the `news_articles_compacted` asset.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task

COMPACTED = Asset(name="news_articles_compacted", uri="newsetl://lake/articles/compacted")


def _lake(lake: str | None) -> Any:
    """The lake's settings; an s3:// lake through the ``news_lake`` connection if it exists."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    from etl.config import load_settings
    from etl.lake import CONN_ID

    settings = load_settings(lake=lake)
    if not settings.lake_settings.is_s3:
        return settings.lake_settings
    try:
        c = Connection.get(CONN_ID)
    except AirflowNotFoundException:
        return settings.lake_settings
    conn = {"login": c.login, "password": c.password, "extra": c.extra}
    return load_settings(lake=settings.lake, lake_conn=conn).lake_settings


@dag(
    dag_id="news_compact",
    schedule=CronDataIntervalTimetable("0 3 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2000, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one compaction at a time
    doc_md=__doc__,
    tags=["newsetl", "compaction", "news"],
    default_args={
        "owner": "newsetl",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=15),
        "execution_timeout": timedelta(hours=2),  # a hung compaction is killed, then retried
    },
    params={
        "lake": Param(None, type=["null", "string"], description="lake URI"),
        "day": Param(None, type=["null", "string"], description="YYYY-MM-DD to compact"),
    },
)
def news_compact() -> None:
    @task(outlets=[COMPACTED], multiple_outputs=False)
    def compact(**context: Any) -> dict[str, Any]:
        """Compact the finished day (see the DAG doc); returns the figures, not the rows."""
        from datetime import date

        from airflow.sdk.exceptions import AirflowFailException

        from etl.config import load_settings
        from etl.errors import EtlError
        from etl.lake import compact_day, open_lake

        params = context.get("params") or {}
        day = params.get("day")
        if not day:
            end = context.get("data_interval_end") or context["dag_run"].run_after
            day = (end - timedelta(days=1)).date().isoformat()
        try:
            date.fromisoformat(day)
        except ValueError as exc:
            raise AirflowFailException(f"day {day!r}: {exc}") from exc
        try:  # not under the ValueError above: pyarrow's errors are ValueErrors too (retried)
            lease = load_settings(lake=params.get("lake")).lease
            result = compact_day(open_lake(_lake(params.get("lake"))), day, lease=lease)
        except EtlError as exc:
            if exc.transient:
                raise
            raise AirflowFailException(str(exc)) from exc
        return {k: v for k, v in result.as_dict().items() if k != "deleted"} | {
            "deleted": len(result.deleted)
        }

    compact()


news_compact()
