"""Every lake key, built in one place (the layout of DESIGN.md; keys never change meaning).

Published (readers' contract)::

    articles/dt=D/<interval>-NNN.parquet      article shards (group compact-G: compacted)
    fetch_log/dt=D/<interval>.parquet         one row per URL tried
    raw/dt=D/source=S/<interval>.warc.gz      raw archive (+ .pages.jsonl index, .fetch_log.parquet,
                                              .<attempt>.warc.gz of a resumed attempt; a chunked
                                              source: .chunk-<id>.* zones and .chunks.json)
    _runs/<interval>.json                     the manifest: the interval's one switch

Internal: ``_index/dt=D/<group>.parquet`` (key columns per article group), ``_compact/dt=D.json``
(the day's compaction pointer), ``_leases/`` (interval and publish leases), ``_staging/<interval>/
<attempt>/`` (work in progress), ``_quarantine/<interval>/<attempt>/`` (rows a failed gate held
back), ``_state/validators/<source>.json`` (conditional-GET validators of listing documents).
"""

from __future__ import annotations

import re

from etl.records import Interval

__all__ = [
    "ARTICLE_KEY",
    "COMPACT_PREFIX",
    "INDEX_KEY",
    "LEASE_PREFIX",
    "MANIFEST_KEY",
    "POINTER_KEY",
    "PUBLISH_LEASE_KEY",
    "STAGING_PREFIX",
    "article_key",
    "articles_prefix",
    "attempt_warc_key",
    "fetch_log_key",
    "index_key",
    "index_prefix",
    "interval_lease_key",
    "manifest_key",
    "pointer_key",
    "quarantine_prefix",
    "raw_chunks_key",
    "raw_index_key",
    "raw_key",
    "raw_log_key",
    "raw_zone",
    "staging_key",
    "staging_prefix",
    "validators_key",
]

ARTICLE_KEY = re.compile(r"^articles/dt=([^/]+)/([^/._][^/]*)-\d{3,}\.parquet$")
"""An article shard key: ``(dt, group)``; ``group`` is an interval id or ``compact-G``."""
INDEX_KEY = re.compile(r"^_index/dt=([^/]+)/([^/._][^/]*)\.parquet$")
POINTER_KEY = re.compile(r"^_compact/dt=([^/]+)\.json$")
MANIFEST_KEY = re.compile(r"^_runs/(\d{4})(\d{2})(\d{2})T[^/]*\.json$")
COMPACT_PREFIX = "compact-"  # the group of a compacted day's shards
LEASE_PREFIX = "_leases/"
PUBLISH_LEASE_KEY = "_leases/publish.json"
STAGING_PREFIX = "_staging/"


def articles_prefix(dt: str) -> str:
    return f"articles/dt={dt}/"


def article_key(dt: str, group: str, shard: int) -> str:
    return f"{articles_prefix(dt)}{group}-{shard:03d}.parquet"


def fetch_log_key(dt: str, interval_id: str) -> str:
    return f"fetch_log/dt={dt}/{interval_id}.parquet"


def manifest_key(interval_id: str) -> str:
    return f"_runs/{interval_id}.json"


def raw_zone(source_id: str, interval: Interval, chunk: str | None = None) -> str:
    """The stem every key of a source's raw zone starts with: ``raw/dt=D/source=S/<interval>``,
    or ``….chunk-<id>`` for the zone of one chunk of a chunked source (etl.runner.chunks)."""
    stem = f"raw/dt={interval.dt}/source={source_id}/{interval.id}"
    return f"{stem}.chunk-{chunk}" if chunk else stem


def raw_key(source_id: str, interval: Interval, chunk: str | None = None) -> str:
    """Lake key of the raw archive of ``source_id`` (or one ``chunk`` of it) for ``interval``."""
    return raw_zone(source_id, interval, chunk) + ".warc.gz"


def raw_index_key(source_id: str, interval: Interval, chunk: str | None = None) -> str:
    """The raw zone's page index of a source's interval (the switch naming its WARC)."""
    return raw_zone(source_id, interval, chunk) + ".pages.jsonl"


def raw_chunks_key(source_id: str, interval: Interval) -> str:
    """A chunked source's list of chunk zones (written by publish: the switch naming them)."""
    return raw_zone(source_id, interval) + ".chunks.json"


def raw_log_key(warc_key: str) -> str:
    """The fetch log kept next to a raw WARC."""
    return warc_key.removesuffix(".warc.gz") + ".fetch_log.parquet"


def attempt_warc_key(
    source_id: str, interval: Interval, attempt: str, chunk: str | None = None
) -> str:
    """The WARC of one attempt's resumed fetches (merged into the raw zone by its index)."""
    return raw_zone(source_id, interval, chunk) + f".{attempt}.warc.gz"


def index_prefix(dt: str) -> str:
    return f"_index/dt={dt}/"


def index_key(dt: str, group: str) -> str:
    return f"{index_prefix(dt)}{group}.parquet"


def pointer_key(dt: str) -> str:
    return f"_compact/dt={dt}.json"


def interval_lease_key(interval_id: str) -> str:
    return f"{LEASE_PREFIX}interval/{interval_id}.json"


def staging_prefix(interval: Interval, attempt: str | None = None) -> str:
    """``_staging/<interval>/`` (every attempt's work) or ``_staging/<interval>/<attempt>/``."""
    return "/".join(("_staging", interval.id, *((attempt,) if attempt else ()))) + "/"


def staging_key(interval: Interval, attempt: str, *parts: str) -> str:
    """A key under an attempt's staging: ``_staging/<interval>/<attempt>/<parts>``."""
    return "/".join(("_staging", interval.id, attempt, *parts))


def quarantine_prefix(interval: Interval, attempt: str) -> str:
    return f"_quarantine/{interval.id}/{attempt}/"


def validators_key(source_id: str) -> str:
    """The conditional-GET validators of a source's listing documents."""
    return f"_state/validators/{source_id}.json"
