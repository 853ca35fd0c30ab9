"""A TCP proxy on 127.0.0.1 that counts what a server sends and logs the HTTP requests it gets.

Put it in front of the moto S3 server (``CountingProxy(server.port)``, then use ``proxy.endpoint``
as the lake's endpoint) to see what a reader really fetched: ``bytes_down`` (bytes the server
sent, bodies and headers), ``requests`` (``(method, path)`` of every request line seen). Plain
HTTP/1.1 only (moto); request lines are found at the start of each request, which holds for
GET/HEAD/DELETE traffic and for PUTs whose body is not itself HTTP-looking.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from typing import Any
from urllib.parse import unquote

_REQUEST = re.compile(rb"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP/1\.[01]\r\n")


class CountingProxy:
    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.bytes_down = 0
        self.requests: list[tuple[str, str]] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.bytes_down = 0
            self.requests = []

    def gets(self) -> list[str]:
        """Paths (unquoted, no query) of the GET requests seen."""
        with self.lock:
            return [unquote(p.split("?", 1)[0]) for m, p in self.requests if m == "GET"]

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        tail = b""
        try:
            while data := src.recv(1 << 16):
                if up:
                    buf = tail + data  # a request line split across two reads is still found once
                    found = [m for m in _REQUEST.finditer(buf) if m.end() > len(tail)]
                    tail = buf[-512:]
                    with self.lock:
                        self.requests += [(m[1].decode(), m[2].decode()) for m in found]
                else:
                    with self.lock:
                        self.bytes_down += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self.closed = True
        self.sock.close()

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
