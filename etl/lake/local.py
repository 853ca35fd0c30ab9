"""A lake in a local folder: :class:`LocalLake` (the S3 one is :mod:`etl.lake.s3`).

Every ``put`` is atomic: a reader sees the old object or the new one, never a partial one. It is a
temp file in the target folder named ``.<name>.<random>.tmp`` (a leading dot: Hive, Spark, DuckDB
globs on ``*.parquet`` and pyarrow datasets all skip it), fsynced, then ``os.replace``d over the
target. ``list`` never returns in-progress temp files. Conditional writes are serialized by an
exclusive ``flock`` on the lake's root folder (held for the few milliseconds of one operation,
across processes and threads), and a create is a link of a complete temp file (``os.link`` fails
if the key exists): never a partial object. An object's tag is the SHA-256 of its bytes.
"""

from __future__ import annotations

import builtins
import fcntl
import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from etl.errors import StoreError
from etl.lake.base import check_key

if TYPE_CHECKING:
    pass

log = logging.getLogger("etl.lake.local")

TEMP_SUFFIX = ".tmp"


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

    def list_versions(self, prefix: str = "") -> builtins.list[tuple[str, str]]:
        """``list`` with each object's version: a new one whenever the key is written again
        (a put is a new file renamed over the key: a new inode)."""
        out = []
        for key in self.list(prefix):
            try:
                st = self._path(key).stat()
            except FileNotFoundError:  # deleted since listed
                continue
            out.append((key, f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"))
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
