"""Turn page bytes into text: HTTP charset, then the page's own declaration, then detection.

A declared charset is trusted when the bytes decode under it; a page that declares a
single-byte charset (latin-1, cp1252, …) but is valid UTF-8 with non-ASCII bytes is read as
UTF-8 (a common server misconfiguration). When no declared charset (nor UTF-8) decodes the
bytes strictly, a declared one (or UTF-8) that decodes *most* of them is kept and just the bad
bytes are replaced (U+FFFD, counted in :attr:`Decoded.errors`): one stray byte in a UTF-8 page
must not turn every accent into mojibake through a guessed codec. Detection is the last resort.
Binary payloads are refused before any decoding.
"""

from __future__ import annotations

import codecs
import logging
import re
import threading
from typing import NamedTuple

from etl.errors import ExtractError

log = logging.getLogger("etl.article.charset")

_HEADER_CHARSET = re.compile(rb"charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)", re.I)
_META_CHARSET = re.compile(
    rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)|<\?xml[^>]+encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)",
    re.I,
)
_BINARY_MAGIC = (
    (b"%PDF-", "PDF document"),
    (b"\x89PNG", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x1f\x8b", "gzip data"),
    (b"RIFF", "RIFF media"),
    (b"\x00\x00\x01\x00", "icon"),
)
_SINGLE_BYTE = {"iso8859-1", "cp1252", "ascii", "iso8859-15", "latin-1"}


def _codec(name: str | bytes | None) -> str | None:
    if not name:
        return None
    label = name.decode("ascii", "ignore") if isinstance(name, bytes) else name
    label = label.strip().lower()
    if label in ("x-sjis", "shift-jis", "sjis"):
        label = "shift_jis"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _sniff_binary(subject: str, data: bytes) -> None:
    for magic, what in _BINARY_MAGIC:
        if data.startswith(magic):
            raise ExtractError(subject, f"binary content ({what}), not an HTML page", kind="binary")
    head = data[:2048]
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ExtractError(subject, "binary content (NUL bytes), not an HTML page", kind="binary")


class Decoded(NamedTuple):
    """Decoded page text, the codec used and how many bytes were invalid (replaced)."""

    text: str
    codec: str
    errors: int = 0


_counter = threading.local()


def _count_replace(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _counter.n = getattr(_counter, "n", 0) + (exc.end - exc.start)
    return "\ufffd", exc.end


codecs.register_error("newsetl-count-replace", _count_replace)


def _lenient(data: bytes, codec: str) -> Decoded | None:
    """``data`` under ``codec`` with its invalid bytes replaced, when they are few: fewer than
    the non-ASCII characters that *do* decode (else the codec is wrong, not the bytes)."""
    _counter.n = 0
    try:
        text = data.decode(codec, "newsetl-count-replace")
    except LookupError:
        return None
    bad = int(_counter.n)
    good = sum(1 for ch in text if ch > "\x7f") - text.count("\ufffd")
    if bad == 0 or bad >= good:
        return None
    return Decoded(text, codec, bad)


def _try(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def decode(
    data: bytes, content_type: str | None = None, *, subject: str = "page"
) -> tuple[str, str]:
    """Decode page bytes; returns ``(text, codec)``. Raises ExtractError naming ``subject``."""
    text, codec, _ = decode_page(data, content_type, subject=subject)
    return text, codec


def decode_page(data: bytes, content_type: str | None = None, *, subject: str = "page") -> Decoded:
    """Decode page bytes (see the module docstring); raises ExtractError naming ``subject``."""
    if not data.strip():
        raise ExtractError(subject, "empty page (no bytes)", kind="empty")
    _sniff_binary(subject, data)
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            text = _try(data, codec)
            if text is not None:
                return Decoded(text, codec)
    declared: list[str] = []
    if content_type and (m := _HEADER_CHARSET.search(content_type.encode("latin-1", "ignore"))):
        declared.append(_codec(m.group(1)) or "")
    if m := _META_CHARSET.search(data[:8192]):
        declared.append(_codec(m.group(1) or m.group(2)) or "")
    utf8 = _try(data, "utf-8")
    for codec in (c for c in declared if c):
        if codec in _SINGLE_BYTE and utf8 is not None and not data.isascii():
            log.debug("%s declares %s but is valid UTF-8; reading as UTF-8", subject, codec)
            return Decoded(utf8, "utf-8")
        text = _try(data, codec)
        if text is not None:
            return Decoded(text, codec)
        log.debug("%s: declared charset %s does not decode the bytes", subject, codec)
    if utf8 is not None:
        return Decoded(utf8, "utf-8")
    for codec in dict.fromkeys([*(c for c in declared if c), "utf-8"]):
        if (got := _lenient(data, codec)) is not None:
            log.info("%s: %d invalid %s bytes replaced", subject, got.errors, codec)
            return got
    from charset_normalizer import from_bytes

    best = from_bytes(data[:200_000]).best()
    if best is not None:
        text = _try(data, best.encoding)
        if text is not None:
            return Decoded(text, best.encoding)
    raise ExtractError(
        subject, "undecodable page: no charset decodes its bytes", kind="undecodable"
    )
