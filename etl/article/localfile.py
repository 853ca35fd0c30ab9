"""A saved page on local disk → its bytes, capped; ``.gz`` inflated in a stream (gzip-bomb safe)."""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import IO

from etl.errors import ExtractError

__all__ = ["read_local"]

_CHUNK = 64 * 1024


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
