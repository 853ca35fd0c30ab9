"""What each step returns: the values that travel between Airflow tasks (XCom) and between the
steps of ``newsetl run``. Declared once, used by the runner, the CLI and ``dags/news_ingest.py``.

Each is a JSON-able ``TypedDict`` of keys and counts (never pages or rows). A later step's result
extends the one it was given: ``Discovered`` ⊂ ``Fetched`` ⊂ ``Processed``.
"""

# no `from __future__ import annotations`: TypedDict reads NotRequired from real annotations
from typing import Any, Literal, NotRequired, TypedDict

from etl.errors import ErrorKind

__all__ = [
    "Chunk",
    "Discovered",
    "Fetched",
    "IntervalResult",
    "Mode",
    "Processed",
    "Published",
    "Status",
    "Validated",
]

Mode = Literal["fetch", "replay", "resume", "warc", "failed", "error"]
"""What a source does this attempt: fetch its candidates, replay its raw zone, resume its pending
URLs, read WARC files; ``failed``: its discovery failed; ``error``: a step raised for it."""

Status = Literal["complete", "incomplete"]


class Chunk(TypedDict, total=False):
    """One chunk of a chunked source (etl.runner.chunks): its id and what it covers, merged into
    the source's item to make the chunk's own item (one mapped task)."""

    chunk: str  # 0000, 0001, ...
    head: bool  # the chunk that archives the source's listings
    path: str  # a WARC chunk: its file and byte range (to_byte None: to the end)
    from_byte: int
    to_byte: int | None
    mode: Mode
    count: int
    candidates: str  # a listed chunk: its staged candidates


class Discovered(TypedDict):
    """``discover_step``: a source's candidates (a staged key) or its mode for this attempt.
    A chunked source lists its ``chunks``; a chunk's item carries the :class:`Chunk` keys."""

    source: str
    interval: str
    attempt: str
    mode: Mode
    count: NotRequired[int]
    candidates: NotRequired[str]  # staged JSON lines of the candidates (mode fetch)
    error: NotRequired[str]  # modes failed / error
    kind: NotRequired[ErrorKind]
    transient: NotRequired[bool]
    listing: NotRequired[str | None]
    chunks: NotRequired[list[Chunk]]
    chunk: NotRequired[str]
    head: NotRequired[bool]
    path: NotRequired[str]
    from_byte: NotRequired[int]
    to_byte: NotRequired[int | None]
    chunk_count: NotRequired[int]  # a chunked source's results merged (merge_items): how many


class Fetched(Discovered, total=False):
    """``fetch_step``: the source's raw zone after this attempt."""

    pages: int
    fetched: int
    fetch_failed: int
    pending: list[str]  # URLs a transient failure left for the next try or run
    status: Status


class Processed(Fetched, total=False):
    """``process_step`` (or a source's ``error`` result): its staged article file and figures."""

    articles: str  # staged Parquet key
    rows: int
    failed: int
    rule_hits: dict[str, int]
    rules_version: str


class Published(TypedDict):
    """``publish_step``: the published interval (its manifest's figures)."""

    interval: str
    dt: str
    articles: int
    keys: list[str]
    manifest: str
    urls_tried: int
    deleted: list[str]
    status: Status
    pending: list[str]
    failed_sources: list[dict[str, Any]]
    attempt: str


class Validated(TypedDict):
    """``validate_step``: the checks of the published interval."""

    interval: str
    articles: int
    empty_rate: float
    duplicate_rate: float
    status: Status
    pending: list[str]
    checked_at: str


class IntervalResult(Published):
    """``run_interval`` (``newsetl run``): the publish, its checks and every source's result."""

    quality: Validated
    sources: list[Processed]
