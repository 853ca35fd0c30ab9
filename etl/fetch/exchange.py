"""One HTTP exchange of a :class:`~etl.fetch.fetcher.Fetcher`: a GET sent within the limits
(address guard, pinned address, timeouts and the deadline), its body read within the caps, and
the exchange archived as WARC. :class:`Exchanger` is the Fetcher's base class: it works with the
fetcher's client, policy, gate, resolver, archive and run deadline.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx

from etl.config import redact_url
from etl.errors import FetchTerminal, FetchTransient
from etl.fetch import netguard
from etl.fetch.archive import Exchange, WarcArchive
from etl.fetch.body import Body, read_body
from etl.fetch.deadline import expired, request_deadline
from etl.fetch.models import FetchPolicy, Job, Reply
from etl.fetch.politeness import HostGate
from etl.urls import origin

__all__ = ["ARTICLE_TYPES", "SENT_EVENT", "Exchanger"]

ARTICLE_TYPES = ("text/html", "application/xhtml+xml")
_ACCEPT = {
    "article": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
    "robots": "text/plain,*/*;q=0.5",
    "document": "application/rss+xml,application/atom+xml,application/xml,text/xml,*/*;q=0.5",
}
_ERROR_BODY_BYTES = 64 * 1024
# httpcore's trace event once a request's headers are written ("http11." / "http2." prefix)
SENT_EVENT = ".send_request_headers.complete"


class Exchanger:
    """Sends one request of a job and reads its response (a base class of Fetcher)."""

    client: httpx.Client
    policy: FetchPolicy
    archive: WarcArchive | None
    resolver: netguard.Resolver
    run_deadline: float
    gate: HostGate

    def _exchange(self, url: str, job: Job) -> Reply:
        """Send one GET for ``url`` (the slot is held), read the response within limits, archive.

        The host's gate hears ``started`` exactly once for this slot: when the headers are
        written (httpcore's trace), else when ``send`` returns, else when the attempt ends."""
        sent: list[bool] = []
        try:
            return self._send(url, job, sent)
        finally:
            if not sent:
                self.gate.started(origin(url))

    def _send(self, url: str, job: Job, sent: list[bool]) -> Reply:
        p = self.policy
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchTerminal(redact_url(url), "not an http(s) URL", kind="bad-url")
        if "@" in parts.netloc:  # never sent: it would travel as Authorization into the WARC
            raise FetchTerminal(redact_url(url), "URL carries credentials", kind="bad-url")
        accept = _ACCEPT.get(job.purpose, _ACCEPT["document"])
        headers = {
            "User-Agent": job.user_agent,
            "Accept-Encoding": "gzip, deflate",
            "Accept": accept,
        }
        if job.validators is not None and job.purpose != "article":
            headers.update(job.validators.headers())
        target = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))
        if not p.allow_private_addresses:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            ip = netguard.check(url, parts.hostname, port, self.resolver)
            if parts.scheme == "http":  # pin the vetted address: no second DNS answer
                headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
                pinned = f"[{ip}]" if ":" in ip else ip
                netloc = f"{pinned}:{parts.port}" if parts.port else pinned
                target = urlunsplit(("http", netloc, parts.path or "/", parts.query, ""))
        timeout = httpx.Timeout(p.read_timeout_s, connect=p.connect_timeout_s)
        host = origin(url)

        def trace(event: str, _info: dict[str, object]) -> None:
            # the host's next slot opens from the moment the request line and headers are
            # written, not from before connecting: a slow connect must not bring two closer
            if event.endswith(SENT_EVENT) and not sent:
                sent.append(True)
                self.gate.started(host)

        request = self.client.build_request(
            "GET", target, headers=headers, timeout=timeout, extensions={"trace": trace}
        )
        at = datetime.now(UTC)
        deadline = min(time.monotonic() + p.total_timeout_s, self.run_deadline)
        with request_deadline(deadline):  # connect, headers and body (etl.fetch.deadline)
            try:
                try:
                    response = self.client.send(request, stream=True, follow_redirects=False)
                finally:  # no trace event (another transport, a failed connect): sent by now
                    if not sent:  # (once sent, the host's next slot may be starting already)
                        sent.append(True)
                        self.gate.started(host)
            except httpx.TimeoutException as exc:
                if expired() and deadline >= self.run_deadline:  # (a `timeout`: it was started,
                    # so it uses a run of its budget: a page slower than any run still ends)
                    msg = "no complete response before the run deadline"
                    raise FetchTransient(url, msg, kind="timeout") from None
                if expired():
                    msg = f"no complete response within {p.total_timeout_s:g} s (deadline)"
                    raise FetchTransient(url, msg, kind="timeout") from None
                if isinstance(exc, httpx.ConnectTimeout):
                    raise FetchTransient(url, f"cannot connect: {exc!r}", kind="connect") from None
                raise FetchTransient(url, f"timed out: {exc!r}", kind="timeout") from None
            except httpx.ConnectError as exc:
                raise FetchTransient(url, f"cannot connect: {exc!r}", kind="connect") from None
            except httpx.UnsupportedProtocol as exc:
                raise FetchTerminal(url, f"unsupported: {exc}", kind="bad-url") from None
            except httpx.TransportError as exc:
                raise FetchTransient(url, f"network error: {exc!r}", kind="network") from None
            try:
                peer = _peer(response)
                body = self._read(url, job, response, peer, deadline)
            finally:
                response.close()
        ref = None
        if self.archive is not None and job.source_id is not None:
            ex = Exchange(
                url,
                request.headers.multi_items(),
                response.status_code,
                response.reason_phrase,
                response.headers.multi_items(),
                body.raw,
                at,
                body.truncated,
                peer,
            )
            ref = self.archive.write(job.source_id, ex)
        return Reply(url, response.status_code, response.headers, body, ref, at)

    def _read(
        self, url: str, job: Job, response: httpx.Response, peer: str | None, deadline: float
    ) -> Body:
        p, status = self.policy, response.status_code
        media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        article = job.purpose == "article"
        if peer and not p.allow_private_addresses and not netguard.is_public(peer):
            msg = f"connected to non-public address {peer}"
            return Body(b"", None, "unspecified", FetchTerminal(url, msg, kind="address-blocked"))
        if not 200 <= status < 300:  # kept for the archive; the status is the error
            body = read_body(response, url=url, max_bytes=_ERROR_BODY_BYTES, deadline=deadline)
            return replace(body, error=None)
        if article and media and media not in ARTICLE_TYPES:
            msg = f"Content-Type {media!r} is not HTML"
            return Body(b"", None, "unspecified", FetchTerminal(url, msg, kind="wrong-type"))
        limit = p.max_bytes if article else p.max_document_bytes
        return read_body(
            response, url=url, max_bytes=limit, deadline=deadline, reject_binary=article
        )


def _peer(response: httpx.Response) -> str | None:
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    try:
        addr = stream.get_extra_info("server_addr")
    except Exception:  # a transport without socket info
        return None
    return str(addr[0]) if addr else None
