"""Reading an HTTP response body within limits.

:func:`read_body` streams the body *as sent* (``iter_raw``: still content-encoded, which is what
the WARC archive keeps) and decodes it incrementally itself, so that both the bytes on the wire
and the decoded bytes are capped while streaming: a 50 MB body is cut at the limit, and a small
gzip bomb cannot expand past it (``zlib`` is asked for at most ``limit + 1`` bytes per chunk).
A wall-clock deadline catches servers that dribble bytes slower than the read timeout.

It never raises for a limit, timeout or broken connection: the :class:`Body` carries what was
read, the WARC truncation reason and the error, so the response is still archived and logged.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import httpx

from etl.errors import FetchError, FetchTerminal, FetchTransient

__all__ = ["BINARY_MAGIC", "Body", "read_body"]

_CHUNK = 64 * 1024

BINARY_MAGIC = (b"%PDF-", b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"PK\x03\x04", b"\x00\x00\x01\x00")


@dataclass
class Body:
    """What was read: ``raw`` as sent, ``data`` decoded (``None`` when decoding failed)."""

    raw: bytes
    data: bytes | None
    truncated: str | None = None  # WARC-Truncated: length | time | disconnect | unspecified
    error: FetchError | None = None


class _Decoder:
    def __init__(self, encoding: str) -> None:
        self.kind = encoding
        self._z: zlib._Decompress | None = None
        if encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(wbits=31)
        elif encoding == "deflate":
            self._z = None  # decided on the first bytes: zlib-wrapped or raw
        elif encoding not in ("", "identity"):
            raise ValueError(encoding)

    def decode(self, chunk: bytes, budget: int) -> bytes:
        if self.kind in ("", "identity"):
            return chunk[: budget + 1]
        if self._z is None:  # deflate
            head = chunk[:2]
            wrapped = len(head) == 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
            self._z = zlib.decompressobj(wbits=15 if wrapped else -15)
        if self._z.eof:
            return b""
        return self._z.decompress(chunk, budget + 1)


def read_body(
    response: httpx.Response,
    *,
    url: str,
    max_bytes: int,
    deadline: float,
    reject_binary: bool = False,
) -> Body:
    """Read ``response`` (opened with ``stream=True``) within ``max_bytes`` and ``deadline``.

    ``reject_binary``: stop at the first bytes when they are a PDF, image or archive (error
    ``wrong-type``), whatever the Content-Type said.
    """
    raw = bytearray()
    out = bytearray()
    err: FetchError
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        err = FetchTerminal(url, f"Content-Length {length} exceeds {max_bytes}", kind="too-large")
        return Body(b"", None, "length", err)
    encoding = response.headers.get("content-encoding", "").strip().lower()
    try:
        decoder = _Decoder(encoding)
    except ValueError:
        err = FetchTerminal(url, f"unsupported Content-Encoding {encoding!r}", kind="bad-encoding")
        return Body(b"", None, "unspecified", err)
    sniffed = not reject_binary
    try:
        for chunk in response.iter_raw():  # as they arrive (a size would buffer)
            raw += chunk
            if len(raw) > max_bytes:
                msg = f"body exceeds {max_bytes} bytes"
                return Body(bytes(raw[:max_bytes]), None, "length", _too_large(url, msg))
            try:
                out += decoder.decode(chunk, max_bytes - len(out))
            except zlib.error as exc:
                msg = f"cannot decode {encoding} body: {exc}"
                err = FetchTerminal(url, msg, kind="bad-encoding")
                return Body(bytes(raw), None, None, err)
            if len(out) > max_bytes:
                msg = f"{encoding} body expands beyond {max_bytes} bytes"
                return Body(bytes(raw), None, "length", _too_large(url, msg))
            if not sniffed and len(out) >= 8:
                sniffed = True
                if bytes(out[:8]).lstrip().startswith(BINARY_MAGIC):
                    err = FetchTerminal(url, "body is binary (not HTML)", kind="wrong-type")
                    return Body(bytes(raw), None, "unspecified", err)
            if time.monotonic() > deadline:
                err = FetchTransient(url, "total time limit exceeded while reading", kind="timeout")
                return Body(bytes(raw), None, "time", err)
    except httpx.TimeoutException as exc:
        err = FetchTransient(url, f"read timeout: {exc!r}", kind="timeout")
        return Body(bytes(raw), None, "time", err)
    except httpx.TransportError as exc:
        err = FetchTransient(url, f"connection broken while reading: {exc!r}", kind="network")
        return Body(bytes(raw), None, "disconnect", err)
    if reject_binary and not sniffed and bytes(out).lstrip().startswith(BINARY_MAGIC):
        return Body(bytes(raw), None, None, FetchTerminal(url, "body is binary", kind="wrong-type"))
    return Body(bytes(raw), bytes(out))


def _too_large(url: str, message: str) -> FetchTerminal:
    return FetchTerminal(url, message, kind="too-large")
