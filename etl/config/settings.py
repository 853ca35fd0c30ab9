"""The settings an entry point resolves once (:func:`load_settings`): the lake, the sources file,
workers, leases, and the article core's settings; explicit arguments over ``NEWSETL_*`` variables
over defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from etl.errors import ConfigError
from etl.lake import (
    DEFAULT_LAKE,
    LakeSettings,
    LeaseSettings,
    lake_settings_from_airflow_conn,
    lake_settings_from_env,
)

__all__ = [  # the lake's own settings (LakeSettings, LeaseSettings) are etl.lake's
    "DEFAULT_MAX_BYTES",
    "DEFAULT_USER_AGENT",
    "PACKAGE_DIR",
    "RULES_DIR",
    "CleanSettings",
    "ExtractSettings",
    "QualitySettings",
    "Settings",
    "load_settings",
]

PACKAGE_DIR = Path(__file__).resolve().parents[1]
RULES_DIR = PACKAGE_DIR / "article" / "rules"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # one page: the fetch body cap and the local-file cap
DEFAULT_USER_AGENT = "newsetl/0.1 (+https://github.com/newsetl/newsetl; news-ingestion bot)"


@dataclass(frozen=True)
class ExtractSettings:
    """How pages are turned into article text and metadata."""

    favor_precision: bool = True
    favor_recall: bool = False
    include_comments: bool = False
    include_tables: bool = True
    prune_file: Path = RULES_DIR / "prune.yaml"
    min_year: int = 1995
    max_page_bytes: int = DEFAULT_MAX_BYTES  # also caps reading and inflating saved pages
    max_elements: int = 20_000  # more: a too-complex row (bounds the time per page; real news
    # pages have 1,000-2,000: sh_dev tops at 1,737)
    explain: bool = False  # also report what the prune rules remove (newsetl extract --human)
    domain_rules: bool = True  # False: global rules only (`newsetl eval --global-only`)


@dataclass(frozen=True)
class CleanSettings:
    """Where the boilerplate rules live."""

    rules_file: Path = RULES_DIR / "boilerplate.yaml"


@dataclass(frozen=True)
class QualitySettings:
    """Thresholds of the quality gate (the validate step) over a published interval."""

    max_empty_rate: float = 0.2  # share of articles with fewer than min_words words
    max_duplicate_rate: float = 0.0  # share of rows repeating an article_id of the interval
    min_words: int = 20
    min_title_share: float = 0.0  # share of articles with a title (0: not checked)
    min_date_share: float = 0.0  # share with a publication date
    min_author_share: float = 0.0  # share with at least one author


@dataclass(frozen=True)
class Settings:
    """Everything an entry point needs, resolved once.

    ``lake`` is the lake URI; ``lake_settings`` says how to reach it (its ``uri`` is kept equal
    to ``lake``: give either, the other follows).
    """

    lake: str = DEFAULT_LAKE
    sources: Path | None = None
    workers: int = 1
    seen_days: int = 7  # how far back the seen index looks for article ids already in the lake
    n_shards: int = 1  # article files per interval (rows assigned by a stable hash of the id)
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    clean: CleanSettings = field(default_factory=CleanSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    lake_settings: LakeSettings = field(default_factory=LakeSettings)
    lease: LeaseSettings = field(default_factory=LeaseSettings)  # interval / publish leases

    def __post_init__(self) -> None:
        given = self.lake_settings.uri
        if given == self.lake:
            return
        if given == DEFAULT_LAKE:
            object.__setattr__(self, "lake_settings", replace(self.lake_settings, uri=self.lake))
        elif self.lake == DEFAULT_LAKE:
            object.__setattr__(self, "lake", given)
        else:
            raise ConfigError(
                "lake", f"lake {self.lake!r} differs from lake_settings.uri {given!r}"
            )


def load_settings(
    env: Mapping[str, str] | None = None,
    *,
    lake: str | None = None,
    sources: str | Path | None = None,
    workers: int | None = None,
    lake_conn: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve settings: explicit arguments win over ``NEWSETL_*`` variables over defaults.

    ``lake_conn`` (an Airflow AWS connection as a dict, see
    :func:`lake_settings_from_airflow_conn`) replaces the ``AWS_*`` variables as the source of
    the lake's endpoint and credentials.
    """
    env = os.environ if env is None else env
    lake_uri = lake or env.get("NEWSETL_LAKE") or DEFAULT_LAKE
    if lake_conn is not None:
        lake_settings = lake_settings_from_airflow_conn(lake_conn, lake_uri)
    else:
        lake_settings = lake_settings_from_env(env, lake_uri)
    src = sources or env.get("NEWSETL_SOURCES") or None
    n = workers
    if n is None:
        raw = env.get("NEWSETL_WORKERS", "1")
        try:
            n = int(raw)
        except ValueError:
            raise ConfigError("NEWSETL_WORKERS", f"must be a whole number, got {raw!r}") from None
    if n < 1:
        raise ConfigError("workers", f"must be at least 1, got {n}")
    _check_lake_path(lake_uri)
    return Settings(
        lake=lake_uri,
        sources=Path(src) if src else None,
        workers=n,
        lake_settings=lake_settings,
        lease=_lease_settings(env),
    )


def _check_lake_path(uri: str) -> None:
    """A local lake must be a folder (or not exist yet): not a file, not under a file."""
    if "://" in uri and not uri.startswith("file://"):
        return
    path = Path(uri.removeprefix("file://")).expanduser()
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                what = "is" if p == path else f"is under {p}, which is"
                raise ConfigError(f"lake {uri}", f"{what} a file, not a folder")
            return


def _lease_settings(env: Mapping[str, str]) -> LeaseSettings:
    """``NEWSETL_LEASE_TTL_S``, ``NEWSETL_LEASE_WAIT_S``, ``NEWSETL_PUBLISH_WAIT_S`` (seconds)."""
    names = {
        "ttl_s": "NEWSETL_LEASE_TTL_S",
        "wait_s": "NEWSETL_LEASE_WAIT_S",
        "publish_wait_s": "NEWSETL_PUBLISH_WAIT_S",
    }
    values: dict[str, float] = {}
    for name, var in names.items():
        raw = env.get(var)
        if raw is None or not raw.strip():
            continue
        try:
            values[name] = float(raw)
        except ValueError:
            raise ConfigError(var, f"must be a number of seconds, got {raw!r}") from None
    try:
        return LeaseSettings(**values)
    except ConfigError as exc:
        raise ConfigError(", ".join(names[k] for k in values) or "lease", exc.message) from None
