"""A raw-socket HTTP server on 127.0.0.1 that sends its answer one byte at a time.

``http.server`` writes a status line and headers in one go; a hostile server can drip them,
which is what per-operation read timeouts never catch. :class:`DripServer` answers every
connection with ``response`` (status line, headers and body as raw bytes), ``interval_s``
between bytes, and records how many connections it accepted and when each one ended.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType


class DripServer:
    def __init__(
        self, response: bytes, *, interval_s: float = 0.2, fast: dict[str, bytes] | None = None
    ) -> None:
        self.response = response
        self.fast = fast or {}  # path -> an answer sent at once (robots.txt, a feed)
        self.interval_s = interval_s
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.gave_up: list[float] = []  # monotonic times clients hung up mid-answer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                request = conn.recv(65536)  # the request (small, one segment on loopback)
                parts = request.split(b" ", 2)
                path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
                if path in self.fast:
                    conn.sendall(self.fast[path])
                    return
                for i in range(len(self.response)):
                    if self._stop.is_set():
                        return
                    conn.sendall(self.response[i : i + 1])
                    time.sleep(self.interval_s)
            except OSError:
                self.gave_up.append(time.monotonic())

    def __enter__(self) -> DripServer:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=5)


def slow_headers(n_headers: int = 60) -> bytes:
    """A 200 answer whose header block alone takes ``n_headers`` × ~20 bytes to send."""
    lines = [b"HTTP/1.1 200 OK", b"Content-Type: text/html; charset=utf-8"]
    lines += [b"X-Pad-%d: %s" % (i, b"x" * 10) for i in range(n_headers)]
    body = b"<html><body><p>finally</p></body></html>"
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def quick(status: str, body: bytes, content_type: str = "text/plain") -> bytes:
    """A whole answer sent at once (``Connection: close``)."""
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body
