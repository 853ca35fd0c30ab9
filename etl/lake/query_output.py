"""Writers of ``newsetl query`` results, one record batch at a time (nothing is held whole).

Formats: ``table`` (aligned columns for a terminal: widths from the first batch, long values cut
with "…"), ``tsv`` (header line, tab-separated values verbatim, empty for NULL: what the command
printed before formats existed and what it prints into a pipe by default), ``csv`` (RFC 4180,
nested values as JSON), ``json`` (JSON lines, one object per row) and ``parquet`` (the result's
Arrow schema, zstd; needs a file or a pipe, not a terminal).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import IO, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger("etl.lake.query_output")

Format = Literal["table", "tsv", "csv", "json", "parquet"]
FORMATS: tuple[Format, ...] = ("table", "tsv", "csv", "json", "parquet")
MAX_CELL = 48


def _plain(value: Any) -> Any:
    """A JSON-ready value: timestamps as ISO text, decimals as numbers, bytes as hex, NaN and
    infinities as null (JSON has neither: ``NaN`` made the line unreadable to JSON parsers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list | tuple):
        return json.dumps(_plain(value), ensure_ascii=False, allow_nan=False)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):  # hex, as in JSON (not Python's b'...' repr)
        return value.hex()
    return str(value)


def _rows(batch: pa.RecordBatch) -> list[tuple[Any, ...]]:
    return list(zip(*(c.to_pylist() for c in batch.columns), strict=True))


def _write_tsv(reader: pa.RecordBatchReader, out: IO[str]) -> int:
    out.write("\t".join(reader.schema.names) + "\n")
    n = 0
    for batch in reader:
        for row in _rows(batch):
            out.write("\t".join(_text(v) for v in row) + "\n")
            n += 1
    return n


def _write_csv(reader: pa.RecordBatchReader, out: IO[str]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(reader.schema.names)
    n = 0
    for batch in reader:
        rows = _rows(batch)
        writer.writerows([_text(v) for v in row] for row in rows)
        n += len(rows)
    return n


def _write_json(reader: pa.RecordBatchReader, out: IO[str]) -> int:
    n = 0
    for batch in reader:
        for row in batch.to_pylist():
            out.write(json.dumps(_plain(row), ensure_ascii=False, allow_nan=False) + "\n")
            n += 1
    return n


# C0 and C1 control characters and DEL: on a terminal an ESC sequence in a scraped title would
# recolour, retitle or clear the user's terminal; a CR would overwrite the line
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _cut(text: str) -> str:
    text = _CONTROL.sub(lambda m: " " if m.group() in "\n\t" else "\ufffd", text)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _write_table(reader: pa.RecordBatchReader, out: IO[str]) -> int:
    names = [_CONTROL.sub("\ufffd", n) for n in reader.schema.names]
    widths: list[int] | None = None
    n = 0
    for batch in reader:
        cells = [[_cut(_text(v)) for v in row] for row in _rows(batch)]
        if widths is None:
            widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(names)]
            out.write("  ".join(h.ljust(w) for h, w in zip(names, widths, strict=True)).rstrip())
            out.write("\n" + "  ".join("─" * w for w in widths) + "\n")
        for row in cells:
            out.write("  ".join(c.ljust(w)[:w] for c, w in zip(row, widths, strict=True)).rstrip())
            out.write("\n")
        n += len(cells)
    if widths is None:  # no batch at all: still show the header
        out.write("  ".join(names) + "\n")
    out.write(f"({n} row{'s' if n != 1 else ''})\n")
    return n


def write_parquet(reader: pa.RecordBatchReader, out: IO[bytes]) -> int:
    """Stream the result into one Parquet file (zstd, row groups as the batches arrive)."""
    n = 0
    with pq.ParquetWriter(out, reader.schema, compression="zstd") as writer:
        for batch in reader:
            writer.write_batch(batch)
            n += batch.num_rows
    return n


TEXT_WRITERS: dict[str, Callable[[pa.RecordBatchReader, IO[str]], int]] = {
    "table": _write_table,
    "tsv": _write_tsv,
    "csv": _write_csv,
    "json": _write_json,
}


def write_text(fmt: Format, reader: pa.RecordBatchReader, out: IO[str]) -> int:
    """Write a text format; returns the number of rows written."""
    return TEXT_WRITERS[fmt](reader, out)
