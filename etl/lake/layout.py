"""Lake keys: where each kind of object lives (the layout in DESIGN.md; one builder per kind)."""

from __future__ import annotations

from etl.records import Interval

__all__ = ["raw_key"]


def raw_key(source_id: str, interval: Interval) -> str:
    """Lake key of the raw archive of ``source_id`` for ``interval``."""
    return f"raw/dt={interval.dt}/source={source_id}/{interval.id}.warc.gz"
