"""newsetl: news pages in, clean schema-checked Parquet out.

The pipeline is one package per stage, composed by :mod:`etl.runner`:
:mod:`etl.discover` → :mod:`etl.fetch` → :mod:`etl.article` (extract, clean, normalize, dedupe)
→ :mod:`etl.lake` (publish, query); :mod:`etl.report` reads the lake back. Shared records and
settings live in :mod:`etl.records`, :mod:`etl.config`, :mod:`etl.errors`, :mod:`etl.urls` and
:mod:`etl.schema`. Each package's public names are in its ``__all__``; everything else is private.

For library use, the few entry points below load lazily (``import etl`` loads nothing heavy).
Code inside this repository imports from the packages, never from ``etl`` itself.
"""

from typing import TYPE_CHECKING

from etl._lazy import surface

if TYPE_CHECKING:
    from etl.article.process import process_page as process_page
    from etl.config.settings import Settings as Settings
    from etl.config.settings import load_settings as load_settings
    from etl.config.sources import load_sources as load_sources
    from etl.errors import EtlError as EtlError
    from etl.lake.opener import open_lake as open_lake
    from etl.records import Article as Article
    from etl.records import Interval as Interval
    from etl.records import Page as Page
    from etl.runner.interval import run_interval as run_interval
    from etl.runner.run import Run as Run

__all__, __getattr__, __dir__ = surface(
    __name__,
    {
        "article.process": ("process_page",),
        "config.settings": ("Settings", "load_settings"),
        "config.sources": ("load_sources",),
        "errors": ("EtlError",),
        "lake.opener": ("open_lake",),
        "records": ("Article", "Interval", "Page"),
        "runner.interval": ("run_interval",),
        "runner.run": ("Run",),
    },
)
