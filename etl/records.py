"""Records passed between stages. Plain frozen dataclasses: no I/O, no behaviour beyond naming."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class Interval:
    """A half-open UTC interval ``[start, end)``: the unit a run owns in the lake."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("interval bounds must be timezone-aware")
        if self.end <= self.start:
            raise ValueError(f"interval end {self.end} is not after start {self.start}")

    @property
    def id(self) -> str:
        """Name used in lake keys, e.g. ``20261125T1300Z-20261125T1400Z``."""
        return f"{_stamp(self.start)}-{_stamp(self.end)}"

    @property
    def dt(self) -> str:
        """Partition value: the UTC date of the start."""
        return self.start.astimezone(UTC).strftime("%Y-%m-%d")

    def __contains__(self, t: datetime) -> bool:
        return self.start <= t < self.end

    @classmethod
    def last_complete_hour(cls, now: datetime | None = None) -> Interval:
        now = (now or datetime.now(UTC)).astimezone(UTC)
        end = now.replace(minute=0, second=0, microsecond=0)
        return cls(end - timedelta(hours=1), end)


def _stamp(t: datetime) -> str:
    t = t.astimezone(UTC)
    return t.strftime("%Y%m%dT%H%MZ") if t.second == 0 else t.strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class Page:
    """A fetched (or local) page: the bytes and what we know about where they came from."""

    id: str
    body: bytes
    url: str | None = None
    content_type: str | None = None  # the HTTP Content-Type header, if any
    http_status: int | None = None
    fetched_at: datetime | None = None
    source_id: str | None = None
    raw_ref: str | None = None  # "<warc key>#<offset>"
    rules: str | None = None  # extra rule set named by the source
    language_hint: str | None = None
    published_hint: datetime | None = None  # e.g. a feed item's date
    authors_hint: tuple[str, ...] = ()


@dataclass(frozen=True)
class Extraction:
    """Which body candidate was kept, how far the candidates agreed (4-token shingle overlap,
    0–1; None when only one candidate ran) and whether the body is doubtful."""

    method: str
    agreement: float | None = None
    doubtful: bool = False


@dataclass(frozen=True)
class Extracted:
    """What the extractor found: raw body text (before our rules) and metadata."""

    text: str
    title: str | None = None
    authors: tuple[str, ...] = ()
    published_at: datetime | None = None
    date_source: str | None = None  # json-ld | meta | url | text | feed
    modified_at: datetime | None = None
    sitename: str | None = None
    description: str | None = None
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    image_url: str | None = None
    language: str | None = None
    canonical_url: str | None = None
    captions: tuple[str, ...] = ()
    encoding: str | None = None
    decode_errors: int = 0  # invalid bytes replaced while decoding (etl.article.charset)
    pruned: tuple[Removed, ...] = ()  # blocks the prune rules took out (only when explaining)
    extraction: Extraction | None = None  # the body candidate chosen (etl.article.cascade)


@dataclass(frozen=True)
class Removed:
    """One piece of text a boilerplate rule took out."""

    rule: str
    text: str


@dataclass(frozen=True)
class Cleaned:
    """Text after the boilerplate rules, with what they removed and the captions they moved."""

    text: str
    removed: tuple[Removed, ...] = ()
    captions: tuple[str, ...] = ()
    rules_version: str = ""  # digest of the rule files that produced this


@dataclass(frozen=True)
class Article:
    """One page through extract and clean: the input of normalize."""

    page: Page
    extracted: Extracted
    cleaned: Cleaned
    extra: dict[str, str] = field(default_factory=dict)


def parse_w3c_date(value: str | None) -> datetime | None:
    """A W3C/ISO-8601 date or datetime as UTC; a date alone is midnight UTC; junk gives None."""
    if not value:
        return None
    v = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}", v):
        v += "-01"
    try:
        dt = datetime.fromisoformat(v.replace("z", "Z"))
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)


@dataclass(frozen=True)
class Candidate:
    """An article to fetch, with what its listing said about it."""

    url: str  # as listed (what is fetched)
    canonical_url: str
    article_id: str
    source_id: str
    listed_at: datetime | None = None
    date_kind: str | None = None  # feed-published | feed-updated | news-publication-date | ...
    title_hint: str | None = None
    authors_hint: tuple[str, ...] = ()
    language_hint: str | None = None
    rules: str | None = None
    per_host_delay_s: float | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class Failure:
    """A page that yielded no article: the row that says why (nothing is dropped silently)."""

    id: str
    subject: str
    kind: str
    error: str
