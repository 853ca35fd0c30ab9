"""The composition root: the steps of one interval (what DAG tasks and ``newsetl run`` call).

The only package that imports every stage: :class:`Run` carries settings, sources, interval and
lake; ``discover_step`` → ``fetch_step`` → ``process_step`` → ``publish_step`` →
``validate_step``; :func:`run_interval` runs them in a row; :func:`ingest` is ``newsetl ingest``.
"""

from typing import TYPE_CHECKING

from etl._lazy import surface

if TYPE_CHECKING:
    from etl.runner.chunks import merge_items as merge_items
    from etl.runner.chunks import split_items as split_items
    from etl.runner.discover import discover_step as discover_step
    from etl.runner.ingestion import RunSummary as RunSummary
    from etl.runner.ingestion import failure_log as failure_log
    from etl.runner.ingestion import ingest as ingest
    from etl.runner.interval import fetch_step as fetch_step
    from etl.runner.interval import raise_if_incomplete as raise_if_incomplete
    from etl.runner.interval import run_interval as run_interval
    from etl.runner.interval import source_items as source_items
    from etl.runner.process import process_step as process_step
    from etl.runner.publish import publish_step as publish_step
    from etl.runner.publish import validate_step as validate_step
    from etl.runner.results import Chunk as Chunk
    from etl.runner.results import Discovered as Discovered
    from etl.runner.results import Fetched as Fetched
    from etl.runner.results import IntervalResult as IntervalResult
    from etl.runner.results import Mode as Mode
    from etl.runner.results import Processed as Processed
    from etl.runner.results import Published as Published
    from etl.runner.results import Status as Status
    from etl.runner.results import Validated as Validated
    from etl.runner.run import Run as Run
    from etl.runner.run import plan as plan
    from etl.runner.run import plan_step as plan_step

__all__, __getattr__, __dir__ = surface(
    __name__,
    {
        "chunks": ("merge_items", "split_items"),
        "discover": ("discover_step",),
        "ingestion": ("RunSummary", "failure_log", "ingest"),
        "interval": ("fetch_step", "raise_if_incomplete", "run_interval", "source_items"),
        "process": ("process_step",),
        "publish": ("publish_step", "validate_step"),
        "results": (
            "Chunk",
            "Discovered",
            "Fetched",
            "IntervalResult",
            "Mode",
            "Processed",
            "Published",
            "Status",
            "Validated",
        ),
        "run": ("Run", "plan", "plan_step"),
    },
)
