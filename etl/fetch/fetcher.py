"""Polite, robust HTTP fetching with every response archived and every URL logged.

Entry points: :meth:`Fetcher.fetch_all` (articles, concurrently; results stream out as they
finish; :func:`fetch_all` is the same with a fresh Fetcher) and :meth:`Fetcher.fetch_document`
(one feed, sitemap or URL list, in the caller's thread, used by discovery). A :class:`Fetcher`
lives for one run: it holds the injected ``httpx.Client``, the per-host gate
(:mod:`etl.fetch.politeness`), the robots.txt cache, the WARC archive and :attr:`Fetcher.log` — one
:class:`FetchLog` row per URL tried (articles, feeds, sitemaps, robots.txt), which is what the
``fetch_log`` dataset is written from. Nothing is dropped silently.

Each HTTP request: address guard (:mod:`etl.fetch.netguard`, again on every redirect hop; plain http
is pinned to the vetted address; the connected peer is checked too), robots.txt (cached per host,
``Crawl-delay`` honoured), a per-host slot (in-flight limit, spacing), an honest User-Agent,
connect/read timeouts plus a total deadline, a streamed size cap and decompression-bomb guard
(:mod:`etl.fetch.body`), redirects followed by hand up to a cap (loops detected, final URL kept),
retries with exponential backoff and jitter on connect/network errors, 429 and 5xx honouring
``Retry-After``, conditional GET for documents, HTML/XHTML only for articles. Each response, of
any status, goes to the WARC (:mod:`etl.discover.warc`) and its ``raw_ref`` to the page and row.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import httpx

from etl.config import redact_url
from etl.errors import TRANSIENT_KINDS, FetchError, FetchTerminal
from etl.fetch import netguard
from etl.fetch.archive import WarcArchive
from etl.fetch.exchange import Exchanger
from etl.fetch.models import (
    Again,
    FetchLog,
    FetchPolicy,
    FetchResult,
    Job,
    Reply,
    Robots,
    Validators,
    conclude,
    retry_after,
    status_error,
)
from etl.fetch.politeness import HostGate
from etl.urls import origin

if TYPE_CHECKING:
    from etl.records import Candidate

__all__ = [
    "Fetcher",
    "fetch_all",
]

log = logging.getLogger("etl.fetch.fetcher")

_REDIRECTS = (301, 302, 303, 307, 308)
# retried within the run; a timed-out request used its deadline: the next try or run retries it
_RETRY_KINDS = TRANSIENT_KINDS - {"timeout"}


class Fetcher(Exchanger):
    """One run's fetching state, shared by its threads; see the module docstring."""

    def __init__(
        self,
        client: httpx.Client,
        policy: FetchPolicy,
        *,
        archive: WarcArchive | None = None,
        resolver: netguard.Resolver = netguard.system_resolver,
    ) -> None:
        self.client = client
        self.policy = policy
        self.archive = archive
        self.resolver = resolver
        # monotonic time after which no request may run (a run-level deadline; inf: none)
        self.run_deadline = math.inf
        self.log: list[FetchLog] = []
        self.gate = HostGate(policy.per_host_concurrency)
        self._lock = threading.Lock()
        self._robots: dict[str, Robots] = {}
        self._robots_locks: dict[str, threading.Lock] = {}

    def fetch_all(self, candidates: Iterable[Candidate]) -> Iterator[FetchResult]:
        """One result per candidate, as they finish; their rows also go to :attr:`log`."""
        from etl.fetch.dispatch import run

        for result in run(self, candidates):
            self.record(result.log)
            yield result

    def fetch_document(
        self,
        url: str,
        *,
        source_id: str | None,
        purpose: str,
        spacing: float | None = None,
        user_agent: str | None = None,
        validators: Validators | None = None,
        record: bool = True,
    ) -> FetchResult:
        """Fetch one feed/sitemap/list in this thread (waiting for its host and its retries)."""
        job = self.job(url, source_id, purpose, spacing=spacing, user_agent=user_agent)
        job.validators = validators
        while True:
            out = self.attempt(job, held=False)
            if isinstance(out, FetchResult):
                if record:
                    self.record(out.log)
                return out
            time.sleep(max(0.0, out.at - time.monotonic()))

    def robots(self, url: str, *, source_id: str | None, user_agent: str | None = None) -> Robots:
        """The robots.txt of ``url``'s host (fetched once per run, then cached)."""
        job = self.job(url, source_id, "robots", user_agent=user_agent)
        return self.robots_for(job, held=False)

    def remember_robots(self, host: str, body: bytes | None) -> None:
        """Take ``host``'s robots.txt as fetched earlier (by an earlier try of the same interval,
        read back from its archive) instead of asking again; ``None``: the host has no rules."""
        from protego import Protego

        parser = Protego.parse(body.decode("utf-8", "replace")) if body is not None else None
        robots = Robots(parser)
        if parser is not None and (delay := parser.crawl_delay(self.policy.user_agent)):
            self.gate.set_floor(host, min(float(delay), self.policy.max_crawl_delay_s))
        with self._lock:
            self._robots.setdefault(host, robots)

    def record(self, row: FetchLog) -> None:
        """Append a row to :attr:`log` (thread-safe)."""
        with self._lock:
            self.log.append(row)

    def job(
        self,
        url: str,
        source_id: str | None,
        purpose: str,
        *,
        spacing: float | None = None,
        user_agent: str | None = None,
        candidate: Candidate | None = None,
    ) -> Job:
        """A job for ``url`` with the policy's defaults where the source names none."""
        p = self.policy
        gap = p.per_host_delay_s if spacing is None else spacing
        tries = 1 if purpose == "robots" else p.max_attempts
        ua = user_agent or p.user_agent
        return Job(url, source_id, purpose, gap, ua, candidate, max_attempts=tries)

    def job_for(self, candidate: Candidate) -> Job:
        """The article job of ``candidate``."""
        c = candidate
        return self.job(
            c.url,
            c.source_id,
            "article",
            spacing=c.per_host_delay_s,
            user_agent=c.user_agent,
            candidate=c,
        )

    def cached_robots(self, host: str) -> Robots | None:
        return self._robots.get(host)

    def robots_for(self, job: Job, *, held: bool) -> Robots:
        """Robots of ``job``'s host; ``held``: the caller took a slot for the robots request."""
        host = job.origin
        with self._lock:
            lock = self._robots_locks.setdefault(host, threading.Lock())
        if held and not lock.acquire(blocking=False):
            # another thread is fetching it: give the slot back rather than hold it while
            # waiting (that thread may need a slot of this very host)
            self.gate.release(host)
            held = False
            lock.acquire()
        elif not held:
            lock.acquire()
        try:
            robots = self._robots.get(host)
            if robots is not None:
                if held:
                    self.gate.release(host)
                return robots
            robots_url = host + "/robots.txt"
            rjob = self.job(
                robots_url, job.source_id, "robots", spacing=job.spacing, user_agent=job.user_agent
            )
            out = self.attempt(rjob, held=held)
            assert isinstance(out, FetchResult)  # robots jobs have one attempt
            status = out.log.status or 0
            if 400 <= status < 500 and status != 429:  # "no rules" (RFC 9309), not an error
                out = replace(out, log=replace(out.log, error_class=None, error=None), error=None)
            self.record(out.log)
            robots = Robots.from_result(host, out)
            if robots.parser is not None and (delay := robots.parser.crawl_delay(job.user_agent)):
                self.gate.set_floor(host, min(float(delay), self.policy.max_crawl_delay_s))
            self._robots[host] = robots
            return robots
        finally:
            lock.release()

    def finish(
        self,
        job: Job,
        reply: Reply | None = None,
        error: FetchError | None = None,
        url: str | None = None,
    ) -> FetchResult:
        """The result (and log row) of ``job`` ending with ``reply`` and/or ``error``."""
        if error is not None:
            log.info("fetch %s failed: %s (%s)", job.url, error.kind, error.message)
        # a URL refused before any request (robots.txt, bad URL) was still tried once
        job.attempts = max(job.attempts, 1)
        return conclude(job, reply, error, url)

    def attempt(self, job: Job, *, held: bool) -> FetchResult | Again:
        """One attempt at ``job``, following redirects; ``held``: its first slot is taken."""
        if job.started is None:
            job.started = time.monotonic()
        job.attempts += 1
        chain = [job.url]
        while True:
            url, host = chain[-1], origin(chain[-1])
            try:
                if not held:
                    if job.purpose != "robots":
                        hop = replace(job, url=url)
                        verdict = self.robots_for(hop, held=False).verdict(url, job.user_agent)
                        if verdict is not None:
                            raise verdict
                    self.gate.acquire(host, job.spacing)
                held = False
                try:
                    reply = self._exchange(url, job)
                finally:
                    self.gate.release(host, sent=True)
            except FetchError as exc:
                return self._fail(job, None, exc, url)
            location = reply.headers.get("location")
            if reply.status not in _REDIRECTS or not location:
                err = reply.body.error if 200 <= reply.status < 300 else None
                err = err or status_error(job.url, reply.status)
                return self._fail(job, reply, err, url) if err else self.finish(job, reply)
            target = urljoin(url, location.strip())
            if target in chain:
                err = FetchTerminal(job.url, f"redirect loop at {target}", kind="redirect-loop")
            elif len(chain) > self.policy.max_redirects:
                msg = f"more than {self.policy.max_redirects} redirects"
                err = FetchTerminal(job.url, msg, kind="too-many-redirects")
            elif urlsplit(target).scheme not in ("http", "https"):
                err = FetchTerminal(job.url, f"redirect to {redact_url(target)}", kind="bad-url")
            elif "@" in urlsplit(target).netloc:  # credentials would be sent and archived
                msg = f"redirect to a URL carrying credentials ({redact_url(target)})"
                err = FetchTerminal(job.url, msg, kind="bad-url")
            else:
                chain.append(target)
                continue
            return self.finish(job, reply, err)

    def _fail(
        self, job: Job, reply: Reply | None, err: FetchError, url: str
    ) -> FetchResult | Again:
        """Retry ``job`` later when ``err`` allows it, else finish it with ``err``."""
        p = self.policy
        if err.transient and err.kind in _RETRY_KINDS and job.attempts < job.max_attempts:
            delay = min(p.backoff_max_s, p.backoff_base_s * 2 ** (job.attempts - 1))
            delay = delay / 2 + random.uniform(0, delay / 2)  # jitter
            after = retry_after(reply.headers.get("retry-after")) if reply else None
            if after is None:
                return Again(job, time.monotonic() + delay)
            if after <= p.max_retry_after_s:
                self.gate.defer(origin(url), after)
                return Again(job, time.monotonic() + max(delay, after))
        return self.finish(job, reply, err, url if url != job.url else None)


def fetch_all(
    candidates: Iterable[Candidate],
    *,
    client: httpx.Client,
    policy: FetchPolicy,
    archive: WarcArchive | None,
    resolver: netguard.Resolver = netguard.system_resolver,
) -> Iterator[FetchResult]:
    """Fetch ``candidates`` with a fresh :class:`Fetcher` (use one directly for its full log)."""
    yield from Fetcher(client, policy, archive=archive, resolver=resolver).fetch_all(candidates)
