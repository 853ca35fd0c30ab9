"""The lake on S3-compatible storage (AWS, MinIO, Ceph, R2, moto in tests), via boto3.

Entry point :meth:`S3Lake.from_settings` (reached through ``etl.lake.local.open_lake``). The client
retries in botocore's adaptive mode (client-side rate limiting once S3 throttles), sends a
CRC32 checksum with every upload (S3 verifies it and stores it; ``get_bytes`` asks for it and
botocore checks the body against it), and uploads files through boto3's transfer manager:
multipart above a threshold, parts in parallel. A PUT or a completed multipart upload is
atomic, so readers never see a partial object. Errors become :class:`StoreError`:
throttling, 5xx, timeouts and connection failures are transient (Airflow retries), everything
else terminal.

Conditional writes (see :mod:`etl.lake.local`) are ``If-None-Match: *`` and ``If-Match: <etag>`` on
PutObject and DeleteObject: 412 PreconditionFailed means the condition failed (``None`` /
``False``), 409 ConditionalRequestConflict (a concurrent conditional write) is retried a few
times, then a transient error naming the key.
"""

from __future__ import annotations

import builtins
import io
import logging
import os
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

import boto3
import botocore.loaders
import botocore.session
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from etl.errors import StoreError
from etl.lake.base import check_key
from etl.lake.settings import LakeSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("etl.lake.s3")

_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
}
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_PRECONDITION = {"PreconditionFailed", "412"}
_CONFLICT = {"ConditionalRequestConflict", "409"}


MiB = 1024 * 1024
# S3's default checksum algorithm; AWS, MinIO and moto verify and store it.
CHECKSUM: Final[Literal["CRC32"]] = "CRC32"


def _store_error(subject: str, op: str, exc: Exception) -> StoreError:
    if isinstance(exc, S3UploadFailedError):  # boto3 wraps the ClientError of a transfer
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ClientError | BotoCoreError):
            return _store_error(subject, op, cause)
        return StoreError(subject, f"{op} failed: {exc}")
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _NOT_FOUND:
            return StoreError(subject, "no such object in the lake", kind="not-found")
        transient = code in _TRANSIENT_CODES or status >= 500
        return StoreError(subject, f"{op} failed: {code or status}: {exc}", transient=transient)
    transient = isinstance(exc, ConnectionError | HTTPClientError)
    return StoreError(subject, f"{op} failed: {exc}", transient=transient)


def client_config(settings: LakeSettings) -> Config:
    """The botocore configuration of a lake's S3 client."""
    return Config(
        retries={"mode": "adaptive", "total_max_attempts": settings.max_attempts},
        s3={"addressing_style": "path" if settings.path_style else "auto"},
        request_checksum_calculation="when_supported",
        response_checksum_validation="when_supported",
        connect_timeout=settings.connect_timeout_s,
        read_timeout=settings.read_timeout_s,
        max_pool_connections=max(10, settings.max_concurrency + 2),
    )


def transfer_config(settings: LakeSettings) -> TransferConfig:
    """Multipart threshold, part size and parallelism of ``put_file`` (boto3's own manager)."""
    return TransferConfig(
        multipart_threshold=settings.multipart_threshold_mb * MiB,
        multipart_chunksize=settings.multipart_chunk_mb * MiB,
        max_concurrency=settings.max_concurrency,
        use_threads=True,
        # s3transfer itself, on this client (its retries, checksums, endpoint); the CRT
        # manager, used when awscrt is installed, would make its own client.
        preferred_transfer_client="classic",
    )


# botocore's parsed service models (JSON), shared by every client this process makes: parsing
# them again for each new session took ~0.3 s of each S3 lake opened (a query, a publish).
_LOADER: Final = botocore.loaders.create_loader()


def make_client(settings: LakeSettings) -> S3Client:
    """An S3 client for ``settings``; ``None`` fields are left to boto3's default chain."""
    try:
        core = botocore.session.Session()
        session = boto3.session.Session(
            botocore_session=core,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            aws_session_token=settings.session_token,
            region_name=settings.region,
            profile_name=settings.profile,
        )
        if core.get_config_variable("data_path") is None:  # no custom model path: share
            core.register_component("data_loader", _LOADER)
        return session.client(
            "s3", endpoint_url=settings.endpoint_url, config=client_config(settings)
        )
    except (BotoCoreError, ValueError) as exc:
        raise StoreError(settings.uri, f"cannot create S3 client: {exc}") from exc


class S3Lake:
    """A lake under ``s3://bucket/prefix``."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str = "",
        *,
        transfer: TransferConfig | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.transfer = transfer or transfer_config(LakeSettings(uri=self.uri))

    @classmethod
    def from_settings(cls, settings: LakeSettings, *, client: S3Client | None = None) -> S3Lake:
        """The lake at ``settings.uri``; ``client`` replaces the one ``settings`` describe."""
        parts = urlsplit(settings.uri)
        if parts.scheme.lower() != "s3" or not parts.netloc:
            raise StoreError(settings.uri, "s3 lake URI needs a bucket: s3://bucket[/prefix]")
        if client is None:
            client = make_client(settings)
        log.debug("S3 lake %s via %s", settings.uri, settings.endpoint_url or "the AWS default")
        return cls(client, parts.netloc, parts.path, transfer=transfer_config(settings))

    @classmethod
    def from_uri(
        cls, uri: str, *, endpoint_url: str | None = None, client: S3Client | None = None
    ) -> S3Lake:
        return cls.from_settings(LakeSettings(uri=uri, endpoint_url=endpoint_url), client=client)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def put_bytes(self, key: str, data: bytes) -> None:
        if len(data) >= self.transfer.multipart_threshold:
            self._upload(key, io.BytesIO(data), len(data))
            return
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, ChecksumAlgorithm=CHECKSUM
            )
        except (BotoCoreError, ClientError) as exc:
            raise _store_error(self.uri_for(key), "put", exc) from exc

    def put_file(self, key: str, path: str | os.PathLike[str]) -> None:
        try:
            size = Path(path).stat().st_size
        except OSError as exc:
            raise StoreError(str(path), f"cannot read file to upload: {exc}") from exc
        self._upload(key, os.fspath(path), size)

    def _upload(self, key: str, source: str | io.BytesIO, size: int) -> None:
        """Upload through the transfer manager: multipart above the threshold, parts in
        parallel; the object appears only when the upload completes."""
        extra: dict[str, Any] = {"ChecksumAlgorithm": CHECKSUM}
        started = time.perf_counter()
        try:
            if isinstance(source, str):
                self.client.upload_file(
                    source, self.bucket, self._key(key), ExtraArgs=extra, Config=self.transfer
                )
            else:
                self.client.upload_fileobj(
                    source, self.bucket, self._key(key), ExtraArgs=extra, Config=self.transfer
                )
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise _store_error(self.uri_for(key), "upload", exc) from exc
        except OSError as exc:
            raise StoreError(str(source), f"cannot read file to upload: {exc}") from exc
        seconds = time.perf_counter() - started
        log.debug("uploaded %s: %d bytes in %.2fs", self.uri_for(key), size, seconds)

    def get_bytes(self, key: str) -> bytes:
        try:
            obj = self.client.get_object(
                Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED"
            )
            return obj["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise _store_error(self.uri_for(key), "get", exc) from exc

    def _objects(self, prefix: str) -> builtins.list[tuple[str, Any]]:
        """(key, the LIST's entry) of every object under ``prefix``, sorted by key."""
        start = len(self.prefix)
        out: builtins.list[tuple[str, Any]] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                out += [(o["Key"][start:], o) for o in page.get("Contents", [])]
        except (BotoCoreError, ClientError) as exc:
            raise _store_error(f"{self.uri}/{prefix}", "list", exc) from exc
        return sorted(out, key=lambda kv: kv[0])

    def list(self, prefix: str = "") -> builtins.list[str]:
        return [k for k, _o in self._objects(prefix)]

    def list_modified(self, prefix: str = "") -> builtins.list[tuple[str, datetime]]:
        return [(k, o["LastModified"]) for k, o in self._objects(prefix)]

    def list_versions(self, prefix: str = "") -> builtins.list[tuple[str, str]]:
        """``list`` with each object's ETag (what the LIST returns anyway)."""
        return [(k, o["ETag"].strip('"')) for k, o in self._objects(prefix)]

    def delete(self, keys: Iterable[str]) -> None:
        todo = [self._key(k) for k in keys]
        for i in range(0, len(todo), 1000):  # DeleteObjects takes at most 1000 keys
            chunk = todo[i : i + 1000]
            try:
                resp = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
                )
            except (BotoCoreError, ClientError) as exc:
                raise _store_error(f"s3://{self.bucket}/{chunk[0]}", "delete", exc) from exc
            if errors := resp.get("Errors"):
                first = errors[0]
                raise StoreError(
                    f"s3://{self.bucket}/{first.get('Key', '?')}",
                    f"delete failed for {len(errors)} keys: {first.get('Code')}",
                    transient=first.get("Code") in _TRANSIENT_CODES,
                )

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _store_error(key, "head", exc).kind == "not-found":
                return False
            raise _store_error(self.uri_for(key), "head", exc) from exc
        except BotoCoreError as exc:
            raise _store_error(self.uri_for(key), "head", exc) from exc
        return True

    def _conditional(self, key: str, op: str, call: Any) -> Any:
        """Run a conditional request: its response, or None when the precondition failed (or
        the object is gone); a 409 conflict is retried, then a transient StoreError."""
        for attempt in range(5):
            try:
                return call()
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
                if code in _PRECONDITION or status == "412" or code in _NOT_FOUND:
                    return None
                if code in _CONFLICT or status == "409":
                    time.sleep(0.05 * 2**attempt)
                    continue
                raise _store_error(self.uri_for(key), op, exc) from exc
            except BotoCoreError as exc:
                raise _store_error(self.uri_for(key), op, exc) from exc
        raise StoreError(
            self.uri_for(key), f"{op} failed: conditional request conflicts", transient=True
        )

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        try:
            obj = self.client.get_object(
                Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED"
            )
            return obj["Body"].read(), obj["ETag"]
        except (BotoCoreError, ClientError) as exc:
            err = _store_error(self.uri_for(key), "get", exc)
            if err.kind == "not-found":
                return None
            raise err from exc

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        return self._put_conditional(key, data, IfNoneMatch="*")

    def put_if_match(self, key: str, data: bytes, tag: str) -> str | None:
        return self._put_conditional(key, data, IfMatch=tag)

    def _put_conditional(self, key: str, data: bytes, **condition: str) -> str | None:
        """PUT ``data`` if ``condition`` (``IfNoneMatch`` / ``IfMatch``) holds: its new ETag,
        or None when the condition failed."""
        resp = self._conditional(
            key,
            "conditional put",
            lambda: self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=data,
                ChecksumAlgorithm=CHECKSUM,
                **condition,  # type: ignore[arg-type]
            ),
        )
        return None if resp is None else str(resp["ETag"])

    def delete_if_match(self, key: str, tag: str) -> bool:
        resp = self._conditional(
            key,
            "conditional delete",
            lambda: self.client.delete_object(Bucket=self.bucket, Key=self._key(key), IfMatch=tag),
        )
        return resp is not None
