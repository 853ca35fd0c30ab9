"""The raw archive: every HTTP exchange the fetcher makes, as WARC records, and reading them back.

:class:`WarcArchive` keeps one ``.warc.gz`` per source for the interval being run, in a
local work directory laid out like the lake (``raw/dt=YYYY-MM-DD/source=<id>/<interval>.warc.gz``);
the store uploads :meth:`WarcArchive.files` afterwards. Each HTTP exchange becomes a ``request``
and a ``response`` record, each its own gzip member, so ``raw_ref`` = ``"<key>#<offset>"`` of the
response record can be read back alone (:func:`read_record`). Payloads are kept as sent (still
content-encoded; ``Transfer-Encoding`` is renamed ``X-Crawler-Transfer-Encoding`` as the body is
stored de-chunked); a body cut short is marked with ``WARC-Truncated``. :func:`record_page` turns
a response record into a :class:`~etl.records.Page` (also for WARC files read as a source,
:mod:`etl.discover.warc`).
"""

from __future__ import annotations

import gzip
import io
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from etl.config import SourceConfig
from etl.errors import SourceError
from etl.lake import raw_key
from etl.records import Interval, Page, parse_w3c_date
from etl.urls import article_id

__all__ = [
    "HTML_TYPES",
    "Exchange",
    "Opener",
    "WarcArchive",
    "raw_loader",
    "read_record",
    "record_page",
]


Opener = Callable[[str], IO[bytes]]
"""Opens a local path or ``s3://`` URI for binary reading (:class:`SourceFiles` is one)."""


HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass(frozen=True)
class Exchange:
    """One HTTP request and the response to it, as they went over the wire."""

    url: str
    request_headers: Sequence[tuple[str, str]]
    status: int
    reason: str
    response_headers: Sequence[tuple[str, str]]
    payload: bytes
    fetched_at: datetime
    truncated: str | None = None
    peer_ip: str | None = None
    method: str = "GET"


class WarcArchive:
    """The raw archive of one interval: a ``.warc.gz`` per source, written as responses arrive."""

    def __init__(self, interval: Interval, workdir: Path) -> None:
        self.interval = interval
        self.workdir = Path(workdir)
        self._lock = threading.Lock()
        self._files: dict[str, tuple[str, Path, IO[bytes]]] = {}

    def write(self, source_id: str, ex: Exchange) -> str:
        """Append the request and response records; returns ``raw_ref`` of the response."""
        date = ex.fetched_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        req_id, resp_id = f"<urn:uuid:{uuid.uuid4()}>", f"<urn:uuid:{uuid.uuid4()}>"
        target = ex.url.split("#", 1)[0]
        path = target.split("/", 3)[3] if target.count("/") >= 3 else ""
        req_http = StatusAndHeaders(
            f"{ex.method} /{path} HTTP/1.1", list(ex.request_headers), is_http_request=True
        )
        req = self._member(
            target,
            "request",
            b"",
            req_http,
            {"WARC-Record-ID": req_id, "WARC-Date": date, "WARC-Concurrent-To": resp_id},
        )
        headers = [
            ("X-Crawler-Transfer-Encoding" if k.lower() == "transfer-encoding" else k, v)
            for k, v in ex.response_headers
        ]
        resp_http = StatusAndHeaders(f"{ex.status} {ex.reason}".strip(), headers, "HTTP/1.1")
        extra = {"WARC-Record-ID": resp_id, "WARC-Date": date, "WARC-Concurrent-To": req_id}
        if ex.truncated:
            extra["WARC-Truncated"] = ex.truncated
        if ex.peer_ip:
            extra["WARC-IP-Address"] = ex.peer_ip
        resp = self._member(target, "response", ex.payload, resp_http, extra)
        with self._lock:
            key, _, fh = self._open(source_id)
            fh.write(req)
            offset = fh.tell()
            fh.write(resp)
        return f"{key}#{offset}"

    def files(self) -> list[tuple[str, Path]]:
        """``(lake key, local path)`` of every file written so far (flushed)."""
        with self._lock:
            for _, _, fh in self._files.values():
                fh.flush()
            return [(key, p) for key, p, _ in self._files.values()]

    def close(self) -> None:
        with self._lock:
            for _, _, fh in self._files.values():
                fh.close()

    def __enter__(self) -> WarcArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, source_id: str) -> tuple[str, Path, IO[bytes]]:
        entry = self._files.get(source_id)
        if entry is None:
            key = raw_key(source_id, self.interval)
            p = self.workdir / key
            p.parent.mkdir(parents=True, exist_ok=True)
            fh = p.open("wb")
            info = {
                "software": "newsetl",
                "format": "WARC File Format 1.1",
                "source": source_id,
                "interval": self.interval.id,
            }
            fh.write(self._warcinfo(Path(key).name, info))
            entry = self._files[source_id] = (key, p, fh)
        return entry

    @staticmethod
    def _member(uri: str, kind: str, payload: bytes, http: Any, headers: dict[str, str]) -> bytes:
        buf = io.BytesIO()
        writer = WARCWriter(buf, gzip=False, warc_version="1.1")
        record = writer.create_warc_record(
            uri,
            kind,
            payload=io.BytesIO(payload),
            length=len(payload),
            http_headers=http,
            warc_headers_dict=headers,
        )
        writer.write_record(record)
        return gzip.compress(buf.getvalue(), compresslevel=6)

    @staticmethod
    def _warcinfo(filename: str, info: dict[str, str]) -> bytes:
        buf = io.BytesIO()
        writer = WARCWriter(buf, gzip=False, warc_version="1.1")
        writer.write_record(writer.create_warcinfo_record(filename, info))
        return gzip.compress(buf.getvalue(), compresslevel=6)


def read_record(
    stream: IO[bytes], offset: int, *, ref: str | None = None, max_bytes: int = 50 * 1024 * 1024
) -> Page:
    """The response record at ``offset`` of a WARC (what a ``raw_ref`` points to) as a Page.

    Any response (any status or type); the body is decoded from its Content-Encoding.
    """
    where = ref or f"#{offset}"
    stream.seek(offset)
    for record in ArchiveIterator(stream):
        page = record_page(record, ref=where, max_bytes=max_bytes, html_only=False)
        if page is not None:
            return page
        break
    raise SourceError(where, "no readable response record at this offset", kind="parse")


def raw_loader(opener: Opener) -> Callable[[str], Page]:
    """A ``raw_ref`` → Page function; ``opener`` opens a raw key as a *seekable* stream."""

    def load(ref: str) -> Page:
        key, _, offset = ref.rpartition("#")
        if not key or not offset.isdigit():
            raise SourceError(ref, "not a raw_ref (<key>#<offset>)", kind="parse")
        with opener(key) as fh:
            return read_record(fh, int(offset), ref=ref)

    return load


def record_page(
    record: Any,
    *,
    ref: str,
    max_bytes: int,
    source: SourceConfig | None = None,
    html_only: bool = True,
) -> Page | None:
    """A response record as a Page (``html_only``: HTML 200 only); too large gives None."""
    if record.rec_type != "response" or record.http_headers is None:
        return None
    http = record.http_headers
    try:
        status = int(http.get_statuscode())
    except (TypeError, ValueError):
        return None
    ctype = http.get_header("Content-Type") or ""
    if html_only and (status != 200 or ctype.split(";")[0].strip().lower() not in HTML_TYPES):
        return None
    body = record.content_stream().read(max_bytes + 1)
    if len(body) > max_bytes:
        return None
    url = record.rec_headers.get_header("WARC-Target-URI") or ""
    return Page(
        id=article_id(url),
        body=body,
        url=url,
        content_type=ctype,
        http_status=status,
        fetched_at=parse_w3c_date(record.rec_headers.get_header("WARC-Date")),
        source_id=source.id if source else None,
        raw_ref=ref,
        rules=source.rules if source else None,
        language_hint=source.language if source else None,
    )
