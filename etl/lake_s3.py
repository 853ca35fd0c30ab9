"""The lake on S3-compatible storage (AWS, MinIO, Ceph, R2, moto in tests), via boto3.

Entry point :meth:`S3Lake.from_uri` (reached through ``etl.lake.open_lake``). Errors become
:class:`StoreError`: throttling, 5xx, timeouts and connection failures are transient (Airflow
retries), everything else terminal.
"""

from __future__ import annotations

import builtins
import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from etl.errors import StoreError
from etl.lake import check_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("etl.lake_s3")

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


def _store_error(subject: str, op: str, exc: Exception) -> StoreError:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _NOT_FOUND:
            return StoreError(subject, "no such object in the lake", kind="not-found")
        transient = code in _TRANSIENT_CODES or status >= 500
        return StoreError(subject, f"{op} failed: {code or status}: {exc}", transient=transient)
    transient = isinstance(exc, ConnectionError | HTTPClientError)
    return StoreError(subject, f"{op} failed: {exc}", transient=transient)


class S3Lake:
    """A lake under ``s3://bucket/prefix``."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @classmethod
    def from_uri(
        cls, uri: str, *, endpoint_url: str | None = None, client: S3Client | None = None
    ) -> S3Lake:
        parts = urlsplit(uri)
        if not parts.netloc:
            raise StoreError(uri, "s3 lake URI needs a bucket: s3://bucket[/prefix]")
        if client is None:
            try:
                client = boto3.client("s3", endpoint_url=endpoint_url)
            except BotoCoreError as exc:
                raise StoreError(uri, f"cannot create S3 client: {exc}") from exc
        return cls(client, parts.netloc, parts.path)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise _store_error(self.uri_for(key), "put", exc) from exc

    def put_file(self, key: str, path: str | os.PathLike[str]) -> None:
        # upload_file switches to multipart for large files; the object appears only when
        # the upload completes, so readers still never see a partial object.
        try:
            self.client.upload_file(os.fspath(path), self.bucket, self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise _store_error(self.uri_for(key), "upload", exc) from exc
        except OSError as exc:
            raise StoreError(str(path), f"cannot read file to upload: {exc}") from exc

    def get_bytes(self, key: str) -> bytes:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return obj["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise _store_error(self.uri_for(key), "get", exc) from exc

    def list(self, prefix: str = "") -> builtins.list[str]:
        keys: builtins.list[str] = []
        start = len(self.prefix)
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                keys.extend(obj["Key"][start:] for obj in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            raise _store_error(f"{self.uri}/{prefix}", "list", exc) from exc
        return sorted(keys)

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
