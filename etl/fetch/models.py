"""The records of fetching: policy, validators, log rows, results (etl.fetch)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx
from protego import Protego

from etl.config import DEFAULT_MAX_BYTES, DEFAULT_USER_AGENT, SourcesFile
from etl.errors import FetchError, FetchTerminal, FetchTransient
from etl.fetch.body import Body
from etl.records import Page
from etl.urls import article_id, origin

if TYPE_CHECKING:
    from etl.records import Candidate

__all__ = [
    "FetchLog",
    "FetchPolicy",
    "FetchResult",
    "Validators",
    "validators_from_json",
    "validators_to_json",
]

FETCH_LOG_COLUMNS = (
    *("url", "source_id", "status", "error_class", "error", "attempts", "bytes"),
    *("elapsed_ms", "fetched_at", "final_url", "raw_ref", "purpose"),
)


@dataclass(frozen=True)
class FetchPolicy:
    """Limits for one run's fetches (:meth:`from_config` reads the ``fetch:`` section)."""

    user_agent: str = DEFAULT_USER_AGENT
    allow_private_addresses: bool = False
    max_concurrency: int = 16
    per_host_concurrency: int = 2
    per_host_delay_s: float = 1.0  # when a candidate names none
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    total_timeout_s: float = 120.0
    max_bytes: int = DEFAULT_MAX_BYTES  # articles
    max_document_bytes: int = 50 * 1024 * 1024  # feeds, sitemaps, lists
    max_redirects: int = 5
    max_attempts: int = 4
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    max_retry_after_s: float = 120.0
    max_crawl_delay_s: float = 60.0
    lookahead: int = 10_000  # candidates queued ahead of the workers

    @classmethod
    def from_config(cls, sources: SourcesFile) -> FetchPolicy:
        names = {f.name for f in fields(cls)}
        options = {k: v for k, v in sources.fetch.model_dump().items() if k in names}
        private = sources.allow_private_addresses
        return cls(user_agent=sources.user_agent, allow_private_addresses=private, **options)


@dataclass(frozen=True)
class Validators:
    """Conditional-GET validators of a document, and where its last full body is archived."""

    etag: str | None = None
    last_modified: str | None = None
    raw_ref: str | None = None

    def headers(self) -> dict[str, str]:
        h = {"If-None-Match": self.etag} if self.etag else {}
        if self.last_modified:
            h["If-Modified-Since"] = self.last_modified
        return h


@dataclass(frozen=True)
class FetchLog:
    """One ``fetch_log`` row: a URL tried and what came of it (``error_class``: the error kind)."""

    url: str
    source_id: str | None
    purpose: str  # article | feed | sitemap | urls | robots
    status: int | None
    error_class: str | None
    error: str | None
    attempts: int
    bytes: int | None  # body bytes of the last response, as received
    elapsed_ms: int
    fetched_at: datetime | None
    final_url: str | None = None
    raw_ref: str | None = None
    content_type: str | None = None

    def as_row(self, dt: str) -> dict[str, Any]:
        """The row in the shape of ``schemas/fetch_log.v1.json``."""
        return {**{k: getattr(self, k) for k in FETCH_LOG_COLUMNS}, "dt": dt}


@dataclass(frozen=True)
class FetchResult:
    """The outcome for one URL: always a log row; a page on success; the error otherwise."""

    log: FetchLog
    page: Page | None = None
    candidate: Candidate | None = None
    error: FetchError | None = None
    validators: Validators | None = None


@dataclass
class Job:
    """A URL being fetched (mutable: attempts are counted on it)."""

    url: str
    source_id: str | None
    purpose: str
    spacing: float
    user_agent: str
    candidate: Candidate | None = None
    validators: Validators | None = None
    max_attempts: int = 1
    attempts: int = 0
    started: float | None = None

    @property
    def origin(self) -> str:
        return origin(self.url)


@dataclass(frozen=True)
class Again:
    """Retry ``job`` from monotonic time ``at``."""

    job: Job
    at: float


@dataclass(frozen=True)
class Reply:
    """One HTTP response, read (within limits) and archived."""

    url: str
    status: int
    headers: httpx.Headers
    body: Body
    raw_ref: str | None
    fetched_at: datetime


@dataclass(frozen=True)
class Robots:
    """A host's robots.txt: rules (``None``: no restrictions), or why the host is off limits."""

    parser: Protego | None
    error: FetchError | None = None

    def verdict(self, url: str, user_agent: str) -> FetchError | None:
        if self.error is not None:
            return type(self.error)(url, self.error.message, kind=self.error.kind)
        if self.parser is not None and not self.parser.can_fetch(url, user_agent):
            return FetchTerminal(url, "disallowed by robots.txt", kind="robots")
        return None

    @classmethod
    def from_result(cls, host: str, result: FetchResult) -> Robots:
        """RFC 9309: 2xx gives rules; 4xx none; 429, 5xx or no answer: the host is off limits."""
        status, error = result.log.status, result.error
        if error is not None and (status is None or status >= 500 or status == 429):
            if error.kind == "address-blocked":
                return cls(None, error)
            msg = f"robots.txt unavailable ({error.kind}): not fetching from {host}"
            return cls(None, FetchTransient(host, msg, kind="robots"))
        if result.page is None:
            return cls(None)
        return cls(Protego.parse(result.page.body.decode("utf-8", "replace")))


def validators_to_json(validators: Mapping[str, Validators]) -> bytes:
    """Serialise a URL → validators mapping (to keep it in the lake between runs)."""
    data = {url: asdict(v) for url, v in sorted(validators.items())}
    return json.dumps(data, indent=1, sort_keys=True).encode("utf-8")


def validators_from_json(data: bytes) -> dict[str, Validators]:
    """Read what :func:`validators_to_json` wrote; unknown fields are ignored."""
    raw = json.loads(data.decode("utf-8"))
    names = {f.name for f in fields(Validators)}
    return {url: Validators(**{k: v for k, v in d.items() if k in names}) for url, d in raw.items()}


def conclude(
    job: Job, reply: Reply | None, error: FetchError | None, url: str | None = None
) -> FetchResult:
    """The result of ``job``: its log row, and its page (and validators) on success."""
    r, c = reply, job.candidate
    elapsed = 0 if job.started is None else int((time.monotonic() - job.started) * 1000)
    ctype = r.headers.get("content-type") if r else None
    row = FetchLog(
        url=job.url,
        source_id=job.source_id,
        purpose=job.purpose,
        status=r.status if r else None,
        error_class=error.kind if error else None,
        error=error.message if error else None,
        attempts=job.attempts,
        bytes=len(r.body.raw) if r else None,
        elapsed_ms=elapsed,
        fetched_at=r.fetched_at if r else None,
        final_url=r.url if r else url,
        raw_ref=r.raw_ref if r else None,
        content_type=ctype,
    )
    if error is not None or r is None or r.body.data is None or not 200 <= r.status < 300:
        return FetchResult(row, None, c, error)
    try:
        page_id = article_id(r.url)
    except ValueError:
        page_id = c.article_id if c else r.url
    page = Page(
        id=page_id,
        body=r.body.data,
        url=r.url,
        content_type=ctype,
        http_status=r.status,
        fetched_at=r.fetched_at,
        source_id=job.source_id,
        raw_ref=r.raw_ref,
        rules=c.rules if c else None,
        language_hint=c.language_hint if c else None,
        published_hint=c.listed_at if c else None,
        authors_hint=c.authors_hint if c else (),
    )
    etag, modified = r.headers.get("etag"), r.headers.get("last-modified")
    validators = None
    if job.purpose != "article" and (etag or modified):
        validators = Validators(etag, modified, r.raw_ref)
    return FetchResult(row, page, c, None, validators)


def status_error(url: str, status: int) -> FetchError | None:
    """The error a final (non-redirect) status means, ``None`` for success and 304."""
    if 200 <= status < 300 or status == 304:
        return None
    if status == 429:
        return FetchTransient(url, "HTTP 429 Too Many Requests", kind="http-429")
    if status >= 500:
        return FetchTransient(url, f"HTTP {status}", kind="http-5xx")
    if status >= 400:
        return FetchTerminal(url, f"HTTP {status}", kind="http-4xx")
    return FetchTerminal(url, f"unexpected HTTP {status}", kind=f"http-{status // 100}xx")


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or an HTTP date)."""
    if not value:
        return None
    v = value.strip()
    if v.isdigit():
        return float(v)
    try:
        return max(0.0, (parsedate_to_datetime(v) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None
