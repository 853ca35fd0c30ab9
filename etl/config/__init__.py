"""Typed configuration, read from files and the environment in this one place.

Stage code never reads ``os.environ``: entry points (CLI, DAG tasks) call :func:`load_settings`
and pass the resulting frozen objects down.

Environment variables (the design's contract): ``NEWSETL_SOURCES`` (path to a sources file) and
``NEWSETL_LAKE`` (lake URI). CLI flags and DAG params override them. How an ``s3://`` lake is
reached (:class:`LakeSettings`, in :mod:`etl.lake.settings`) comes from the standard AWS variables
or, under Airflow, from the ``news_lake`` connection.
"""

from typing import TYPE_CHECKING

from etl._lazy import surface

if TYPE_CHECKING:
    from etl.config.settings import DEFAULT_MAX_BYTES as DEFAULT_MAX_BYTES
    from etl.config.settings import DEFAULT_USER_AGENT as DEFAULT_USER_AGENT
    from etl.config.settings import PACKAGE_DIR as PACKAGE_DIR
    from etl.config.settings import RULES_DIR as RULES_DIR
    from etl.config.settings import CleanSettings as CleanSettings
    from etl.config.settings import ExtractSettings as ExtractSettings
    from etl.config.settings import QualitySettings as QualitySettings
    from etl.config.settings import Settings as Settings
    from etl.config.settings import load_settings as load_settings
    from etl.config.sources import FetchOptions as FetchOptions
    from etl.config.sources import QualityOptions as QualityOptions
    from etl.config.sources import SourceConfig as SourceConfig
    from etl.config.sources import SourceKind as SourceKind
    from etl.config.sources import SourcesFile as SourcesFile
    from etl.config.sources import check_url as check_url
    from etl.config.sources import load_sources as load_sources
    from etl.config.sources import redact_url as redact_url

__all__, __getattr__, __dir__ = surface(
    __name__,
    {
        "settings": (
            "DEFAULT_MAX_BYTES",
            "DEFAULT_USER_AGENT",
            "PACKAGE_DIR",
            "RULES_DIR",
            "CleanSettings",
            "ExtractSettings",
            "QualitySettings",
            "Settings",
            "load_settings",
        ),
        "sources": (
            "FetchOptions",
            "QualityOptions",
            "SourceConfig",
            "SourceKind",
            "SourcesFile",
            "check_url",
            "load_sources",
            "redact_url",
        ),
    },
)
