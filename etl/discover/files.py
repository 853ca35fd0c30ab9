"""Input files of sources: WARC files and URL lists, on a local disk or on S3.

:class:`SourceFiles` opens and lists them. An ``s3://`` location is reached with the **lake's**
S3 settings (:class:`~etl.lake.settings.LakeSettings`: endpoint, credentials, region, path-style
addressing; under Airflow the ``news_lake`` connection) through the same client factory as the
lake (:func:`etl.lake.s3.make_client`), never through boto3's default chain on its own. Without
settings only local paths can be read. Every failure is a :class:`~etl.errors.SourceError`
naming the path or ``s3://`` URI: a missing file, key or bucket is terminal (kind
``not-found``), throttling, 5xx, timeouts and dropped connections are transient.
"""

from __future__ import annotations

import fnmatch
import glob
import io
import logging
import zlib
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from etl.errors import ConfigError, SourceError
from etl.lake import LakeSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["SourceFiles", "read_errors", "source_error"]

log = logging.getLogger("etl.discover.files")

WARC_SUFFIXES = (".warc.gz", ".warc")
_MISSING = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}


class SourceFiles:
    """Opens (``files(uri)``) and lists (:meth:`expand`) a source's input files."""

    def __init__(self, lake: LakeSettings | None = None, *, client: S3Client | None = None):
        self.lake = lake
        self._client = client

    def __call__(self, location: str) -> IO[bytes]:
        return self.open(location)

    def open(self, location: str) -> IO[bytes]:
        """A binary stream of one local file or ``s3://bucket/key`` object."""
        if not location.startswith("s3://"):
            try:
                return Path(location).open("rb")
            except OSError as exc:
                kind = "not-found" if isinstance(exc, FileNotFoundError) else "source"
                raise SourceError(
                    location, f"cannot open: {exc.strerror or exc}", kind=kind
                ) from None
        bucket, key = _split(location)
        client = self.client(location)
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
        except Exception as exc:
            raise source_error(location, "get", exc) from exc
        return io.BufferedReader(_S3Stream(body, location), buffer_size=1 << 20)

    def expand(self, location: str) -> list[str]:
        """The files a location means, sorted: a file or object; a folder or ``s3://`` prefix
        ending in ``/`` (every ``.warc.gz``/``.warc`` in it); or a glob (``*``, ``?``, ``[``)."""
        if location.startswith("s3://"):
            return self._expand_s3(location)
        p = Path(location)
        if p.is_dir():
            return sorted(str(f) for f in p.iterdir() if f.name.endswith(WARC_SUFFIXES))
        if glob.has_magic(location):
            anchor = p.anchor or "."
            pattern = str(p.relative_to(anchor)) if p.anchor else location
            return sorted(str(f) for f in Path(anchor).glob(pattern))
        return [location]

    def client(self, location: str) -> S3Client:
        """The S3 client of the lake's settings (made once)."""
        if self._client is None:
            if self.lake is None:
                msg = "an s3:// input is read with the lake's S3 settings, and none were given"
                raise ConfigError(location, msg)
            from etl.lake import make_client

            try:
                self._client = make_client(self.lake)
            except Exception as exc:
                raise source_error(location, "connect", exc) from exc
        return self._client

    def _expand_s3(self, location: str) -> list[str]:
        bucket, key = _split(location, key_required=False)
        if not (key.endswith("/") or glob.has_magic(key) or not key):
            return [location]
        magic = next((i for i, ch in enumerate(key) if ch in "*?["), len(key))
        client = self.client(location)
        try:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=key[:magic]
            )
            keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        except Exception as exc:
            raise source_error(location, "list", exc) from exc
        if glob.has_magic(key):
            keys = [k for k in keys if fnmatch.fnmatchcase(k, key)]
        else:
            keys = [k for k in keys if k.endswith(WARC_SUFFIXES)]
        if not keys:
            log.warning("%s: no WARC files there", location)
        return [f"s3://{bucket}/{k}" for k in sorted(keys)]


class _S3Stream(io.RawIOBase):
    """An S3 object body as a raw stream: reads past the end give ``b""`` (botocore's body
    can raise on a drained connection), read errors are SourceErrors naming the object."""

    def __init__(self, body: Any, location: str) -> None:
        self._body = body
        self._location = location

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._body is None:
            return 0
        try:
            data = self._body.read(len(buffer))
        except read_errors() as exc:
            raise source_error(self._location, "read", exc) from exc
        if not data:
            self._release()
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._release()
        super().close()

    def _release(self) -> None:
        if self._body is not None:
            body, self._body = self._body, None
            body.close()


def _split(location: str, *, key_required: bool = True) -> tuple[str, str]:
    bucket, _, key = location[5:].partition("/")
    if not bucket or (key_required and not key):
        raise SourceError(location, "not an s3://bucket/key URI", kind="config")
    return bucket, key


def read_errors() -> tuple[type[BaseException], ...]:
    """What opening or reading a local or S3 file may raise (for ``except read_errors():``,
    evaluated only once something was raised, so botocore is imported only then)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from warcio.exceptions import ArchiveLoadFailed

    return (OSError, EOFError, zlib.error, ArchiveLoadFailed, BotoCoreError, ClientError)


def source_error(location: str, op: str, exc: BaseException) -> SourceError:
    """A boto3/botocore (or OS) error on ``location`` as a :class:`SourceError` of the tree."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        HTTPClientError,
        IncompleteReadError,
    )

    from etl.errors import EtlError

    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, EtlError):  # e.g. the StoreError of a client that cannot be made
        return SourceError(location, exc.message, kind=exc.kind, transient=exc.transient)
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _MISSING or status == 404:
            what = "no such bucket" if code == "NoSuchBucket" else "no such object"
            return SourceError(
                location, f"{op} failed: {what} ({code or status})", kind="not-found"
            )
        transient = status >= 500 or status == 429 or code in {"SlowDown", "Throttling"}
        return SourceError(location, f"{op} failed: {code or status}: {exc}", transient=transient)
    if isinstance(
        exc, FileNotFoundError | IsADirectoryError | NotADirectoryError | PermissionError
    ):
        kind = "not-found" if isinstance(exc, FileNotFoundError) else "source"
        return SourceError(location, f"{op} failed: {exc.strerror or exc}", kind=kind)
    if isinstance(exc, ConnectionError | HTTPClientError | IncompleteReadError | OSError):
        return SourceError(location, f"{op} failed: {exc}", transient=True)
    if isinstance(exc, BotoCoreError):  # no credentials, bad endpoint, bad parameters, …
        return SourceError(location, f"{op} failed: {exc}")
    return SourceError(location, f"{op} failed: {exc!r}")
