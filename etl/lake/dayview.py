"""Which article files readers see: the hourly files, or a day's compacted files in their place.

Entry point :func:`visible_article_keys`. A day partition holds hourly files
(``articles/dt=D/<interval>-<shard>.parquet``) until ``newsetl compact`` merges them into
``articles/dt=D/compact-<generation>-<n>.parquet``; the switch is one small object, the day's
*compaction pointer* ``_compact/dt=D.json``::

    {"dt": D, "generation": G, "files": [compacted keys], "index": "_index/dt=D/compact-G.parquet",
     "replaced": {interval id: [its hourly keys], ...}, ...}

A reader that honours it (``newsetl query``, the seen index, ``read_articles``) sees, per day,
the ``files`` of the pointer's generation plus the hourly files of intervals *not* in
``replaced``; without a pointer, the hourly files. ``compact-*`` files of any other generation
(a compaction in progress, or one that crashed before its switch) are never seen. So the pointer
put is the one atomic step: before it readers see exactly the hourly rows, after it exactly the
compacted ones (plus intervals published after the compaction), never a row twice or missing.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

from etl.errors import StoreError
from etl.lake.base import Lake
from etl.lake.layout import ARTICLE_KEY, COMPACT_PREFIX, POINTER_KEY, articles_prefix, pointer_key

log = logging.getLogger("etl.lake.dayview")


def split_key(key: str) -> tuple[str, str] | None:
    """``(dt, group)`` of an article file key; ``group`` is the interval id or ``compact-G``."""
    m = ARTICLE_KEY.match(key)
    return (m.group(1), m.group(2)) if m else None


def read_pointer(lake: Lake, dt: str) -> dict[str, Any] | None:
    """The day's compaction pointer, or None if the day was never compacted."""
    try:
        data: Any = json.loads(lake.get_bytes(pointer_key(dt)))
    except StoreError as exc:
        if exc.kind == "not-found":
            return None
        raise
    except ValueError as exc:
        raise StoreError(pointer_key(dt), f"not a compaction pointer: {exc}") from None
    files = data.get("files") if isinstance(data, dict) else None
    replaced = data.get("replaced", {}) if isinstance(data, dict) else None
    if not (isinstance(files, list) and all(isinstance(f, str) for f in files)
            and isinstance(replaced, dict)):  # fmt: skip
        raise StoreError(pointer_key(dt), "not a compaction pointer: it needs a list of 'files' "
                         "and a 'replaced' object")  # fmt: skip
    return cast(dict[str, Any], data)


def visible_in_day(keys: list[str], pointer: dict[str, Any] | None) -> list[str]:
    """The keys of one day's article files a reader sees, given the day's pointer (read before
    ``keys`` were listed). A file the pointer names that is not in ``keys`` is an error: the
    day would read short (a compaction of it would drop those rows for good)."""
    current = set(pointer["files"]) if pointer else set()
    replaced = set(pointer.get("replaced", {})) if pointer else set()
    if missing := sorted(current - set(keys)):
        where = pointer_key(str(pointer.get("dt", "?"))) if pointer else "?"
        raise StoreError(missing[0], f"named by {where} but missing ({len(missing)} of its "
                         f"{len(current)} files)", transient=True)  # fmt: skip
    seen = []
    for key in keys:
        parts = split_key(key)
        if parts is None:
            continue
        group = parts[1]
        if group.startswith(COMPACT_PREFIX):
            if key in current:
                seen.append(key)
        elif group not in replaced:
            seen.append(key)
    return sorted(seen)


def visible_article_keys(
    lake: Lake, dt: str | None = None, *, listed: list[str] | None = None
) -> list[str]:
    """Article file keys readers see, in one ``dt`` partition or the whole lake.

    ``listed``: the keys under ``articles/dt=D/`` (or ``articles/``) if the caller listed them
    already (with sizes, say); otherwise they are listed here.
    """
    if dt is not None:
        keys = lake.list(articles_prefix(dt)) if listed is None else listed
        return _day_view(lake, dt, keys, read_pointer(lake, dt))
    keys = lake.list("articles/") if listed is None else listed
    days = {m.group(1) for k in lake.list("_compact/") if (m := POINTER_KEY.match(k))}
    by_day: dict[str, list[str]] = {}
    for key in keys:
        parts = split_key(key)
        if parts is not None:
            by_day.setdefault(parts[0], []).append(key)
    visible: list[str] = []
    for day in sorted(set(by_day) | days):  # a compacted day whose files are all gone too
        day_keys = by_day.get(day, [])
        visible += _day_view(lake, day, day_keys, read_pointer(lake, day) if day in days else None)
    return visible


LOOKS = 3  # listings of a day whose pointer names files the listing lacks


def _day_view(lake: Lake, dt: str, keys: list[str], pointer: dict[str, Any] | None) -> list[str]:
    """:func:`visible_in_day`, checked: every file the pointer names must be in the listing.
    One may be missing because a compaction switched between the listing and the pointer read
    (its files were written after the listing): the day is listed and its pointer read again.
    Still missing after :data:`LOOKS` looks, the pointer names a lost file: an error naming it,
    never a day read short."""
    for _ in range(LOOKS - 1):
        if pointer is None or set(pointer["files"]) <= set(keys):
            break
        log.info("day %s: its compaction pointer names files not listed yet: listing again", dt)
        keys = lake.list(articles_prefix(dt))
        pointer = read_pointer(lake, dt)
    return visible_in_day(keys, pointer)


def release_interval(lake: Lake, dt: str, interval_id: str) -> bool:
    """After an interval of a compacted day is published again (a rerun, a backfill): make its
    new hourly files visible by taking it out of the pointer's ``replaced``. Its rows that were
    compacted stay in the compacted files; the rerun's seen index found them there, so the new
    files hold only articles the compacted files do not. Returns whether the pointer changed."""
    pointer = read_pointer(lake, dt)
    if pointer is None or interval_id not in pointer.get("replaced", {}):
        return False
    replaced = {k: v for k, v in pointer["replaced"].items() if k != interval_id}
    lake.put_bytes(pointer_key(dt), pointer_json({**pointer, "replaced": replaced}))
    log.info("compacted day %s: interval %s published again, its new files are visible", dt,
             interval_id)  # fmt: skip
    return True


def pointer_json(pointer: dict[str, Any]) -> bytes:
    return (json.dumps(pointer, indent=2, sort_keys=True) + "\n").encode("utf-8")
