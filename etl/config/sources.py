"""sources.yaml: the typed models of the file (pydantic) and :func:`load_sources`, whose errors
name the file, the source and the field; the URL checks its values go through.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from etl.config.settings import DEFAULT_MAX_BYTES, DEFAULT_USER_AGENT, QualitySettings
from etl.errors import ConfigError

__all__ = [
    "FetchOptions",
    "QualityOptions",
    "SourceConfig",
    "SourceKind",
    "SourcesFile",
    "check_url",
    "load_sources",
    "redact_url",
]


SourceKind = Literal["rss", "sitemap", "urls", "warc"]
_LANGUAGE = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"


def _check_user_agent(value: str | None) -> str | None:
    if value is not None and not re.search(r"https?://|mailto:|@", value):
        raise ValueError("must name a contact (an http(s) URL or an e-mail address)")
    return value


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@`` (for messages and logs)."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@", r"\1***@", url.strip())


def check_url(url: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """Validate an absolute URL fully (scheme, host, port, IPv6 literal, no credentials).

    Raises ``ValueError`` with a message that never repeats credentials. Credentials in a URL
    are refused rather than used: they would otherwise travel into the ``url`` columns, the page
    index, the WARC (as an ``Authorization`` header) and every message naming the URL.
    """
    shown = redact_url(url)
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/\s]+", url) or any(c.isspace() for c in url):
        raise ValueError(f"must be an absolute {'/'.join(schemes)} URL, got {shown!r}")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on 99999 or a non-number
        host = parts.hostname
    except ValueError as exc:
        why = f"invalid port ({exc})" if "port" in str(exc).lower() else str(exc)
        raise ValueError(f"{shown!r} is not a valid URL: {why}") from None
    if parts.scheme.lower() not in schemes:
        raise ValueError(f"must be an absolute {'/'.join(schemes)} URL, got {shown!r}")
    if "@" in parts.netloc:
        raise ValueError(
            f"{shown!r} carries credentials (user:password@); newsetl refuses them so that they "
            "cannot leak into the lake, the raw archive or messages"
        )
    if not host:
        raise ValueError(f"{shown!r} has no host")
    if port == 0:
        raise ValueError(f"{shown!r}: port 0 is not a valid port")
    if "[" in parts.netloc or ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"{shown!r}: {host!r} is not a valid IPv6 address") from None
    return url


def _check_patterns(values: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in values:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
    return values


class SourceConfig(BaseModel):
    """One entry of ``sources:`` in sources.yaml.

    ``include``/``exclude`` are regular expressions searched in the full URL (a URL must match one
    ``include`` pattern when any is given, and no ``exclude`` pattern); ``domains`` are host globs
    (``*.example.com``) a URL's host must match when given (used mostly to filter WARC input).
    ``lookback_hours``: undated candidates (no feed date, lastmod or publication date) are kept only
    by runs whose interval ends within this many hours of now; dated ones must fall in the interval.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z0-9-]+$", max_length=64)]
    kind: SourceKind
    url: str | None = None
    path: str | None = None
    per_host_delay_s: Annotated[float, Field(ge=0, le=3600)] = 1.0
    user_agent: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    max_articles: Annotated[int, Field(ge=1)] | None = None
    language: Annotated[str, Field(pattern=_LANGUAGE)] | None = None
    rules: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] | None = None
    lookback_hours: Annotated[float, Field(ge=0)] = 24.0
    conditional_get: bool = True
    max_sitemaps: Annotated[int, Field(ge=1, le=10_000)] = 100
    # work division (etl.runner.chunks): candidates, or WARC response records, per mapped chunk;
    # None: the sources file's `chunk_size` (None there too: one task for the whole source)
    chunk_size: Annotated[int, Field(ge=1)] | None = None

    _ua = field_validator("user_agent")(_check_user_agent)
    _patterns = field_validator("include", "exclude")(_check_patterns)

    @field_validator("url")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None:
            check_url(value, schemes=("http", "https", "s3"))
        return value

    @model_validator(mode="after")
    def _where(self) -> SourceConfig:
        if self.kind in ("rss", "sitemap") and not (self.url and self.url.startswith("http")):
            raise ValueError(f"kind {self.kind} needs `url` (an http(s) URL)")
        if self.kind in ("urls", "warc") and not (self.path or self.url):
            raise ValueError(f"kind {self.kind} needs `path` (or `url`)")
        if self.url and self.path:
            raise ValueError("give either `url` or `path`, not both")
        return self


class FetchOptions(BaseModel):
    """The ``fetch:`` section of sources.yaml: limits every fetch of a run obeys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_concurrency: Annotated[int, Field(ge=1, le=512)] = 16
    per_host_concurrency: Annotated[int, Field(ge=1, le=64)] = 2
    connect_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    read_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    total_timeout_s: Annotated[float, Field(gt=0)] = 120.0
    max_bytes: Annotated[int, Field(ge=1024)] = DEFAULT_MAX_BYTES
    max_redirects: Annotated[int, Field(ge=0, le=30)] = 5
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 4
    backoff_base_s: Annotated[float, Field(ge=0)] = 1.0
    backoff_max_s: Annotated[float, Field(ge=0)] = 60.0
    max_retry_after_s: Annotated[float, Field(ge=0)] = 120.0
    max_crawl_delay_s: Annotated[float, Field(ge=0)] = 60.0
    # runs (newsetl run invocations, Airflow tries) a URL failing transiently may use before its
    # failure becomes a terminal fetch_log row; until then the interval is incomplete
    max_attempts_across_runs: Annotated[int, Field(ge=1, le=100)] = 3
    # seconds from the start of a run (a `newsetl run`, an Airflow task) after which no new
    # request starts and requests in flight are cut: the URLs left are pending (kind
    # `deadline`), fetched by the next try or run. None: no run-level deadline
    run_deadline_s: Annotated[float, Field(gt=0)] | None = None


class QualityOptions(BaseModel):
    """The ``quality:`` section of sources.yaml: thresholds of the gate run before publishing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_empty_rate: Annotated[float, Field(ge=0, le=1)] = 0.2
    max_duplicate_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    min_words: Annotated[int, Field(ge=0)] = 20
    min_title_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    min_date_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    min_author_share: Annotated[float, Field(ge=0, le=1)] = 0.0

    def settings(self) -> QualitySettings:
        return QualitySettings(**self.model_dump())


class SourcesFile(BaseModel):
    """The whole sources.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: tuple[SourceConfig, ...]
    allow_private_addresses: bool = False
    user_agent: str = DEFAULT_USER_AGENT
    fetch: FetchOptions = FetchOptions()
    quality: QualityOptions | None = None  # None: the settings' defaults
    chunk_size: Annotated[int, Field(ge=1)] | None = None  # default of every source's chunk_size

    _ua = field_validator("user_agent")(_check_user_agent)

    @model_validator(mode="after")
    def _unique(self) -> SourcesFile:
        seen: set[str] = set()
        for s in self.sources:
            if s.id in seen:
                raise ValueError(f"duplicate source id {s.id!r}")
            seen.add(s.id)
        return self


def _describe(err: ValidationError, data: Any) -> str:
    parts = []
    for e in err.errors():
        loc = list(e["loc"])
        where = ".".join(str(x) for x in loc)
        if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int):
            try:
                sid = data["sources"][loc[1]].get("id", f"#{loc[1]}")
            except (KeyError, IndexError, TypeError, AttributeError):
                sid = f"#{loc[1]}"
            field_name = ".".join(str(x) for x in loc[2:]) or "(entry)"
            where = f"source {sid!r} field {field_name}"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def load_sources(path: str | Path) -> SourcesFile:
    """Read and validate a sources file; errors name the file, the source and the field."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(p), "sources file not found") from None
    except IsADirectoryError:
        raise ConfigError(str(p), "is a folder, not a sources file") from None
    except UnicodeDecodeError as exc:
        msg = f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
        raise ConfigError(str(p), msg) from None
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read the sources file: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(p), f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(p), "expected a mapping with a `sources:` list")
    try:
        loaded = SourcesFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(str(p), _describe(exc, data)) from None
    if not loaded.sources:
        raise ConfigError(str(p), "`sources:` is empty: there is nothing to run")
    return loaded
