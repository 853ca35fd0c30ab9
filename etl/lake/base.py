"""The lake as a small key/value interface (:class:`Lake`): a local folder or an S3 bucket.

Opened by :func:`~etl.lake.open_lake`. Keys are relative, ``/``-separated
(``articles/dt=.../x.parquet``).
Every ``put`` is atomic: a reader sees the old object or the new one, never a partial one.
Locally that is a temp file in the target folder named ``.<name>.<random>.tmp`` (a leading
dot: Hive, Spark, DuckDB globs on ``*.parquet`` and pyarrow datasets all skip it), fsynced, then
``os.replace``d over the target. On S3 a PUT (or a completed multipart upload) is atomic by
itself. ``list`` never returns in-progress temp files.

Conditional writes (what leases and read-merge-write state need): ``put_if_absent`` creates an
object only if its key is free, ``put_if_match`` replaces it only if it is still the version
read (its *tag*: the ETag on S3, a content hash locally), ``delete_if_match`` deletes it only
then. They return the new tag, or ``None`` / ``False`` when the condition failed. Locally they
are serialized by an exclusive ``flock`` on the lake's root folder (held for the few
milliseconds of one operation, across processes and threads), and a create is a link of a
complete temp file (``os.link`` fails if the key exists): never a partial object. On S3 they are
``If-None-Match: *`` and ``If-Match: <etag>`` requests, atomic on the server.
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from etl.errors import StoreError

if TYPE_CHECKING:
    pass

__all__ = ["Lake", "check_key", "update_json_object"]


class Lake(Protocol):
    """What the pipeline needs from storage; implemented by :class:`LocalLake` and S3Lake."""

    @property
    def uri(self) -> str: ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def put_file(self, key: str, path: str | os.PathLike[str]) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def list(self, prefix: str = "") -> builtins.list[str]: ...

    def delete(self, keys: Iterable[str]) -> None: ...

    def exists(self, key: str) -> bool: ...

    def uri_for(self, key: str) -> str: ...

    def list_modified(self, prefix: str = "") -> builtins.list[tuple[str, datetime]]:
        """``list`` with each object's last-modified time (UTC)."""
        ...

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        """The object and its version tag, or None if there is none."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        """Create ``key`` only if no object has it: the new tag, or None if it exists."""
        ...

    def put_if_match(self, key: str, data: bytes, tag: str) -> str | None:
        """Replace ``key`` only if its tag is still ``tag``: the new tag, or None."""
        ...

    def delete_if_match(self, key: str, tag: str) -> bool:
        """Delete ``key`` only if its tag is still ``tag``; False if it changed or is gone."""
        ...


def check_key(key: str) -> str:
    """A key is relative, ``/``-separated, with no empty, ``.`` or ``..`` segment."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise StoreError(key or "(empty key)", "invalid lake key")
    return key


def update_json_object(
    lake: Lake,
    key: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    attempts: int = 50,
) -> dict[str, Any]:
    """Store in the JSON object at ``key`` the entries this run changed from ``before`` to
    ``after`` (set, changed or removed), keeping every other entry as stored *now*: a
    concurrent run's entries are never lost. Read-merge-write under a conditional write,
    retried when another writer got in between. Returns the object as stored."""
    changed = {k: v for k, v in after.items() if k not in before or before[k] != v}
    removed = [k for k in before if k not in after]
    for _ in range(attempts):
        got = lake.get_tagged(key)
        try:
            current: dict[str, Any] = json.loads(got[0]) if got else {}
        except ValueError as exc:
            raise StoreError(lake.uri_for(key), f"not a JSON object: {exc}") from exc
        if not isinstance(current, dict):
            raise StoreError(lake.uri_for(key), "not a JSON object")
        merged = {**current, **changed}
        for k in removed:
            merged.pop(k, None)
        if got is not None and merged == current:
            return current
        data = json.dumps(merged, indent=1, sort_keys=True).encode("utf-8")
        ok = lake.put_if_absent(key, data) if got is None else lake.put_if_match(key, data, got[1])
        if ok is not None:
            return merged
    raise StoreError(
        lake.uri_for(key), f"update lost to concurrent writers {attempts} times", transient=True
    )
