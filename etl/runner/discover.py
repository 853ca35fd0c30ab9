"""The discover step: a source's candidates for the interval, or the decision to replay,
resume (only pending URLs) or read a WARC source; a discovery that fails is recorded, not raised.

Called through :func:`etl.runner.interval.discover_step` (re-exported there).
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import pyarrow as pa

from etl.config import SourceConfig
from etl.discover import SourceFiles, discover, plan_warc
from etl.errors import ErrorKind, EtlError, SourceError
from etl.fetch import (
    Fetcher,
    FetchLog,
    FetchPolicy,
    WarcArchive,
    raw_loader,
    validators_from_json,
    validators_to_json,
)
from etl.lake import (
    Lake,
    seen_ids,
    snapshot_ids,
    update_json_object,
    validators_key,
    write_table,
)
from etl.runner.chunks import chunk_size, replay_chunks, split_candidates
from etl.runner.rawzone import jsonl, read_index
from etl.runner.results import Chunk, Discovered, Mode
from etl.schema import fetch_log_schema
from etl.workdir import workdir

if TYPE_CHECKING:
    from etl.runner.run import Run

log = logging.getLogger("etl.runner.discover")


def _put_log(run: Run, key: str, rows: list[FetchLog]) -> None:
    if rows:
        table = pa.Table.from_pylist(
            [r.as_row(run.interval.dt) for r in rows], schema=fetch_log_schema()
        )
        write_table(run.lake, key, table)


def seen_for(run: Run) -> frozenset[str]:
    """The seen index as discovery needs it (ids of listed URLs included), read once per
    :class:`Run`: from the snapshot ``plan`` stored for the DAG run (one GET), else from the
    lake. A few minutes old at most: an article published meanwhile is fetched again and
    dropped by publish, whose seen checks read the lake as it is then."""
    from etl.runner.run import SEEN_SNAPSHOT

    days, iv = run.settings.seen_days, run.interval
    memo, whose = run.memo.get("seen"), (run.lake.uri, iv.id, days)
    if memo is not None and memo[0] == whose:
        return cast("frozenset[str]", memo[1])
    key = run.staging(SEEN_SNAPSHOT)
    seen = snapshot_ids(run.lake, key, days=days, exclude=iv, with_urls=True)
    if seen is None:
        seen = seen_ids(run.lake, days=days, exclude=iv, with_urls=True)
    run.memo["seen"] = (whose, seen)
    return seen


def discover_step(run: Run, source_id: str) -> Discovered:
    """List a source's candidates for the interval (or decide to replay / resume / read a WARC).

    A discovery that fails (any error: a listing over the size cap, a blocked address, a 4xx or
    5xx, a bad port) does not raise: mode ``failed`` with ``error``, ``kind`` and ``transient``;
    its rows are staged for the fetch step, which archives them.
    """
    src = run.source(source_id)
    out: Discovered = {
        "source": source_id,
        "interval": run.interval.id,
        "attempt": run.attempt,
        "mode": "fetch",
    }
    if src.kind == "warc":
        warc: Discovered = {**out, "mode": "warc"}
        if parts := warc_chunks(run, src):
            warc["chunks"] = parts
        return warc
    chunked = replay_chunks(run, source_id)  # a chunked archive: its chunks replay or resume
    if chunked is not None:
        mode: Mode = "resume" if any(c.get("mode") == "resume" for c in chunked) else "replay"
        log.info("source %s %s: chunked raw archive, %s", source_id, run.interval.id, mode)
        return {**out, "mode": mode, "count": 0, "chunks": chunked}
    existing = read_index(run.lake, source_id, run.interval, lenient=run.refetch)
    if existing is not None and (not run.refetch or existing.attempt == run.attempt):
        waiting = existing.retry
        if not waiting:
            log.info("source %s %s: raw archive exists, replaying it", source_id, run.interval.id)
            return {**out, "mode": "replay"}
        if not any(p.purpose == "listing" for p in waiting):
            log.info("source %s %s: %d URLs pending", source_id, run.interval.id, len(waiting))
            return {**out, "mode": "resume", "count": 0}
        log.info("source %s %s: listing pending, discovering again", source_id, run.interval.id)
    seen = seen_for(run)
    state_key = validators_key(source_id)
    validators = (
        validators_from_json(run.lake.get_bytes(state_key)) if run.lake.exists(state_key) else {}
    )
    validators_before = json.loads(validators_to_json(validators))
    policy = FetchPolicy.from_config(run.sources)
    failure: EtlError | None = None
    candidates = []
    with workdir("discover") as tmp:
        with WarcArchive(run.interval, Path(tmp)) as archive, run.client() as client:
            fetcher = Fetcher(client, policy, archive=archive, resolver=run.resolver)
            fetcher.run_deadline = run.deadline  # past it, a listing is pending (`deadline`)
            try:
                candidates = list(
                    discover(
                        src,
                        run.interval,
                        fetcher=fetcher,
                        seen=seen,
                        validators=validators,
                        load_raw=raw_loader(lake_opener(run.lake)),
                        opener=SourceFiles(run.settings.lake_settings),
                    )
                )
            except EtlError as exc:
                failure = exc
            except Exception as exc:  # a malformed URL (a bad port) or a bug: this source only
                kind: ErrorKind = "bad-url" if isinstance(exc, ValueError) else "internal"
                if kind == "internal":
                    log.exception("source %s: discovery failed", source_id)
                where = src.url or src.path
                failure = SourceError(source_id, f"{where}: {type(exc).__name__}: {exc}", kind=kind)
            files = archive.files()
        for _, path in files:
            run.lake.put_file(run.staging("discover", f"{source_id}.warc.gz"), path)
    rows = list(fetcher.log)
    if failure is not None:
        if not any(r.error_class for r in rows if r.purpose != "robots"):
            rows.append(_source_row(src, failure))
        _put_log(run, run.staging("fetch_log", f"{source_id}-discover.parquet"), rows)
        log.warning("source %s %s: discovery failed: %s", source_id, run.interval.id, failure)
        return {
            **out,
            "mode": "failed",
            "count": 0,
            "error": str(failure),
            "kind": failure.kind,
            "transient": failure.transient,
            "listing": src.url or src.path,
        }
    # merged into what is stored now: a concurrent run's entries are kept
    update_json_object(
        run.lake, state_key, validators_before, json.loads(validators_to_json(validators))
    )
    _put_log(run, run.staging("fetch_log", f"{source_id}-discover.parquet"), rows)
    key = run.staging("candidates", f"{source_id}.jsonl")
    listed = [asdict(c) for c in candidates]
    run.lake.put_bytes(key, jsonl(listed))
    log.info("source %s %s: %d candidates", source_id, run.interval.id, len(candidates))
    chunks = split_candidates(run, source_id, listed)  # None: one task for the source
    found: Discovered = {**out, "mode": "fetch", "candidates": key, "count": len(candidates)}
    if chunks:
        found["chunks"] = chunks
    return found


def warc_chunks(run: Run, src: SourceConfig) -> list[Chunk]:
    """The chunks of a chunked WARC source (two at least), else ``[]``. ``max_articles`` is a
    limit over the whole source: such a source is not chunked."""
    size = chunk_size(run.sources, src)
    if size is None or src.max_articles is not None:
        return []
    chunks = plan_warc(src, SourceFiles(run.settings.lake_settings), size)
    log.info("warc source %s %s: %d chunks", src.id, run.interval.id, len(chunks))
    return [cast("Chunk", c) for c in chunks] if len(chunks) > 1 else []


def _source_row(src: SourceConfig, error: EtlError) -> FetchLog:
    """The fetch_log row of a source that failed before any request said why."""
    return FetchLog(
        url=src.url or src.path or src.id,
        source_id=src.id,
        purpose="source",
        status=None,
        error_class=error.kind,
        error=str(error),
        attempts=1,
        bytes=None,
        elapsed_ms=0,
        fetched_at=datetime.now(UTC),
    )


def lake_opener(lake: Lake) -> Any:
    def opener(key: str) -> IO[bytes]:
        return io.BytesIO(lake.get_bytes(key))

    return opener
