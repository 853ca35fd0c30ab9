"""Memory stays flat while streaming a large WARC input (``make bench``).

Writes a CC-NEWS-like ``.warc.gz`` of ``--size-mb`` (default 1024) into a temp folder (or reuses
``--path``), streams it through :func:`etl.discover.read_warc` as a ``warc`` source and samples the
resident set size as records go by. Prints the peak RSS after 10% and after 100% of the file;
exits non-zero when the growth between them exceeds ``--max-growth-mb`` (default 32).

    uv run python bench/bench_warc_memory.py [--size-mb 1024] [--path FILE] [--max-growth-mb 32]
"""

from __future__ import annotations

import argparse
import gzip
import io
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from etl.config import SourceConfig
from etl.discover import read_warc
from etl.records import Interval

START = datetime(2026, 1, 5, 10, tzinfo=UTC)
INTERVAL = Interval(START, START + timedelta(hours=1))
WORDS = (
    *(b"the", b"of", b"and", b"to", b"in", b"a", b"is", b"that", b"for", b"on", b"news"),
    *(b"government", b"market", b"city", b"said", b"year", b"report", b"minister", b"police"),
)


def _bodies(n: int, size: int) -> list[bytes]:
    rnd = random.Random(7)
    out = []
    for i in range(n):
        words = b" ".join(rnd.choice(WORDS) for _ in range(size // 6))
        salt = rnd.randbytes(size // 4).hex().encode()  # makes it compress like real pages
        out.append(
            b"<html><head><title>%d</title></head><body><p>%s</p><!-- %s --></body></html>"
            % (i, words, salt)
        )
    return out


def generate(path: Path, size_mb: int) -> int:
    """Write records until the file reaches ``size_mb``; returns the record count."""
    bodies = _bodies(64, 120_000)
    target = size_mb * 1024 * 1024
    n = 0
    with path.open("wb") as fh:
        while fh.tell() < target:
            url = f"https://site{n % 50}.example.com/news/{n}.html"
            when = (START + timedelta(seconds=n % 3600)).strftime("%Y-%m-%dT%H:%M:%SZ")
            http = StatusAndHeaders(
                "200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1"
            )
            body = bodies[n % len(bodies)]
            buf = io.BytesIO()
            writer = WARCWriter(buf, gzip=False, warc_version="1.1")
            record = writer.create_warc_record(
                url,
                "response",
                payload=io.BytesIO(body),
                length=len(body),
                http_headers=http,
                warc_headers_dict={"WARC-Date": when},
            )
            writer.write_record(record)
            fh.write(gzip.compress(buf.getvalue(), compresslevel=1))
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--path", type=Path, help="an existing WARC to stream (or where to write)")
    ap.add_argument("--max-growth-mb", type=float, default=32.0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.path or Path(tmp) / "CC-NEWS-bench.warc.gz"
        if not path.exists():
            t0 = time.monotonic()
            records = generate(path, args.size_mb)
            print(
                f"generated {records} records, {path.stat().st_size / 2**20:.0f} MiB "
                f"in {time.monotonic() - t0:.1f} s"
            )
        size = path.stat().st_size
        source = SourceConfig(id="bench", kind="warc", path=str(path))
        proc = psutil.Process()
        peak = peak10 = proc.memory_info().rss
        base = peak
        pages = page_bytes = 0
        t0 = time.monotonic()
        opened: list[io.BufferedReader] = []  # to see how far into the file the reader is

        def opener(p: str) -> io.BufferedReader:
            opened.append(Path(p).open("rb"))  # read_warc closes it
            return opened[-1]

        for page in read_warc(source, INTERVAL, seen=frozenset(), opener=opener):
            pages += 1
            page_bytes += len(page.body)
            if pages % 50 == 0:
                peak = max(peak, proc.memory_info().rss)
                if opened[0].tell() <= size * 0.10:
                    peak10 = peak
        elapsed = time.monotonic() - t0
        peak = max(peak, proc.memory_info().rss)
    growth = (peak - peak10) / 2**20
    print(
        f"streamed           : {size / 2**20:.0f} MiB WARC, {pages} pages, "
        f"{page_bytes / 2**20:.0f} MiB of HTML in {elapsed:.1f} s "
        f"({size / 2**20 / elapsed:.0f} MiB/s compressed)"
    )
    print(f"RSS before         : {base / 2**20:.1f} MiB")
    print(f"peak RSS at 10%    : {peak10 / 2**20:.1f} MiB")
    print(f"peak RSS at 100%   : {peak / 2**20:.1f} MiB")
    print(f"growth 10% -> 100% : {growth:.1f} MiB (target <= {args.max_growth_mb:.0f} MiB)")
    ok = growth <= args.max_growth_mb and pages > 0
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
