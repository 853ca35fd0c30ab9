"""The fetch step: a source's candidates (or just its pending URLs) into its raw zone.

Called by :func:`etl.runner.interval.fetch_step`. Three cases, decided from the raw zone's index
(:mod:`etl.runner.rawzone`) and the run:

* no index yet, or ``--refetch`` by another attempt than the index's: a *fresh* archive;
* an index with pending URLs (a retry of the task, or a rerun): only the pending URLs, plus any
  staged candidate the index does not know yet, are fetched and *merged* into the archive (old
  WARC bytes first, so every old ``raw_ref`` stays valid; pages and rows appended);
* a failed discovery (mode ``failed``): the listing's rows are archived; a transient failure is a
  pending ``listing`` entry (the next run discovers the source again).

A URL failing transiently again gets one more ``run``; at ``fetch.max_attempts_across_runs`` its
last row becomes final (terminal, attempts summed) and it is pending no more. The step never
raises for a pending URL: its result says ``status: incomplete`` and which URLs; the caller
decides (the DAG raises to have Airflow retry, ``newsetl run`` publishes and exits non-zero).
"""

from __future__ import annotations

import io
import logging
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl.errors import EtlError
from etl.fetch import Fetcher, FetchLog, FetchPolicy, WarcArchive, read_record
from etl.lake import attempt_warc_key, raw_key, raw_log_key, read_table
from etl.records import Candidate, Hints
from etl.runner.rawzone import (
    Pending,
    RawIndex,
    commit,
    is_transient_row,
    read_index,
    read_log,
    row_dict,
)
from etl.runner.results import Discovered, Fetched
from etl.schema import fetch_log_schema
from etl.urls import origin
from etl.workdir import workdir

if TYPE_CHECKING:
    from etl.runner.run import Run

log = logging.getLogger("etl.runner.fetch")


def candidate_of(row: dict[str, Any]) -> Candidate:
    listed = row.get("listed_at")
    return Candidate(
        **{
            **row,
            "listed_at": datetime.fromisoformat(listed) if isinstance(listed, str) else listed,
            "authors_hint": tuple(row.get("authors_hint") or ()),
        }
    )


def shift(raw_ref: str | None, by: int) -> str | None:
    """``raw_ref`` of a record moved ``by`` bytes later in its file (files are concatenated)."""
    if raw_ref is None or not by:
        return raw_ref
    key, _, offset = raw_ref.rpartition("#")
    return f"{key}#{int(offset) + by}"


def _rekey(row: FetchLog, key: str, by: int) -> FetchLog:
    """A row whose raw_ref pointed into a staged file, pointing into the raw WARC ``key``."""
    if row.raw_ref is None:
        return row
    _, _, offset = row.raw_ref.rpartition("#")
    return replace(row, raw_ref=f"{key}#{int(offset) + by}")


def _gave_up(row: FetchLog, runs: int, earlier: list[FetchLog]) -> FetchLog:
    tries = row.attempts + sum(r.attempts for r in earlier)
    note = f" (transient; gave up after {runs} runs, {tries} attempts)"
    return replace(row, attempts=tries, error=(row.error or row.error_class or "failed") + note)


def _remember_robots(fetcher: Fetcher, rows: list[FetchLog], warc: bytes) -> None:
    """Seed the fetcher with the robots.txt answers already archived for this interval, so a
    retry asks only for its pending URLs (a robots.txt that failed is asked again)."""
    for r in rows:
        if r.purpose != "robots" or r.error_class is not None or not r.raw_ref or not r.status:
            continue
        if 400 <= r.status < 500:
            fetcher.remember_robots(origin(r.url), None)
        elif 200 <= r.status < 300:
            try:
                page = read_record(io.BytesIO(warc), int(r.raw_ref.rpartition("#")[2]))
            except (EtlError, ValueError, OSError):
                continue
            fetcher.remember_robots(origin(r.url), page.body)


def fetch_into_raw(run: Run, discovered: Discovered, staged: list[Candidate]) -> Fetched:
    """The raw zone of ``discovered['source']`` after this step (see the module docstring)."""
    sid, mode = discovered["source"], discovered["mode"]
    # a chunk of a source (etl.runner.chunks) has a zone of its own; only the head chunk archives
    # the source's listings
    chunk, head_chunk = discovered.get("chunk"), discovered.get("head", True)
    lake, interval = run.lake, run.interval
    budget = run.sources.fetch.max_attempts_across_runs
    old = read_index(lake, sid, interval, lenient=run.refetch, chunk=chunk)
    fresh = old is None or (run.refetch and old.attempt != run.attempt)
    base = None if fresh else old
    if base is not None:
        warc_key = base.warc
    elif old is None:
        warc_key = raw_key(sid, interval, chunk)
    else:  # a refetch: a new key, so the old index stays right until the new one replaces it
        warc_key = attempt_warc_key(sid, interval, run.attempt, chunk)
    prior = {p.url: p for p in base.pending} if base else {}
    known = {str(p["url"]) for p in base.pages} if base else set()
    base_rows = read_log(lake, base) if base else []
    known |= {r.url for r in base_rows if r.purpose == "article"}
    retry = [candidate_of(p.candidate) for p in prior.values() if p.candidate is not None]
    to_fetch = retry + [c for c in staged if c.url not in known and c.url not in prior]
    retried = {c.url for c in to_fetch}
    # rows of URLs fetched again are replaced by this step's rows (a crash between the log and
    # the index of an earlier merge must not leave two final rows for one URL)
    base_rows = [r for r in base_rows if not (r.purpose == "article" and r.url in retried)]

    head_key = run.staging("discover", f"{sid}.warc.gz")
    head_log = run.staging("fetch_log", f"{sid}-discover.parquet")
    # an earlier try of this very attempt committed already: its listings are in the archive
    again = base is not None and base.attempt == run.attempt
    listed = mode in ("fetch", "failed") and not again and head_chunk
    head = lake.get_bytes(head_key) if listed and lake.exists(head_key) else b""
    discover_rows: list[FetchLog] = []
    if listed and lake.exists(head_log):
        table = read_table(lake, head_log, schema=fetch_log_schema())
        discover_rows = [
            FetchLog(**{k: v for k, v in r.items() if k != "dt"}) for r in table.to_pylist()
        ]

    by_url = {c.url: c for c in to_fetch}
    pages: list[dict[str, Any]] = []
    results: list[tuple[FetchLog, Candidate | None, bool]] = []  # row, candidate, transient
    robots_rows: list[FetchLog] = []
    with workdir("fetch") as tmp:
        base_bytes = lake.get_bytes(base.warc) if base and lake.exists(base.warc) else b""
        before = len(base_bytes) + len(head)
        with WarcArchive(interval, Path(tmp)) as archive, run.client() as client:
            fetcher = Fetcher(
                client, FetchPolicy.from_config(run.sources), archive=archive, resolver=run.resolver
            )
            fetcher.run_deadline = run.deadline
            _remember_robots(fetcher, base_rows, base_bytes)
            for result in fetcher.fetch_all(to_fetch) if to_fetch else ():
                cand = result.candidate or by_url.get(result.log.url)
                row = _rekey(result.log, warc_key, before)
                if result.page is not None and result.page.raw_ref is not None:
                    pages.append(
                        {
                            "raw_ref": row.raw_ref,
                            "url": result.page.url,
                            **Hints.of(cand).entry(),
                        }
                    )
                transient = result.error is not None and result.error.transient
                results.append((row, cand, transient))
            robots_rows = [
                _rekey(r, warc_key, before) for r in fetcher.log if r.purpose == "robots"
            ]
            files = archive.files()
        final = Path(tmp) / "raw.warc.gz"
        with final.open("wb") as out:
            out.write(base_bytes)
            out.write(head)
            for _, path in files:
                out.write(path.read_bytes())
        discover_rows = [_rekey(r, warc_key, len(base_bytes)) for r in discover_rows]

        rows: list[FetchLog] = list(base_rows)
        pending: list[Pending] = []
        for row, cand, transient in results:
            if not transient:
                rows.append(row)
                continue
            p = prior.get(row.url)
            # a URL the run deadline kept from being asked did not use a run of its budget
            runs = (p.runs if p else 0) + (row.error_class != "deadline")
            if runs >= budget:
                rows.append(_gave_up(row, runs, p.log_rows() if p else []))
                continue
            pending.append(
                Pending(row.url, sid, "article", row.error_class, row.error, runs,
                        [row_dict(row)], asdict(cand) if cand else None)
            )  # fmt: skip
        failure = None
        listing_rows = [r for r in discover_rows if r.purpose != "robots"]
        if (mode == "failed" and again) or (mode == "resume" and base is not None):
            failure = base.failure if base is not None else None
            pending += [p for p in base.pending if p.purpose == "listing"] if base else []
        elif mode == "failed":
            failure = {k: discovered.get(k) for k in ("error", "transient", "kind")}
            failure["transient"] = bool(failure["transient"])
            if failure["transient"]:
                p = next((x for x in prior.values() if x.purpose == "listing"), None)
                runs = (p.runs if p else 0) + 1
                failing = [r for r in listing_rows if is_transient_row(r)] or listing_rows
                if runs >= budget:
                    last = failing[-1] if failing else None
                    listing_rows = [r for r in listing_rows if r is not last]
                    if last is not None:
                        listing_rows.append(_gave_up(last, runs, p.log_rows() if p else []))
                    failure["transient"] = False
                    failure["error"] = f"{failure['error']} (gave up after {runs} runs)"
                else:
                    listing_rows = [r for r in listing_rows if r not in failing]
                    url = discovered.get("listing") or (failing[0].url if failing else sid)
                    last = failing[-1] if failing else None
                    pending.append(
                        Pending(url, sid, "listing", last.error_class if last else None,
                                str(discovered.get("error")), runs, [row_dict(r) for r in failing])
                    )  # fmt: skip
        rows += listing_rows
        robots_rows += [r for r in discover_rows if r.purpose == "robots"]
        waiting_any = any(p.purpose != "robots" for p in pending)
        for r in robots_rows:
            if waiting_any and is_transient_row(r):  # replaced by the next try's robots row
                pending.append(
                    Pending(r.url, sid, "robots", r.error_class, r.error, 0, [row_dict(r)])
                )
            else:
                rows.append(r)
        old_pages = list(base.pages) if base else []
        seen_pages = {str(p["url"]) for p in old_pages}
        index = RawIndex(
            warc=warc_key,
            fetch_log=raw_log_key(warc_key),
            attempt=run.attempt,
            failure=failure,
            pages=old_pages + [p for p in pages if str(p["url"]) not in seen_pages],
            pending=pending,
        )
        commit(lake, sid, interval, index, warc=final, rows=rows, old=old, chunk=chunk)
    if head_chunk:
        lake.delete([k for k in (head_key, head_log) if lake.exists(k)])
    waiting = index.retry
    if waiting:
        log.warning(
            "source %s %s: %d URLs pending (transient failures): %s",
            sid,
            interval.id,
            len(waiting),
            ", ".join(p.url for p in waiting[:5]),
        )
    return {
        **discovered,
        "pages": len(index.pages),
        "fetched": len(pages),
        "fetch_failed": sum(1 for row, _, _ in results if row.error_class is not None),
        "pending": [p.url for p in waiting],
        "status": "incomplete" if waiting else "complete",
    }
