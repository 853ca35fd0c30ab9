"""One interval, step by step: plan → discover → fetch → process → publish → validate.

These are the functions the Airflow tasks call (one step per task, mapped per source) and that
``newsetl run`` calls in a row. Steps talk through the lake, never through memory: each returns
a small JSON-able dict of keys and counts (what travels in XCom), and each can be retried alone.

Per source and interval, raw zone (:mod:`etl.runner.rawzone`) holds the WARC of every response and
its index ``<interval>.pages.jsonl``, the one switch naming the WARC, the fetch log, the pages and
the URLs still *pending* after a transient failure. Work in progress lives under
``_staging/<interval>/<attempt>/`` (:meth:`Run.staging`): each run attempt (a ``newsetl run``
invocation, a DAG run) stages apart and publish reads only its own attempt's files. When the raw
archive of an interval exists and ``refetch`` is off, discover and fetch are skipped and process
*replays* the archive with the current rules (no network), except for pending URLs: those alone
are fetched again (mode ``resume``; a pending listing is discovered again) and merged in.

A source whose discovery fails never sinks the others: the step returns mode ``failed``, the
failure is a fetch_log row, the raw index records it, and the manifest names the source in
``failed_sources`` (a transient failure leaves the interval ``incomplete``: the next try or run
discovers that source again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

from etl.errors import EtlError, FetchTransient, SourceError
from etl.lake import (
    interval_lease,
    new_holder,
)
from etl.runner.chunks import merge_items, part_name, split_items
from etl.runner.discover import discover_step
from etl.runner.fetch import candidate_of, fetch_into_raw
from etl.runner.process import process_step
from etl.runner.publish import publish_step, validate_step
from etl.runner.rawzone import read_jsonl
from etl.runner.results import Discovered, Fetched, IntervalResult, Processed
from etl.runner.run import Run, plan

__all__ = ["fetch_step", "raise_if_incomplete", "run_interval", "source_items", "source_steps"]

log = logging.getLogger("etl.runner.interval")


def fetch_step(run: Run, discovered: Discovered) -> Fetched:
    """Fetch a source's candidates, or only its pending URLs, into its raw zone.

    Never raises for a transient failure of a URL: it archives what succeeded and returns
    ``status: incomplete`` with the ``pending`` URLs (see :func:`raise_if_incomplete`).
    """
    mode = discovered.get("mode")
    if mode not in ("fetch", "resume", "failed"):
        return cast("Fetched", discovered)  # replay, warc: nothing to fetch, no fetch keys
    staged = []
    if mode == "fetch":
        data = run.lake.get_bytes(discovered["candidates"])
        staged = [candidate_of(r) for r in read_jsonl(data)]
    return fetch_into_raw(run, discovered, staged)


def raise_if_incomplete(result: Mapping[str, Any]) -> None:
    """A transient error naming what a step left pending (for Airflow to retry the task)."""
    source = result.get("source", "?")
    if result.get("mode") == "failed" and result.get("transient"):
        raise SourceError(source, str(result.get("error")), kind="listing", transient=True)
    pending = result.get("pending") or []
    if pending:
        shown = ", ".join(pending[:5]) + (
            f" and {len(pending) - 5} more" if len(pending) > 5 else ""
        )
        raise FetchTransient(source, f"{len(pending)} URLs pending: {shown}", kind="pending")


def source_steps(
    run: Run, source_id: str, on_step: Callable[[str], None] | None = None
) -> Processed:
    """discover → fetch → process for one source (its chunks merged into one result); an error
    of this source is its result (mode ``error``), never the end of the run."""
    return merge_items(source_items(run, source_id, on_step))[0]


def source_items(
    run: Run, source_id: str, on_step: Callable[[str], None] | None = None
) -> list[Processed]:
    """discover → fetch → process for one source, chunk after chunk (etl.runner.chunks): one
    result per chunk (one for an unchunked source); an error is the result of its chunk (mode
    ``error``), never the end of the run."""
    step = on_step or (lambda _name: None)
    try:
        step(f"discover {source_id}")
        items = split_items([discover_step(run, source_id)])
    except EtlError as exc:
        return [_error_item(run, source_id, None, exc)]
    results: list[Processed] = []
    for item in items:
        name = part_name(item)
        try:
            step(f"fetch {name}")
            fetched = fetch_step(run, item)
            step(f"process {name}")
            results.append(process_step(run, fetched))
        except EtlError as exc:
            results.append(_error_item(run, source_id, item.get("chunk"), exc))
    return results


def _error_item(run: Run, source_id: str, chunk: str | None, exc: EtlError) -> Processed:
    item: Processed = {
        "source": source_id,
        "interval": run.interval.id,
        "attempt": run.attempt,
        "mode": "error",
        "error": str(exc),
        "transient": exc.transient,
        "rows": 0,
        "failed": 0,
    }
    if chunk:
        item["chunk"] = chunk
    log.error("source %s %s: %s", part_name(item), run.interval.id, exc)
    return item


def run_interval(
    run: Run, *, holder: str | None = None, on_step: Callable[[str], None] | None = None
) -> IntervalResult:
    """All steps in a row (``newsetl run``): every source, then one publish and validate,
    holding the interval's lease throughout (a second run of the interval waits
    ``settings.lease.wait_s``, then fails naming this holder)."""
    holder = holder or new_holder("newsetl-run")
    step = on_step or (lambda _name: None)
    with interval_lease(
        run.lake, run.interval.id, holder=holder, settings=run.settings.lease, attempt=run.attempt
    ):
        processed = [i for sid in plan(run) for i in source_items(run, sid, on_step=step)]
        step("publish")
        published = publish_step(run, processed)
        step("validate")
        sources = merge_items(processed)
        return {**published, "quality": validate_step(run), "sources": sources}
