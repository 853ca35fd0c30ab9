"""Real local HTTP sites for tests and benchmarks (127.0.0.1 only).

:class:`Site` is a ``ThreadingHTTPServer`` on 127.0.0.1 (a free port, or a given 127.0.0.x
address) with a route table, a request log (arrival and end times, in-flight count at arrival,
headers) and an optional per-host rate limit that answers 429 and counts a violation whenever a
request arrives sooner than ``1/rate`` after the previous one. Politeness is asserted from this
log, i.e. from what the server saw.

Routes map a path (query ignored) to a :class:`Response`, or to a function of the
:class:`SiteRequest` returning one (for stateful misbehaviour: 500-then-200, 304 on a matching
``If-None-Match``...). :func:`serve_directory` serves a folder of static files, substituting
``{{BASE}}`` with the site's base URL in .xml/.txt/.html files.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Response", "Site", "SiteRequest", "serve_directory", "static_site"]


@dataclass
class Response:
    """What a route answers. ``body`` may be an iterable of chunks (sent without a length)."""

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = "text/html; charset=utf-8"
    delay_s: float = 0.0  # before the status line
    chunk_delay_s: float = 0.0  # between body chunks

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Response:
        return cls(status, b"", {"Location": location}, content_type=None)


@dataclass(frozen=True)
class SiteRequest:
    """One request as the server saw it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    arrived: float  # time.monotonic()
    in_flight: int  # requests being served when it arrived, itself included
    ended: float = 0.0
    status: int = 0
    sent: int = 0
    aborted: bool = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


Route = Response | Callable[[SiteRequest], Response]


class Site:
    """A local HTTP site. Use as a context manager, or call :meth:`start` and :meth:`close`."""

    def __init__(
        self,
        routes: Mapping[str, Route] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit: float | None = None,
        tolerance_s: float = 0.005,
        default: Route | None = None,
    ) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.default = default or Response(404, b"<h1>not found</h1>")
        self.rate_limit = rate_limit
        self.tolerance_s = tolerance_s
        self.log: list[SiteRequest] = []
        self.violations = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._in_flight = 0
        self._last_arrival: float | None = None
        self._server = _Server((host, port), _handler_for(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server: never an AF_UNIX (bytes) address
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def start(self) -> Site:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Site:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def requests(self, path: str | None = None) -> list[SiteRequest]:
        """Log entries (of ``path`` only, when given), in arrival order."""
        with self._lock:
            return [r for r in self.log if path is None or r.path == path]

    def min_gap(self) -> float:
        """Smallest time between two consecutive arrivals (``inf`` with fewer than two)."""
        times = sorted(r.arrived for r in self.requests())
        return min((b - a for a, b in itertools.pairwise(times)), default=float("inf"))

    # -- called by the handler --------------------------------------------------------------

    def _arrive(self, method: str, target: str, headers: dict[str, str]) -> tuple[int, bool]:
        parts = urlsplit(target)
        with self._lock:
            now = time.monotonic()
            limited = False
            if self.rate_limit and self._last_arrival is not None:
                limited = now - self._last_arrival < 1.0 / self.rate_limit - self.tolerance_s
                self.violations += limited
            self._last_arrival = now
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            req = SiteRequest(method, parts.path, parts.query, headers, now, self._in_flight)
            self.log.append(req)
            return len(self.log) - 1, limited

    def _leave(self, index: int, status: int, sent: int, aborted: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            r = self.log[index]
            self.log[index] = SiteRequest(
                r.method,
                r.path,
                r.query,
                r.headers,
                r.arrived,
                r.in_flight,
                time.monotonic(),
                status,
                sent,
                aborted,
            )

    def _respond(self, index: int, limited: bool) -> Response:
        if limited:
            return Response(429, b"slow down", {"Retry-After": "1"})
        req = self.log[index]
        route = self.routes.get(req.path, self.default)
        return route(req) if callable(route) else route


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet on disconnects
        pass


def _handler_for(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "testsite/1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            index, limited = site._arrive(self.command, self.path, headers)
            left = False
            status = 0

            def leave(sent: int, aborted: bool = False) -> None:
                nonlocal left
                if not left:
                    left = True
                    site._leave(index, status, sent, aborted)

            try:
                resp = site._respond(index, limited)
                status = resp.status
                if resp.delay_s:
                    time.sleep(resp.delay_s)
                self._send(resp, leave)
            except (TimeoutError, BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True
                leave(0, aborted=True)
            finally:
                leave(0, aborted=True)

        do_HEAD = do_GET

        def _send(self, resp: Response, leave: Callable[[int], None]) -> None:
            """Send ``resp``; ``leave`` is called just before its last bytes go out, so that the
            request no longer counts as in flight before the client can have the whole answer
            (and a polite client's next request can never seem to overlap it)."""
            self.send_response(resp.status)
            streamed = not isinstance(resp.body, bytes)
            if resp.content_type:
                self.send_header("Content-Type", resp.content_type)
            for k, v in resp.headers.items():
                self.send_header(k, v)
            if streamed:
                self.send_header("Connection", "close")
                self.close_connection = True
            elif "content-length" not in {k.lower() for k in resp.headers}:
                assert isinstance(resp.body, bytes)
                self.send_header("Content-Length", str(len(resp.body)))
            chunks = iter([resp.body] if isinstance(resp.body, bytes) else resp.body)
            chunk = next(chunks, b"") if self.command != "HEAD" else b""
            if not chunk:
                leave(0)
            self.end_headers()
            sent = 0
            while chunk:
                following = next(chunks, b"")
                if resp.chunk_delay_s and sent:
                    time.sleep(resp.chunk_delay_s)
                if not following:
                    leave(sent + len(chunk))
                self.wfile.write(chunk)
                self.wfile.flush()
                sent += len(chunk)
                chunk = following

    return Handler


def serve_directory(root: Path, *, host: str = "127.0.0.1", port: int = 0) -> Site:
    """A site serving the files under ``root`` exactly as ``newsetl serve`` does
    (:func:`etl.devsite.static_file`: ``{{BASE}}`` replaced in .xml/.txt/.html, ``/`` and
    folders serve ``index.html``, HTML without a charset parameter), with this site's request
    log, routes and faults on top. Returned started; close it when done (or use
    :func:`static_site`)."""
    from etl.devsite import static_file

    site = Site(host=host, port=port)

    def serve(req: SiteRequest) -> Response:
        found = static_file(root, req.path, site.base)
        if found is None:
            return Response(404, b"not found")
        data, ctype = found
        return Response(200, data, content_type=ctype)

    site.default = serve
    return site.start()


@contextmanager
def static_site(root: Path) -> Iterator[Site]:
    """``with static_site(folder) as site:`` the folder served by :func:`serve_directory`."""
    site = serve_directory(root)
    try:
        yield site
    finally:
        site.close()


def drip(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in chunks of ``size`` bytes (for slow or streamed bodies)."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def zeros(total: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """``total`` zero bytes in chunks, without holding them all in memory."""
    block = b"\0" * chunk
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        yield block[:n]
        sent += n
