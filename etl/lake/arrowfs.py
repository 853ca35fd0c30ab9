"""The lake as a ``pyarrow.fs`` filesystem, for lazy reads (ranged reads of footers and columns).

Entry points :func:`arrow_filesystem` and :func:`parquet_dataset`. The writes go through
:mod:`etl.lake.local` (atomic puts); reads that only need some row groups or columns of a Parquet
file (the query views, the seen index over old lakes) go through Arrow's own S3 client, which
reads byte ranges instead of whole objects. It is built from the same settings as the lake's
boto3 client: the endpoint and region the boto3 client resolved, the credentials of the same
chain (resolved once through boto3, so profiles work too), path-style addressing, retries and
timeouts. No DuckDB extension is needed (httpfs would be downloaded at run time).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from etl.errors import StoreError
from etl.lake.base import Lake
from etl.lake.local import LocalLake
from etl.lake.settings import LakeSettings

log = logging.getLogger("etl.lake.arrowfs")

_DT = re.compile(r"(?:^|/)dt=([^/]+)/")


@dataclass(frozen=True)
class ArrowLake:
    """A lake seen through pyarrow: ``fs`` and the ``root`` path keys are relative to."""

    fs: pafs.FileSystem
    root: str

    def path(self, key: str) -> str:
        return f"{self.root}/{key}"


def _s3_filesystem(lake: Lake, settings: LakeSettings) -> pafs.S3FileSystem:
    from etl.lake.s3 import S3Lake

    assert isinstance(lake, S3Lake)
    meta = lake.client.meta
    endpoint = settings.endpoint_url or meta.endpoint_url
    override = None
    scheme = "https"
    if endpoint and "amazonaws.com" not in endpoint:  # AWS itself: Arrow's own endpoints
        scheme, _, override = endpoint.partition("://")
    # The credentials boto3 resolved for this very client (explicit keys, env, profile, role).
    signer: Any = getattr(lake.client, "_request_signer", None)
    creds: Any = getattr(signer, "_credentials", None)
    frozen: Any = creds.get_frozen_credentials() if creds is not None else None
    return pafs.S3FileSystem(
        access_key=frozen.access_key if frozen else None,
        secret_key=frozen.secret_key if frozen else None,
        session_token=frozen.token if frozen else None,
        anonymous=frozen is None,
        region=settings.region or meta.region_name or "us-east-1",
        scheme="http" if scheme == "http" else "https",
        endpoint_override=override.rstrip("/") if override else None,
        connect_timeout=settings.connect_timeout_s,
        request_timeout=settings.read_timeout_s,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=settings.max_attempts),
        force_virtual_addressing=bool(override is None and not settings.path_style),
    )


def arrow_filesystem(lake: Lake, settings: LakeSettings | None = None) -> ArrowLake | None:
    """The lake as a pyarrow filesystem, or None for a lake of another kind (read via the store).

    ``settings`` are the ones the lake was opened with (timeouts, retries, path style); the
    endpoint, region and credentials come from the lake's own boto3 client.
    """
    from etl.lake.s3 import S3Lake

    if isinstance(lake, LocalLake):
        return ArrowLake(pafs.LocalFileSystem(), lake.root.as_posix())
    if isinstance(lake, S3Lake):
        settings = settings or LakeSettings(uri=lake.uri)
        root = f"{lake.bucket}/{lake.prefix}".rstrip("/")
        return ArrowLake(_s3_filesystem(lake, settings), root)
    return None


def parquet_dataset(
    alake: ArrowLake,
    keys: Sequence[str],
    schema: pa.Schema,
    base: str,
    sizes: Mapping[str, int] | None = None,
) -> ds.Dataset:
    """A lazy dataset over ``keys`` (under ``base``, e.g. ``articles``), partitioned on ``dt``.

    Files of older schema versions read by column name against ``schema`` (missing nullable
    columns come back null). Nothing but the footers is read until the dataset is scanned,
    and a scan reads only the row groups and columns it needs. ``sizes`` (from a listing,
    :func:`list_sizes`) spare a HEAD request per file opened.
    """
    # Fragments straight from the listed keys, each with its partition expression: no request
    # to build the dataset (a query opens only the files its filter keeps).
    fmt = ds.ParquetFileFormat()
    sizes = sizes or {}
    try:
        fragments = []
        for key in keys:
            m = _DT.search(key)
            fragments.append(
                fmt.make_fragment(
                    alake.path(key),
                    filesystem=alake.fs,
                    partition_expression=pc.field("dt") == m.group(1) if m else pc.scalar(True),
                    file_size=sizes.get(key),
                )
            )
        return ds.FileSystemDataset(fragments, schema, fmt, alake.fs)
    except (pa.ArrowInvalid, OSError) as exc:
        raise StoreError(alake.path(base), f"cannot open Parquet dataset: {exc}") from exc


def list_sizes(alake: ArrowLake, prefix: str) -> dict[str, int]:
    """``{key: bytes}`` of the objects under ``prefix`` (one listing; nothing if none)."""
    selector = pafs.FileSelector(
        alake.path(prefix.rstrip("/")), recursive=True, allow_not_found=True
    )
    try:
        infos = alake.fs.get_file_info(selector)
    except OSError as exc:
        raise StoreError(alake.path(prefix), f"cannot list: {exc}") from exc
    start = len(alake.root) + 1
    return {
        i.path[start:]: i.size for i in infos if i.type == pafs.FileType.File and i.size is not None
    }


def read_columns(
    lake: Lake, key: str, columns: list[str], *, alake: ArrowLake | None = None
) -> tuple[pa.Schema, pa.Table]:
    """The Arrow schema and ``columns`` of one Parquet object of the lake: the footer and those
    column chunks only (ranged reads) where pyarrow reaches the lake, else the whole object."""
    import pyarrow.parquet as pq

    alake = alake or arrow_filesystem(lake)
    try:
        if alake is None:
            pf = pq.ParquetFile(pa.BufferReader(lake.get_bytes(key)))
            return pf.schema_arrow, pf.read(columns=columns, use_threads=False)
        with alake.fs.open_input_file(alake.path(key)) as fh:
            pf = pq.ParquetFile(fh)
            return pf.schema_arrow, pf.read(columns=columns, use_threads=False)
    except FileNotFoundError:
        raise StoreError(key, "no such object in the lake", kind="not-found") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise StoreError(key, f"not a readable Parquet file: {exc}") from exc
