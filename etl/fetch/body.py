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

import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from etl.errors import ExtractError, FetchError, FetchTerminal, FetchTransient

__all__ = ["BINARY_MAGIC", "Body", "read_body", "read_local"]

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


def read_local(path: Path, max_bytes: int) -> bytes:
    """A saved page's bytes, at most ``max_bytes``; ``.gz`` files inflated in a stream.

    The cap applies as the data is read and inflated, so a small gzip bomb costs no more than
    ``max_bytes`` of memory (``too-large``). Unreadable files, corrupt or truncated compressed
    data raise ``unreadable``. Errors are :class:`ExtractError` naming the file.
    """
    subject = str(path)
    try:
        with path.open("rb") as fh:
            if path.suffix.lower() != ".gz":
                size = os.fstat(fh.fileno()).st_size  # read(max_bytes) would allocate it all
                data = fh.read(size + 1) if size <= max_bytes else b""
                if size > max_bytes or len(data) > max_bytes:
                    msg = f"file is larger than the {max_bytes}-byte page limit"
                    raise ExtractError(subject, msg, kind="too-large")
                return data
            return _inflate(fh, subject, max_bytes)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ExtractError(subject, f"cannot read file: {reason}", kind="unreadable") from None


def _inflate(fh: IO[bytes], subject: str, max_bytes: int) -> bytes:
    out = bytearray()
    z = zlib.decompressobj(wbits=31)
    started = False
    try:
        while chunk := fh.read(_CHUNK):
            started = True
            while chunk:
                out += z.decompress(chunk, max_bytes + 1 - len(out))
                if len(out) > max_bytes:
                    msg = f"gzip data inflates beyond the {max_bytes}-byte page limit"
                    raise ExtractError(subject, msg, kind="too-large")
                if z.eof:  # a member ended: the rest may be another member (as gzip allows)
                    chunk = z.unused_data
                    if chunk.strip(b"\0"):
                        z = zlib.decompressobj(wbits=31)
                    else:
                        chunk = b""
                else:
                    chunk = z.unconsumed_tail
    except zlib.error as exc:
        raise ExtractError(subject, f"corrupt gzip data: {exc}", kind="unreadable") from None
    if not started:
        return b""
    if not z.eof:
        raise ExtractError(subject, "truncated gzip data (the file ends early)", kind="unreadable")
    return bytes(out)
