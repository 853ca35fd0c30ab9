"""The raw zone of one source and interval, and the page index that is its one switch.

``raw/dt=D/source=S/<interval>.pages.jsonl`` (the *index*, JSON lines) is written last and names
everything else, so a reader (replay, publish) follows it and never sees a half-made archive:

* ``{"kind": "archive", "warc": KEY, "fetch_log": KEY, "attempt": ID, "failure": {...}|null}``:
  the WARC holding every response (listings, articles, errors) and the Parquet of the final
  ``fetch_log`` rows; ``failure`` says why the source's discovery failed, if it did;
* page lines (no ``kind``): ``raw_ref`` (``<warc key>#<offset>``), ``url`` and the listing hints;
* ``{"kind": "pending", ...}``: a URL whose failure was transient (timeout, connection error,
  429, 5xx, robots.txt 5xx) and is to be fetched again (``purpose`` ``article`` or ``listing``;
  ``robots`` rows ride along while anything is pending), with ``runs`` (the runs that tried it),
  its fetch_log ``rows`` and, for an article, its ``candidate``.

Writing (:func:`commit`): a merge (retry, rerun) keeps the WARC key and writes old bytes first,
new records after, so the old index's offsets stay valid if a crash comes before the new index;
a refetch writes a new WARC key (``<interval>.<attempt>.warc.gz``), so the old index keeps
pointing at the old file until the new index switches; old keys no index names are deleted after.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from etl.errors import TRANSIENT_KINDS, StoreError
from etl.fetch import FetchLog
from etl.lake import (
    Lake,
    raw_index_key,
    raw_key,
    raw_log_key,
    raw_zone,
    read_table,
    write_table,
)
from etl.records import Interval
from etl.schema import fetch_log_schema

__all__ = [
    "Pending",
    "RawIndex",
    "commit",
    "jsonl",
    "read_index",
    "read_jsonl",
    "read_log",
    "row_of",
]

log = logging.getLogger("etl.runner.rawzone")

_LOG_FIELDS = tuple(f.name for f in fields(FetchLog))


def jsonl(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """JSON lines of ``rows`` (staged candidates): one object a line, UTF-8."""
    return "".join(json.dumps(r, default=str, ensure_ascii=False) + "\n" for r in rows).encode()


def read_jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def is_transient_row(row: FetchLog) -> bool:
    """A row whose failure a later try may not repeat (robots.txt: 5xx, 429 or no answer)."""
    if row.error_class is None:
        return False
    if row.purpose == "robots":
        return row.error_class != "address-blocked" and (
            row.status is None or row.status >= 500 or row.status == 429
        )
    return row.error_class in TRANSIENT_KINDS


def row_dict(row: FetchLog) -> dict[str, Any]:
    d = asdict(row)
    if d["fetched_at"] is not None:
        d["fetched_at"] = d["fetched_at"].isoformat()
    return d


def row_of(d: dict[str, Any]) -> FetchLog:
    values: dict[str, Any] = {k: d.get(k) for k in _LOG_FIELDS}
    when = values.get("fetched_at")
    if isinstance(when, str):
        values["fetched_at"] = datetime.fromisoformat(when)
    return FetchLog(**values)


@dataclass
class Pending:
    """A URL to fetch again (see the module docstring)."""

    url: str
    source: str
    purpose: str  # article | listing | robots
    error_class: str | None
    error: str | None
    runs: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    candidate: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """What the manifest lists."""
        return {
            "url": self.url,
            "source": self.source,
            "purpose": self.purpose,
            "error_class": self.error_class,
            "error": self.error,
            "runs": self.runs,
        }

    def log_rows(self) -> list[FetchLog]:
        return [row_of(r) for r in self.rows]


@dataclass
class RawIndex:
    """One source's raw zone for an interval, as its index says."""

    warc: str
    fetch_log: str | None
    attempt: str | None = None
    failure: dict[str, Any] | None = None
    pages: list[dict[str, Any]] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        head = {
            "kind": "archive",
            "warc": self.warc,
            "fetch_log": self.fetch_log,
            "attempt": self.attempt,
            "failure": self.failure,
        }
        lines = [head, *self.pages, *({"kind": "pending", **asdict(p)} for p in self.pending)]
        return "".join(
            json.dumps(x, default=str, ensure_ascii=False) + "\n" for x in lines
        ).encode()

    @classmethod
    def from_bytes(
        cls, data: bytes, source_id: str, interval: Interval, chunk: str | None = None
    ) -> RawIndex:
        warc = raw_key(source_id, interval, chunk)  # an index from before the header line
        index = cls(warc, raw_log_key(warc))
        for line in data.decode("utf-8").splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            kind = entry.pop("kind", None)
            if kind == "archive":
                index.warc, index.fetch_log = entry["warc"], entry.get("fetch_log")
                index.attempt, index.failure = entry.get("attempt"), entry.get("failure")
            elif kind == "pending":
                index.pending.append(Pending(**entry))
            elif kind is None:
                index.pages.append(entry)
        return index

    @property
    def retry(self) -> list[Pending]:
        """Pending entries a later run fetches again (robots rows are not fetched by themselves)."""
        return [p for p in self.pending if p.purpose != "robots"]


def read_index(
    lake: Lake,
    source_id: str,
    interval: Interval,
    *,
    lenient: bool = False,
    chunk: str | None = None,
) -> RawIndex | None:
    """The index (of one ``chunk``'s zone, when given), ``None`` if there is none (or,
    ``lenient``, if it cannot be read)."""
    key = raw_index_key(source_id, interval, chunk)
    if not lake.exists(key):
        return None
    if lenient:
        try:
            return read_index(lake, source_id, interval, chunk=chunk)
        except StoreError as exc:
            log.warning("%s; rebuilding it", exc)
            return None
    try:
        return RawIndex.from_bytes(lake.get_bytes(key), source_id, interval, chunk)
    except (ValueError, TypeError, KeyError) as exc:  # JSON errors are ValueErrors
        raise StoreError(key, f"unreadable raw index ({exc}): --refetch rebuilds it") from None


def read_log(lake: Lake, index: RawIndex) -> list[FetchLog]:
    """The final fetch_log rows of a raw zone (pending rows are in the index)."""
    if not index.fetch_log or not lake.exists(index.fetch_log):
        return []
    table = read_table(lake, index.fetch_log, schema=fetch_log_schema())
    return [FetchLog(**{k: v for k, v in r.items() if k != "dt"}) for r in table.to_pylist()]


def commit(
    lake: Lake,
    source_id: str,
    interval: Interval,
    index: RawIndex,
    *,
    warc: Path,
    rows: list[FetchLog],
    old: RawIndex | None,
    chunk: str | None = None,
) -> None:
    """Write the WARC, then the fetch log, then the index (the switch); then drop old keys.

    Without ``chunk`` the old keys are everything under ``<interval>.`` (chunk zones an earlier
    chunked run left included); with it, those of that chunk's zone only."""
    lake.put_file(index.warc, warc)
    if index.fetch_log is not None:
        table = pa.Table.from_pylist(
            [r.as_row(interval.dt) for r in rows], schema=fetch_log_schema()
        )
        write_table(lake, index.fetch_log, table)
    lake.put_bytes(raw_index_key(source_id, interval, chunk), index.to_bytes())
    keep = {index.warc, index.fetch_log, raw_index_key(source_id, interval, chunk)}
    stem = raw_zone(source_id, interval, chunk)
    stale = [k for k in lake.list(stem + ".") if k not in keep]
    if old is not None:
        stale += [k for k in (old.warc, old.fetch_log) if k and k not in keep and k not in stale]
    if stale:
        lake.delete(stale)
        log.info("raw zone %s %s: removed %s", source_id, interval.id, stale)
