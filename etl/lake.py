"""The lake as a small key/value interface: a local folder or an S3-compatible bucket.

Entry point :func:`open_lake`. Keys are relative, ``/``-separated (``articles/dt=.../x.parquet``).
Every ``put`` is atomic: a reader sees the old object or the new one, never a partial one.
Locally that is a temp file in the target folder named ``.<name>.<random>.tmp`` (a leading
dot: Hive, Spark, DuckDB globs on ``*.parquet`` and pyarrow datasets all skip it), fsynced, then
``os.replace``d over the target. On S3 a PUT (or a completed multipart upload) is atomic by
itself. ``list`` never returns in-progress temp files.
"""

from __future__ import annotations

import builtins
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

from etl.errors import StoreError
from etl.lake_config import LakeSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("etl.lake")

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

    def _atomic(self, key: str, write: Callable[[IO[bytes]], Any]) -> None:
        target = self._path(key)
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("xb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(target)
            _fsync_dir(target.parent)
        except OSError as exc:
            raise StoreError(key, f"write failed: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

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

    ``uri`` may be a :class:`~etl.lake_config.LakeSettings` (``load_settings().lake_settings``):
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
        from etl.lake_s3 import S3Lake

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
