"""Per-host politeness: in-flight limits and minimum spacing between request starts.

A host is an origin (``scheme://host[:port]``, see :func:`etl.urls.origin`) — the unit robots.txt
applies to. :class:`HostGate` is shared by all fetch threads of a run; every HTTP request takes a
slot first (``try_acquire`` for the dispatcher, ``acquire`` to wait), calls ``started`` at the
moment its headers are written to the connection (the fetcher hooks httpcore's
``send_request_headers.complete`` trace event; after ``send`` returns as a fallback) and gives the
slot back (``release``) when the response is closed.

Spacing is measured between the moments requests are *sent*: after a send at ``t`` the next
request may be sent from ``t + max(spacing, floor) x 1.02 + 15 ms`` (the floor comes from
robots.txt ``Crawl-delay``; the margin absorbs the jitter between sending and the server reading
the request on a loaded machine). Between taking a slot and sending — connecting included — no
other slot of that host is handed out, so a slow start (a thread waking up, DNS, a slow connect)
cannot bring two requests closer. ``defer`` pushes the next send out (``Retry-After``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["HostGate"]

MARGIN = 1.02
MARGIN_S = 0.015


def _with_margin(spacing: float) -> float:
    return spacing * MARGIN + MARGIN_S if spacing > 0 else 0.0


@dataclass
class _Host:
    in_flight: int = 0
    next_start: float = 0.0
    floor: float = 0.0
    starting: bool = False  # a slot was taken and its request is not sent yet
    spacing: float = 0.0  # of the request being started
    last_sent: float | None = None


class HostGate:
    """In-flight limit and start spacing per host, thread-safe."""

    def __init__(self, per_host: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_host < 1:
            raise ValueError("per_host must be at least 1")
        self._per_host = per_host
        self._clock = clock
        self._cv = threading.Condition()
        self._hosts: dict[str, _Host] = {}

    def _get(self, host: str) -> _Host:
        h = self._hosts.get(host)
        if h is None:
            h = self._hosts[host] = _Host()
        return h

    def ready_at(self, host: str) -> float:
        """Clock time from which a request to ``host`` may start (``inf`` while slots are full)."""
        with self._cv:
            h = self._get(host)
            if h.in_flight >= self._per_host:
                return math.inf
            return self._clock() + 0.002 if h.starting else h.next_start

    def try_acquire(self, host: str, spacing: float) -> bool:
        """Take a slot for ``host`` now if its limit and spacing allow; never waits."""
        with self._cv:
            return self._take(self._get(host), spacing)

    def acquire(self, host: str, spacing: float) -> None:
        """Take a slot for ``host``, waiting as long as needed."""
        with self._cv:
            h = self._get(host)
            while not self._take(h, spacing):
                free = h.in_flight < self._per_host and not h.starting
                wait = h.next_start - self._clock() if free else None
                self._cv.wait(timeout=max(wait, 0.001) if wait is not None else None)

    def started(self, host: str) -> None:
        """The request of the slot just taken for ``host`` was sent now (its headers written);
        a second call for the same slot does nothing."""
        with self._cv:
            h = self._get(host)
            if h.starting:
                h.starting = False
                h.last_sent = self._clock()
                h.next_start = max(h.next_start, h.last_sent + h.spacing)
                self._cv.notify_all()

    def release(self, host: str, *, sent: bool = False) -> None:
        """Give back a slot taken with ``acquire`` or ``try_acquire``; ``sent``: its request
        was reported ``started`` (the host's next slot may be starting by now: left alone)."""
        with self._cv:
            h = self._get(host)
            if h.in_flight <= 0:
                raise RuntimeError(f"release without acquire for {host}")
            h.in_flight -= 1
            if not sent:  # never sent: it was the slot starting
                h.starting = False
            self._cv.notify_all()

    def defer(self, host: str, seconds: float) -> None:
        """No new request to ``host`` for ``seconds`` from now (e.g. ``Retry-After``)."""
        with self._cv:
            h = self._get(host)
            h.next_start = max(h.next_start, self._clock() + seconds)

    def set_floor(self, host: str, seconds: float) -> None:
        """Minimum spacing for ``host`` whatever the caller asks (robots.txt ``Crawl-delay``),
        counted from the last request sent already."""
        with self._cv:
            h = self._get(host)
            h.floor = max(h.floor, seconds)
            if h.last_sent is not None:
                h.next_start = max(h.next_start, h.last_sent + _with_margin(h.floor))

    def _take(self, h: _Host, spacing: float) -> bool:
        now = self._clock()
        if h.in_flight >= self._per_host or h.starting or now < h.next_start:
            return False
        h.in_flight += 1
        h.starting = True
        h.spacing = _with_margin(max(spacing, h.floor))
        h.next_start = now + h.spacing
        return True
