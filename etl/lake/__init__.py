"""The lake: a key/value store (local folder or S3), its layout, and the tables published into it.

:func:`open_lake` opens one; :func:`publish` is the exactly-once switch of an interval;
readers go through :func:`read_table`, :func:`query_batches`, :func:`compact_day`.
"""

from typing import TYPE_CHECKING

from etl._lazy import surface

if TYPE_CHECKING:
    from etl.lake.arrowfs import (
        read_columns as read_columns,
    )
    from etl.lake.base import (
        Lake as Lake,
        update_json_object as update_json_object,
    )
    from etl.lake.compact import (
        compact_day as compact_day,
    )
    from etl.lake.ddl import (
        render as render,
    )
    from etl.lake.layout import (
        raw_key as raw_key,
    )
    from etl.lake.lease import (
        clean_old_staging as clean_old_staging,
        interval_lease as interval_lease,
        new_holder as new_holder,
    )
    from etl.lake.opener import (
        open_lake as open_lake,
    )
    from etl.lake.publishing import (
        KEY_UNSAFE as KEY_UNSAFE,
        manifest_extra as manifest_extra,
        new_attempt as new_attempt,
        publish as publish,
    )
    from etl.lake.query import (
        connect as connect,
        query_batches as query_batches,
        run_query as run_query,
    )
    from etl.lake.query_output import (
        FORMATS as FORMATS,
        write_parquet as write_parquet,
        write_text as write_text,
    )
    from etl.lake.s3 import (
        make_client as make_client,
    )
    from etl.lake.settings import (
        CONN_ID as CONN_ID,
        DEFAULT_LAKE as DEFAULT_LAKE,
        LakeSettings as LakeSettings,
        LeaseSettings as LeaseSettings,
        lake_settings_from_airflow_conn as lake_settings_from_airflow_conn,
        lake_settings_from_env as lake_settings_from_env,
    )
    from etl.lake.store import (
        Manifest as Manifest,
        SeenRecheck as SeenRecheck,
        publish_interval as publish_interval,
        read_articles as read_articles,
        read_manifest as read_manifest,
        read_table as read_table,
        seen_ids as seen_ids,
        write_table as write_table,
    )

__all__, __getattr__, __dir__ = surface(
    __name__,
    {
        "arrowfs": ("read_columns",),
        "base": (
            "Lake",
            "update_json_object",
        ),
        "compact": ("compact_day",),
        "ddl": ("render",),
        "layout": ("raw_key",),
        "lease": (
            "clean_old_staging",
            "interval_lease",
            "new_holder",
        ),
        "opener": ("open_lake",),
        "publishing": (
            "KEY_UNSAFE",
            "manifest_extra",
            "new_attempt",
            "publish",
        ),
        "query": (
            "connect",
            "query_batches",
            "run_query",
        ),
        "query_output": (
            "FORMATS",
            "write_parquet",
            "write_text",
        ),
        "s3": ("make_client",),
        "settings": (
            "CONN_ID",
            "DEFAULT_LAKE",
            "LakeSettings",
            "LeaseSettings",
            "lake_settings_from_airflow_conn",
            "lake_settings_from_env",
        ),
        "store": (
            "Manifest",
            "SeenRecheck",
            "publish_interval",
            "read_articles",
            "read_manifest",
            "read_table",
            "seen_ids",
            "write_table",
        ),
    },
)
