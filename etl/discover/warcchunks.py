"""WARC sources in chunks (see :mod:`etl.runner.chunks`): byte ranges of WARC files cut at record
boundaries, and reading one range as :func:`etl.discover.warc.read_warc` reads a whole source."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Mapping
from typing import IO, Any

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from etl.config import SourceConfig
from etl.discover.files import SourceFiles, read_errors, source_error
from etl.discover.warc import read_warc
from etl.errors import EtlError
from etl.records import Interval, Page

__all__ = ["chunk_id", "open_range", "plan_warc", "read_warc_chunk"]

log = logging.getLogger("etl.discover.warcchunks")


def chunk_id(n: int) -> str:
    """The id of the ``n``-th chunk of a source (``0000``, ``0001``, …: sorts as it counts)."""
    return f"{n:04d}"


def plan_warc(src: SourceConfig, files: SourceFiles, size: int) -> list[dict[str, Any]]:
    """Chunks ``{chunk, path, from_byte, to_byte}`` (``to_byte`` None: to the end of the file; the
    names keep clear of the interval's ``start``/``end`` in the items) of a WARC
    source's files: a file is cut before the record that follows every ``size`` response
    records. Reads every file through once (warcio, no HTTP parsing)."""
    chunks: list[dict[str, Any]] = []
    for path in files.expand(src.path or src.url or ""):
        starts = _cuts(files, path, size)
        for start, end in zip(starts, [*starts[1:], None], strict=True):
            chunks.append(
                {"chunk": chunk_id(len(chunks)), "path": path, "from_byte": start, "to_byte": end}
            )
    return chunks


def _cuts(files: SourceFiles, path: str, size: int) -> list[int]:
    starts = [0]
    responses = 0
    try:
        with files.open(path) as stream:
            it = ArchiveIterator(stream, no_record_parse=True)
            for record in it:
                if responses >= size:
                    starts.append(it.offset)
                    responses = 0
                if record.rec_type == "response":
                    responses += 1
    except ArchiveLoadFailed as exc:  # one gzip stream: offsets cannot be sought
        log.warning("%s: cannot be cut at records (%s): one chunk", path, str(exc).strip()[:80])
        return [0]
    except read_errors() as exc:
        raise source_error(path, "read", exc) from exc
    return starts


class _Range(io.RawIOBase):
    """Bytes ``[start, start + limit)`` of a stream positioned at ``start``; ``tell`` gives the
    file's offset, so warcio's record offsets (and ``raw_ref``) are the whole file's."""

    def __init__(self, raw: Any, start: int, limit: int | None) -> None:
        self._raw, self._pos, self._left = raw, start, limit

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        want = len(buffer) if self._left is None else min(len(buffer), self._left)
        if want <= 0:
            return 0
        data = self._raw.read(want)
        n = len(data)
        buffer[:n] = data
        self._pos += n
        if self._left is not None:
            self._left -= n
        return n

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def open_range(files: SourceFiles, path: str, start: int, end: int | None) -> IO[bytes]:
    """A stream of bytes ``[start, end)`` of a local file or ``s3://`` object (a ranged GET)."""
    limit = None if end is None else end - start
    if path.startswith("s3://"):
        bucket, _, key = path[len("s3://") :].partition("/")
        span = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            body = files.client(path).get_object(Bucket=bucket, Key=key, Range=span)["Body"]
        except EtlError:
            raise
        except Exception as exc:
            raise source_error(path, "get", exc) from exc
        return _Range(body, start, limit)  # type: ignore[return-value]
    fh = files.open(path)
    fh.seek(start)
    return _Range(fh, start, limit)  # type: ignore[return-value]


def read_warc_chunk(
    src: SourceConfig,
    interval: Interval,
    chunk: Mapping[str, Any],
    *,
    seen: frozenset[str],
    files: SourceFiles,
) -> Iterator[Page]:
    """The pages of one WARC chunk, as :func:`etl.discover.warc.read_warc` reads them."""
    path, start, end = str(chunk["path"]), int(chunk["from_byte"]), chunk.get("to_byte")
    one = src.model_copy(update={"path": path, "url": None})
    yield from read_warc(
        one,
        interval,
        seen=seen,
        files=files,
        opener=lambda p: open_range(files, p, start, None if end is None else int(end)),
    )
