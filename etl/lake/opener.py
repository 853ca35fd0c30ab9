"""Open a lake from its URI or settings: a local folder (:mod:`etl.lake.local`) or S3."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from etl.errors import StoreError
from etl.lake.base import Lake
from etl.lake.local import LocalLake
from etl.lake.settings import LakeSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["open_lake"]


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
