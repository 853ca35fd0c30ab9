"""The lake as a small key/value interface: a local folder or an S3-compatible bucket.

Entry point :func:`open_lake`. Keys are relative, ``/``-separated (``articles/dt=.../x.parquet``).
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
import fcntl
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

from etl.errors import StoreError
from etl.lake.settings import LakeSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("etl.lake.local")

TEMP_SUFFIX = ".tmp"


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


class LocalLake:
    """A lake in a local folder (created on first write)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    @property
    def uri(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def uri_for(self, key: str) -> str:
        """The object's local path (what DuckDB, pyarrow and pandas accept)."""
        return str(self._path(key))

    def _atomic(
        self, key: str, write: Callable[[IO[bytes]], Any], *, exclusive: bool = False
    ) -> bool:
        """Write a temp file, then rename it over ``key`` (or, ``exclusive``, link it to
        ``key``, which fails if ``key`` exists: returns False then)."""
        target = self._path(key)
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}"
        try:
            for attempt in range(3):  # a concurrent delete may remove a folder left empty
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    fh = tmp.open("xb")
                    break
                except FileNotFoundError:
                    if attempt == 2:
                        raise
            with fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            if exclusive:
                try:
                    os.link(tmp, target)
                except FileExistsError:
                    return False
            else:
                tmp.replace(target)
            _fsync_dir(target.parent)
        except OSError as exc:
            raise StoreError(key, f"write failed: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return True

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive lock of the lake's conditional operations: an ``flock`` on the lake's root
        folder itself (processes and threads alike; no lock file to leave behind)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise StoreError(str(self.root), f"cannot open the lake folder to lock: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(key, f"read failed: {exc}") from exc

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        data = self._read(key)
        return None if data is None else (data, content_tag(data))

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        with self._locked():
            if not self._atomic(key, lambda fh: fh.write(data), exclusive=True):
                return None
        return content_tag(data)

    def put_if_match(self, key: str, data: bytes, tag: str) -> str | None:
        with self._locked():
            current = self._read(key)
            if current is None or content_tag(current) != tag:
                return None
            self._atomic(key, lambda fh: fh.write(data))
        return content_tag(data)

    def delete_if_match(self, key: str, tag: str) -> bool:
        with self._locked():
            current = self._read(key)
            if current is None or content_tag(current) != tag:
                return False
            self.delete([key])
        return True

    def put_bytes(self, key: str, data: bytes) -> None:
        self._atomic(key, lambda fh: fh.write(data))

    def put_file(self, key: str, path: str | os.PathLike[str]) -> None:
        try:
            with Path(path).open("rb") as src:
                self._atomic(key, lambda fh: shutil.copyfileobj(src, fh, 1 << 20))
        except OSError as exc:  # opening the source; write errors are StoreErrors already
            raise StoreError(str(path), f"cannot read file to upload: {exc}") from exc

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StoreError(key, "no such object in the lake", kind="not-found") from None
        except OSError as exc:
            raise StoreError(key, f"read failed: {exc}") from exc

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys starting with ``prefix`` (string prefix, as on S3), sorted."""
        head, _, _ = prefix.rpartition("/")
        base = self._path(head) if head else self.root
        if not base.is_dir():
            return []
        keys = []
        for dirpath, _dirs, files in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in files:
                if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def list_modified(self, prefix: str = "") -> builtins.list[tuple[str, datetime]]:
        out = []
        for key in self.list(prefix):
            try:
                mtime = self._path(key).stat().st_mtime
            except FileNotFoundError:  # deleted since listed
                continue
            out.append((key, datetime.fromtimestamp(mtime, UTC)))
        return out

    def delete(self, keys: Iterable[str]) -> None:
        """Delete objects; folders left empty are removed too (as S3 has no empty prefixes)."""
        for key in keys:
            path = self._path(key)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise StoreError(key, f"delete failed: {exc}") from exc
            for folder in path.parents:
                if folder == self.root or self.root not in folder.parents:
                    break
                try:
                    folder.rmdir()  # only succeeds when empty
                except OSError:
                    break

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


def content_tag(data: bytes) -> str:
    """A local object's version tag: the SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


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


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_lake(
    uri: str | LakeSettings,
    *,
    endpoint_url: str | None = None,
    client: S3Client | None = None,
) -> Lake:
    """Open a lake: a local folder path, ``file://`` URI, or ``s3://bucket[/prefix]``.

    ``uri`` may be a :class:`~etl.lake.settings.LakeSettings` (``load_settings().lake_settings``):
    its endpoint, region, credentials, addressing style, retry and multipart settings are used
    for an S3 lake. A plain URI gets the default LakeSettings plus ``endpoint_url``: endpoint,
    region and credentials then come from boto3's default chain (``AWS_*``, profiles).
    ``client`` (a boto3 S3 client) replaces the one the settings describe; the transfer
    settings still apply. Local folders need not exist yet.
    """
    settings: LakeSettings | None = None
    if isinstance(uri, LakeSettings):
        settings, uri = uri, uri.uri
        if endpoint_url is not None:
            settings = replace(settings, endpoint_url=endpoint_url)
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        from etl.lake.s3 import S3Lake

        if settings is None:
            settings = LakeSettings(uri=uri, endpoint_url=endpoint_url)
        return S3Lake.from_settings(settings, client=client)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StoreError(uri, "file:// URIs must be local (file:///path)")
        return LocalLake(unquote(parts.path))
    if scheme and len(scheme) > 1:  # "c:" is a Windows drive, not a scheme
        raise StoreError(uri, f"unsupported lake URI scheme {scheme!r}; use a path or s3://")
    if not uri:
        raise StoreError("(empty)", "lake URI is empty")
    return LocalLake(uri)
