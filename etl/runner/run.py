"""What every step is given: :class:`Run` (settings, sources, interval, lake, attempt); the plan."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from etl.config import Settings, SourceConfig, SourcesFile, load_sources
from etl.errors import ConfigError, EtlError
from etl.fetch import Resolver, http_client, system_resolver
from etl.lake import (
    KEY_UNSAFE,
    Lake,
    new_attempt,
    open_lake,
    staging_key,
    write_snapshot,
)
from etl.records import Interval

__all__ = ["SEEN_SNAPSHOT", "Run", "plan", "plan_step"]

log = logging.getLogger("etl.runner.run")

SEEN_SNAPSHOT = "seen.parquet"  # the interval's seen index, under the attempt's staging


@dataclass(frozen=True)
class Run:
    """Everything a step needs: settings, the sources file, the interval, the lake, the attempt.

    ``attempt`` names this run attempt's staging (``_staging/<interval>/<attempt>/``): a fresh
    one per ``newsetl run``, one per DAG run (made in ``plan``, carried in the items).
    """

    settings: Settings
    sources: SourcesFile
    interval: Interval
    lake: Lake
    refetch: bool = False
    resolver: Resolver = system_resolver
    attempt: str = field(default_factory=new_attempt)
    # time.monotonic() after which no fetch starts (fetch.run_deadline_s from the opening)
    deadline: float = math.inf
    # what this Run read once and shares between its steps (the seen index of discovery)
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def open(
        cls,
        settings: Settings,
        interval: Interval,
        *,
        refetch: bool = False,
        attempt: str | None = None,
    ) -> Run:
        if settings.sources is None:
            raise ConfigError("sources", "no sources file: set NEWSETL_SOURCES or pass --sources")
        sources = load_sources(settings.sources)
        if sources.quality is not None:  # the sources file's thresholds win
            settings = replace(settings, quality=sources.quality.settings())
        if attempt is not None and (not attempt or KEY_UNSAFE.search(attempt)):
            raise ConfigError("attempt", f"not a key-safe attempt id: {attempt!r}")
        limit = sources.fetch.run_deadline_s
        return cls(
            settings,
            sources,
            interval,
            open_lake(settings.lake_settings),
            refetch,
            attempt=attempt or new_attempt(),
            deadline=time.monotonic() + limit if limit is not None else math.inf,
        )

    def source(self, source_id: str) -> SourceConfig:
        for s in self.sources.sources:
            if s.id == source_id:
                return s
        raise ConfigError(str(self.settings.sources), f"no source with id {source_id!r}")

    def staging(self, *parts: str) -> str:
        """A key under this attempt's staging: ``_staging/<interval>/<attempt>/<parts>``."""
        return staging_key(self.interval, self.attempt, *parts)

    def client(self) -> httpx.Client:
        return http_client()  # every request under a deadline (etl.fetch.deadline)


def plan(run: Run) -> list[str]:
    """Validated source ids of the run (the sources file was checked when the run opened)."""
    return [s.id for s in run.sources.sources]


def plan_step(run: Run) -> list[str]:
    """``plan`` of a DAG run: the source ids, and the interval's seen index read once and stored
    in the attempt's staging (:data:`SEEN_SNAPSHOT`, :func:`etl.lake.write_snapshot`) for the
    run's other tasks. Without it (a failed write) they read the lake themselves."""
    try:
        write_snapshot(
            run.lake,
            run.staging(SEEN_SNAPSHOT),
            days=run.settings.seen_days,
            exclude=run.interval,
        )
    except EtlError as exc:
        log.warning(
            "interval %s: no seen snapshot (%s); each task reads the index", run.interval.id, exc
        )
    return plan(run)
