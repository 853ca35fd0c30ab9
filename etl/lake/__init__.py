"""The lake: a key/value store (local folder or S3), its layout, and the tables published into it.

:func:`open_lake` opens one; :func:`publish` is the exactly-once switch of an interval;
readers go through :func:`read_table`, :func:`query_batches`, :func:`compact_day`.
"""

from typing import TYPE_CHECKING

from etl._lazy import surface

if TYPE_CHECKING:
    from etl.lake.arrowfs import read_columns as read_columns
    from etl.lake.base import Lake as Lake
    from etl.lake.base import update_json_object as update_json_object
    from etl.lake.compact import compact_day as compact_day
    from etl.lake.dayview import read_pointer as read_pointer
    from etl.lake.ddl import render as render
    from etl.lake.layout import ARTICLE_KEY as ARTICLE_KEY
    from etl.lake.layout import COMPACT_PREFIX as COMPACT_PREFIX
    from etl.lake.layout import INDEX_KEY as INDEX_KEY
    from etl.lake.layout import LEASE_PREFIX as LEASE_PREFIX
    from etl.lake.layout import MANIFEST_KEY as MANIFEST_KEY
    from etl.lake.layout import POINTER_KEY as POINTER_KEY
    from etl.lake.layout import PUBLISH_LEASE_KEY as PUBLISH_LEASE_KEY
    from etl.lake.layout import STAGING_PREFIX as STAGING_PREFIX
    from etl.lake.layout import article_key as article_key
    from etl.lake.layout import articles_prefix as articles_prefix
    from etl.lake.layout import attempt_warc_key as attempt_warc_key
    from etl.lake.layout import fetch_log_key as fetch_log_key
    from etl.lake.layout import index_key as index_key
    from etl.lake.layout import index_prefix as index_prefix
    from etl.lake.layout import interval_lease_key as interval_lease_key
    from etl.lake.layout import manifest_key as manifest_key
    from etl.lake.layout import pointer_key as pointer_key
    from etl.lake.layout import quarantine_prefix as quarantine_prefix
    from etl.lake.layout import raw_chunks_key as raw_chunks_key
    from etl.lake.layout import raw_index_key as raw_index_key
    from etl.lake.layout import raw_key as raw_key
    from etl.lake.layout import raw_log_key as raw_log_key
    from etl.lake.layout import raw_zone as raw_zone
    from etl.lake.layout import staging_key as staging_key
    from etl.lake.layout import staging_prefix as staging_prefix
    from etl.lake.layout import validators_key as validators_key
    from etl.lake.lease import clean_old_staging as clean_old_staging
    from etl.lake.lease import interval_lease as interval_lease
    from etl.lake.lease import new_holder as new_holder
    from etl.lake.manifest import Manifest as Manifest
    from etl.lake.manifest import read_manifest as read_manifest
    from etl.lake.opener import open_lake as open_lake
    from etl.lake.publishing import KEY_UNSAFE as KEY_UNSAFE
    from etl.lake.publishing import manifest_extra as manifest_extra
    from etl.lake.publishing import new_attempt as new_attempt
    from etl.lake.publishing import publish as publish
    from etl.lake.query import connect as connect
    from etl.lake.query import query_batches as query_batches
    from etl.lake.query import run_query as run_query
    from etl.lake.query_output import FORMATS as FORMATS
    from etl.lake.query_output import write_parquet as write_parquet
    from etl.lake.query_output import write_text as write_text
    from etl.lake.s3 import make_client as make_client
    from etl.lake.seen_cache import clear_seen_cache as clear_seen_cache
    from etl.lake.seen_recheck import SeenRecheck as SeenRecheck
    from etl.lake.seen_recheck import seen_ids as seen_ids
    from etl.lake.seen_snapshot import read_snapshot as read_snapshot
    from etl.lake.seen_snapshot import snapshot_ids as snapshot_ids
    from etl.lake.seen_snapshot import write_snapshot as write_snapshot
    from etl.lake.settings import CONN_ID as CONN_ID
    from etl.lake.settings import DEFAULT_LAKE as DEFAULT_LAKE
    from etl.lake.settings import LakeSettings as LakeSettings
    from etl.lake.settings import LeaseSettings as LeaseSettings
    from etl.lake.settings import lake_settings_from_airflow_conn as lake_settings_from_airflow_conn
    from etl.lake.settings import lake_settings_from_env as lake_settings_from_env
    from etl.lake.store import publish_interval as publish_interval
    from etl.lake.tables import read_articles as read_articles
    from etl.lake.tables import read_table as read_table
    from etl.lake.tables import write_table as write_table

__all__, __getattr__, __dir__ = surface(
    __name__,
    {
        "arrowfs": ("read_columns",),
        "base": ("Lake", "update_json_object"),
        "compact": ("compact_day",),
        "dayview": ("read_pointer",),
        "ddl": ("render",),
        "layout": (
            "ARTICLE_KEY",
            "COMPACT_PREFIX",
            "INDEX_KEY",
            "LEASE_PREFIX",
            "MANIFEST_KEY",
            "POINTER_KEY",
            "PUBLISH_LEASE_KEY",
            "STAGING_PREFIX",
            "article_key",
            "articles_prefix",
            "attempt_warc_key",
            "fetch_log_key",
            "index_key",
            "index_prefix",
            "interval_lease_key",
            "manifest_key",
            "pointer_key",
            "quarantine_prefix",
            "raw_chunks_key",
            "raw_index_key",
            "raw_key",
            "raw_log_key",
            "raw_zone",
            "staging_key",
            "staging_prefix",
            "validators_key",
        ),
        "lease": ("clean_old_staging", "interval_lease", "new_holder"),
        "manifest": ("Manifest", "read_manifest"),
        "opener": ("open_lake",),
        "publishing": ("KEY_UNSAFE", "manifest_extra", "new_attempt", "publish"),
        "query": ("connect", "query_batches", "run_query"),
        "query_output": ("FORMATS", "write_parquet", "write_text"),
        "s3": ("make_client",),
        "seen_cache": ("clear_seen_cache",),
        "seen_snapshot": ("read_snapshot", "snapshot_ids", "write_snapshot"),
        "seen_recheck": ("SeenRecheck", "seen_ids"),
        "settings": (
            "CONN_ID",
            "DEFAULT_LAKE",
            "LakeSettings",
            "LeaseSettings",
            "lake_settings_from_airflow_conn",
            "lake_settings_from_env",
        ),
        "store": ("publish_interval",),
        "tables": ("read_articles", "read_table", "write_table"),
    },
)
