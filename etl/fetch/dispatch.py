"""The dispatcher behind :meth:`etl.fetch.Fetcher.fetch_all`.

One bounded thread pool (``max_concurrency`` workers) and, per host, a queue. The dispatching
loop (in the consumer's thread) takes a host's slot with :meth:`HostGate.try_acquire` *before*
handing a job to a worker, so workers never sit waiting for a slow host while other hosts have
work: throughput across many hosts reaches the politeness ceiling. A host's robots.txt is fetched
first (one job), then its URLs are checked against it without using a worker; retries go back to
the queue with their not-before time (the worker does not sleep). Results stream out as they
finish. Candidates are pulled lazily, at most ``lookahead`` ahead of the workers.

Once the fetcher's ``run_deadline`` passes, nothing new starts: every candidate not yet started
(queued, waiting for a retry, or not pulled yet) finishes at once with a transient ``deadline``
error (the fetch step makes it pending), and the requests in flight are cut by the same deadline.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from etl.errors import FetchError, FetchTerminal, FetchTransient
from etl.fetch.models import Again, FetchPolicy, FetchResult, Job, Reply, Robots
from etl.fetch.politeness import HostGate

if TYPE_CHECKING:
    from etl.records import Candidate

__all__ = ["run"]

_MAX_WAIT_S = 0.5


class Worker(Protocol):
    """What the dispatcher needs of a fetcher (:class:`~etl.fetch.Fetcher` is one)."""

    policy: FetchPolicy
    run_deadline: float
    gate: HostGate

    def job_for(self, candidate: Candidate) -> Job: ...

    def finish(
        self,
        job: Job,
        reply: Reply | None = None,
        error: FetchError | None = None,
        url: str | None = None,
    ) -> FetchResult: ...

    def cached_robots(self, host: str) -> Robots | None: ...

    def robots_for(self, job: Job, *, held: bool) -> Robots: ...

    def attempt(self, job: Job, *, held: bool) -> FetchResult | Again: ...


def run(fetcher: Worker, candidates: Iterable[Candidate]) -> Iterator[FetchResult]:
    """Fetch every candidate; one :class:`FetchResult` per candidate, in completion order."""
    policy = fetcher.policy
    source = iter(candidates)
    queues: dict[str, deque[Job]] = {}
    delayed: list[tuple[float, int, Job]] = []
    running: dict[Future[Any], Job | str] = {}
    robots_pending: set[str] = set()
    seq = itertools.count()
    queued = 0
    exhausted = False
    pool = ThreadPoolExecutor(max_workers=policy.max_concurrency, thread_name_prefix="fetch")
    try:
        while True:
            while not exhausted and queued < policy.lookahead:
                candidate = next(source, None)
                if candidate is None:
                    exhausted = True
                    break
                job = fetcher.job_for(candidate)
                if urlsplit(job.url).scheme not in ("http", "https"):
                    err = FetchTerminal(job.url, "not an http(s) URL", kind="bad-url")
                    yield fetcher.finish(job, error=err)
                    continue
                queues.setdefault(job.origin, deque()).append(job)
                queued += 1
            now = time.monotonic()
            if now >= fetcher.run_deadline:  # nothing new starts: the rest becomes pending
                late = [*(fetcher.job_for(c) for c in source)]
                late += [job for q in queues.values() for job in q] + [d[2] for d in delayed]
                exhausted, queued = True, 0
                queues.clear()
                delayed.clear()
                for job in late:
                    yield fetcher.finish(job, error=_too_late(job))
            while delayed and delayed[0][0] <= now:
                job = heapq.heappop(delayed)[2]
                queues.setdefault(job.origin, deque()).appendleft(job)
                queued += 1
            wake = delayed[0][0] if delayed else math.inf
            if fetcher.run_deadline > now:  # wake up for it (once past, nothing waits for it)
                wake = min(wake, fetcher.run_deadline)
            for host in list(queues):
                q = queues[host]
                robots = fetcher.cached_robots(host)
                if robots is None:
                    if host not in robots_pending and len(running) < policy.max_concurrency:
                        if fetcher.gate.try_acquire(host, q[0].spacing):
                            robots_pending.add(host)
                            running[pool.submit(fetcher.robots_for, q[0], held=True)] = host
                        else:
                            wake = min(wake, fetcher.gate.ready_at(host))
                    continue
                while q and len(running) < policy.max_concurrency:
                    verdict = robots.verdict(q[0].url, q[0].user_agent)
                    if verdict is not None:  # disallowed: no worker, no request
                        queued -= 1
                        yield fetcher.finish(q.popleft(), error=verdict)
                        continue
                    if not fetcher.gate.try_acquire(host, q[0].spacing):
                        break
                    job = q.popleft()
                    queued -= 1
                    running[pool.submit(fetcher.attempt, job, held=True)] = job
                if q:
                    wake = min(wake, fetcher.gate.ready_at(host))
                else:
                    del queues[host]
            if not running and not queues and not delayed and exhausted:
                return
            if len(running) >= policy.max_concurrency:
                wake = math.inf  # nothing can start before a worker is free
            timeout = max(0.0, min(wake - time.monotonic(), _MAX_WAIT_S))
            if not running:
                time.sleep(timeout)
                continue
            done, _ = wait(list(running), timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                item = running.pop(future)
                outcome = future.result()
                if isinstance(item, str):
                    robots_pending.discard(item)
                elif isinstance(outcome, Again) and outcome.at >= fetcher.run_deadline:
                    yield fetcher.finish(outcome.job, error=_too_late(outcome.job))
                elif isinstance(outcome, Again):
                    heapq.heappush(delayed, (outcome.at, next(seq), outcome.job))
                else:
                    assert isinstance(outcome, FetchResult)
                    yield outcome
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _too_late(job: Job) -> FetchTransient:
    """The error of a job the run deadline kept from starting (or from its next attempt)."""
    what = "its next attempt" if job.attempts else "it"
    return FetchTransient(job.url, f"run deadline passed before {what} started", kind="deadline")
