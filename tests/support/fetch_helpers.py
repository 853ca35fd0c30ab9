"""Helpers for the fetch/sources/warc tests (policies, candidates, a loopback-only transport)."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from warcio.archiveiterator import ArchiveIterator

from etl.fetch.fetcher import Fetcher
from etl.fetch.models import FetchPolicy, FetchResult
from etl.records import Candidate
from etl.urls import article_id, canonicalize


def policy(**overrides: Any) -> FetchPolicy:
    """A fast policy for tests: loopback allowed, tiny delays and backoffs."""
    base: dict[str, Any] = {
        "allow_private_addresses": True,
        "per_host_delay_s": 0.0,
        "backoff_base_s": 0.02,
        "backoff_max_s": 0.1,
        "connect_timeout_s": 2.0,
        "read_timeout_s": 2.0,
        "total_timeout_s": 5.0,
        "max_attempts": 3,
    }
    base.update(overrides)
    return FetchPolicy(**base)


def cand(url: str, *, delay: float | None = 0.0, source_id: str = "test", **kw: Any) -> Candidate:
    return Candidate(
        url=url,
        canonical_url=canonicalize(url),
        article_id=article_id(url),
        source_id=source_id,
        per_host_delay_s=delay,
        **kw,
    )


def fetch(
    urls: Sequence[str] | Iterable[Candidate], fetch_policy: FetchPolicy | None = None, **kw: Any
) -> tuple[dict[str, FetchResult], Fetcher]:
    """Fetch URLs (or candidates) with a fresh client and Fetcher; results by URL."""
    cands = [u if isinstance(u, Candidate) else cand(u) for u in urls]
    with httpx.Client(trust_env=False) as client:
        fetcher = Fetcher(client, fetch_policy or policy(), **kw)
        results = {r.log.url: r for r in fetcher.fetch_all(cands)}
    return results, fetcher


class LoopbackRouter(httpx.BaseTransport):
    """Sends every request to one local port, whatever its URL says; records what it was asked.

    Lets address-guard tests use public-looking names and addresses (from a stub resolver)
    while no packet leaves 127.0.0.1.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: list[tuple[str, str]] = []  # (URL host as sent, Host header)
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.url.host, request.headers.get("host", "")))
        request.url = request.url.copy_with(host="127.0.0.1", port=self.port, scheme="http")
        response = self._inner.handle_request(request)
        # drop the socket info: the peer (127.0.0.1) is the router's, not the "public" host's
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=response.stream,
            extensions={k: v for k, v in response.extensions.items() if k != "network_stream"},
        )

    def close(self) -> None:
        self._inner.close()


def stub_resolver(table: Mapping[str, Sequence[str]]) -> Any:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"stub resolver: unknown host {host}")
        return list(table[host])

    return resolve


@dataclass(frozen=True)
class WarcRec:
    kind: str
    uri: str
    offset: int
    status: str | None
    truncated: str | None
    payload: bytes


def warc_records(path: Path) -> list[WarcRec]:
    """Every record of a WARC file (payloads decoded from their Content-Encoding)."""
    out = []
    with path.open("rb") as fh:
        it = ArchiveIterator(fh)
        for rec in it:
            status = rec.http_headers.get_statuscode() if rec.http_headers else None
            out.append(
                WarcRec(
                    rec.rec_type,
                    rec.rec_headers.get_header("WARC-Target-URI") or "",
                    it.offset,
                    status if rec.rec_type == "response" else None,
                    rec.rec_headers.get_header("WARC-Truncated"),
                    rec.content_stream().read(),
                )
            )
    return out


def gzipped(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def host_of(url: str) -> str:
    return urlsplit(url).netloc
