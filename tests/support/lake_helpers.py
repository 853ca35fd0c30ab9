"""Test helpers around lakes (shared by the store and runner tests)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class RecordingLake:
    """A lake that records its writes and deletes in order (reads pass through).

    ``ops`` holds ``("put", key)`` per object written and ``("delete", key)`` per key deleted;
    ``calls`` holds ``("delete", (keys...))`` per delete call, to see how deletes were batched.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.ops: list[tuple[str, str]] = []
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.ops.append(("put", key))
        self.calls.append(("put", key))
        self.inner.put_bytes(key, data)

    def put_file(self, key: str, path: Any) -> None:
        self.ops.append(("put", key))
        self.calls.append(("put", key))
        self.inner.put_file(key, path)

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        self.ops += [("delete", k) for k in keys]
        self.calls.append(("delete", tuple(keys)))
        self.inner.delete(keys)
