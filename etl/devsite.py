"""A static news site on 127.0.0.1 for demos and tests (``newsetl serve``).

Serves the files under a folder; ``/`` and folder paths serve ``index.html``; the token
``{{BASE}}`` in .xml/.txt/.html files becomes the site's own base URL, so the shipped feed,
sitemap and robots.txt point at wherever the site runs. HTML goes out without a charset
parameter (each page declares its own), as many real servers do.
"""

from __future__ import annotations

import logging
import mimetypes
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger("etl.devsite")

_TYPES = {
    ".xml": "application/xml",
    ".txt": "text/plain; charset=utf-8",
    ".html": "text/html",
    ".htm": "text/html",
    ".gz": "application/gzip",
}


def static_file(root: Path, target: str, base: str) -> tuple[bytes, str] | None:
    """What the site answers for the request target ``target`` (its query ignored): the body
    and its Content-Type, or None for a 404 (no such file, or a path outside ``root``).

    The one static-site logic: :class:`DevSite` serves it, and so does the test suite's site
    (tests/support/sites.py ``serve_directory``), which adds a request log and faults."""
    root = Path(root).resolve()
    path = (root / target.split("?", 1)[0].lstrip("/")).resolve()
    if path.is_dir():
        path = path / "index.html"
    if root not in path.parents or not path.is_file():
        return None
    data = path.read_bytes()
    if path.suffix in (".xml", ".txt", ".html", ".htm"):
        data = data.replace(b"{{BASE}}", base.encode())
    ctype = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
    return data, ctype or "application/octet-stream"


class DevSite:
    """``with DevSite(root) as site: site.base`` → ``http://127.0.0.1:<port>``."""

    def __init__(self, root: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = Path(root).resolve()
        handler = self._handler()
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> DevSite:
        self.thread.start()
        log.info("serving %s at %s", self.root, self.base)
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> DevSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = static_file(site.root, self.path, site.base)
                if found is None:
                    self.send_error(404, "not found")
                    return
                data, ctype = found
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("devsite: %s", format % args)

        return Handler
