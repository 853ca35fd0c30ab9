"""The seen index's cache: each key-index file's ids (:class:`Part`) and each compaction
pointer, by object key and version, one :class:`Cache` per lake URI in a process
(:func:`cache_of`; :func:`clear_seen_cache` empties them). Read by :mod:`etl.lake.seen`."""

from __future__ import annotations

import threading
from typing import Any, cast

import pyarrow as pa

from etl.lake.base import Lake

__all__ = ["MAX_CACHED_IDS", "Cache", "Part", "cache_of", "clear_seen_cache"]

# The cache forgets everything past this many ids (a long-lived process over a big lake).
MAX_CACHED_IDS = 20_000_000
_EMPTY: pa.Array[Any] = pa.array([], pa.string())


class Part:
    """One file's share of the seen index: its ids, and (on first need: 25 us a URL) the ids of
    its rows' URLs, kept until then as the distinct URLs."""

    __slots__ = ("_url_ids", "_urls", "ids")

    def __init__(
        self,
        ids: pa.Array[Any],
        *,
        urls: pa.Array[Any] | None = None,
        url_ids: pa.Array[Any] | None = None,
    ) -> None:
        self.ids = ids
        self._urls = urls
        self._url_ids = url_ids if url_ids is not None or urls is not None else _EMPTY

    @property
    def size(self) -> int:
        extra = self._url_ids if self._url_ids is not None else self._urls
        return len(self.ids) + (len(extra) if extra is not None else 0)

    def url_ids(self) -> pa.Array[Any]:
        """The article ids of the rows' URLs that are not row ids (computed once)."""
        if self._url_ids is None:
            from etl.urls import article_id

            found: set[str] = set()
            urls = self._urls if self._urls is not None else _EMPTY
            for url in cast(list[str], urls.to_pylist()):
                try:
                    found.add(article_id(url))
                except ValueError:  # no http(s) URL: nothing a listing could name
                    continue
            found -= set(cast(list[str], self.ids.to_pylist()))
            self._url_ids, self._urls = pa.array(sorted(found), pa.string()), None
        return self._url_ids


class Cache:
    """Parts and compaction pointers of one lake, by ``(key, version)`` (one per lake URI)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.parts: dict[tuple[str, str], Part] = {}
        self.pointers: dict[tuple[str, str], dict[str, Any]] = {}
        self.sizes: dict[tuple[str, str], int] = {}
        self.ids = 0  # ids (and URLs) held by parts, as counted when cached

    def put(self, key: str, version: str, part: Part) -> None:
        with self.lock:
            if (key, version) in self.parts:
                return
            if self.ids + part.size > MAX_CACHED_IDS:
                self.parts.clear()
                self.sizes.clear()
                self.ids = 0
            self.parts[(key, version)] = part
            self.sizes[(key, version)] = part.size
            self.ids += part.size

    def forget(self, dt: str, current: dict[str, str]) -> None:
        """Drop the cached files of partition ``dt`` other than ``current`` (key -> version)."""
        with self.lock:
            for k, v in list(self.parts):
                if k.split("/", 2)[1:2] == [f"dt={dt}"] and current.get(k) != v:
                    del self.parts[(k, v)]
                    self.ids -= self.sizes.pop((k, v))


_CACHES: dict[str, Cache] = {}
_CACHES_LOCK = threading.Lock()


def cache_of(lake: Lake) -> Cache:
    with _CACHES_LOCK:
        return _CACHES.setdefault(lake.uri, Cache())


def clear_seen_cache() -> None:
    """Forget every cached part (tests; a process that wants a cold read)."""
    with _CACHES_LOCK:
        _CACHES.clear()
