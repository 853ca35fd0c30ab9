"""The manifest of a published interval (``_runs/<interval>.json``, written last) and its files."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from etl.lake.base import Lake
from etl.lake.layout import manifest_key
from etl.records import Interval

__all__ = ["FileInfo", "Manifest", "read_manifest"]


@dataclass(frozen=True)
class FileInfo:
    key: str
    rows: int
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """What one publish wrote; stored as ``_runs/<interval>.json``."""

    interval: str
    dt: str
    start: str
    end: str
    schema_version: int
    articles: int
    shards: tuple[FileInfo, ...]
    fetch_log: FileInfo | None
    deleted: tuple[str, ...]
    started_at: str
    finished_at: str
    extra: dict[str, Any] = field(default_factory=dict)
    # complete | incomplete: whether URLs of the interval are still pending (a retry or a
    # rerun fetches them); ``pending``: {url, source, purpose, error_class, error, runs};
    # ``failed_sources``: {source, error, kind, transient}; ``quality``: the gate's figures
    status: str = "complete"
    pending: tuple[dict[str, Any], ...] = ()
    failed_sources: tuple[dict[str, Any], ...] = ()
    quality: dict[str, Any] = field(default_factory=dict)
    attempt: str | None = None
    index: FileInfo | None = None  # _index/dt=<dt>/<interval>.parquet (etl.lake.keyindex)

    @property
    def key(self) -> str:
        return manifest_key(self.interval)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str) + "\n"


def read_manifest(lake: Lake, interval: Interval) -> dict[str, Any] | None:
    """The stored manifest of an interval as a dict, or None if it was never published."""
    key = manifest_key(interval.id)
    if not lake.exists(key):
        return None
    data: dict[str, Any] = json.loads(lake.get_bytes(key))
    return data
