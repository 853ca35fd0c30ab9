"""A deadline per HTTP request that covers connect, headers and body.

httpx's timeouts bound each socket operation, not a request: a server that sends its headers
one byte a second never trips a 30 s read timeout. :func:`http_client` builds the client the
runner uses: its connections go through :class:`DeadlineBackend`, which clamps the timeout of
every connect, read and write to what is left of the deadline set with :func:`request_deadline`
(per thread), and fails the operation once none is left. The fetcher sets the deadline around
each exchange (``total_timeout_s``, and a run-level deadline when one is given: the earlier of
the two wins), so the body deadline of :func:`etl.fetch.body.read_body` is only a backstop.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import ssl
import time
import typing
from collections.abc import Iterator

import httpcore
import httpx

__all__ = ["DeadlineBackend", "expired", "http_client", "remaining", "request_deadline"]

_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("deadline", default=math.inf)


@contextlib.contextmanager
def request_deadline(at: float) -> Iterator[None]:
    """Bound every socket operation of this thread until ``at`` (``time.monotonic()``)."""
    token = _DEADLINE.set(min(at, _DEADLINE.get()))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining() -> float:
    """Seconds left before this thread's deadline (``inf`` without one)."""
    return _DEADLINE.get() - time.monotonic()


def expired() -> bool:
    return remaining() <= 0


def _clamp(timeout: float | None, exc: type[Exception]) -> float | None:
    left = remaining()
    if left == math.inf:
        return timeout
    if left <= 0:
        raise exc("request deadline exceeded")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        t = _clamp(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, t))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sync backend with every operation bounded by the thread's deadline."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        t = _clamp(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, t, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        t = _clamp(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, t, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def http_client(**kwargs: typing.Any) -> httpx.Client:
    """An ``httpx.Client`` whose requests obey :func:`request_deadline` (no proxies from the
    environment, no automatic redirects: the fetcher follows them itself)."""
    transport = httpx.HTTPTransport()
    pool = transport._pool  # the one place that reaches inside httpx (pinned in uv.lock)
    if not isinstance(pool, httpcore.ConnectionPool):  # pragma: no cover - httpx changed
        raise TypeError(f"unexpected httpx transport pool {type(pool).__name__}")
    pool._network_backend = DeadlineBackend(pool._network_backend)
    kwargs.setdefault("trust_env", False)
    kwargs.setdefault("follow_redirects", False)
    return httpx.Client(transport=transport, **kwargs)
