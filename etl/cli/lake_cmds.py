"""``newsetl query``, ``compact``, ``ddl`` and ``report``: commands on a lake."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from etl.cli.common import LakeOpt, check_day, err, out
from etl.errors import EtlError

_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "json",
                   ".ndjson": "json", ".parquet": "parquet"}  # fmt: skip


def query(
    sql: Annotated[str, typer.Argument(help="SQL over the views `articles` and `fetch_log`.")],
    lake: LakeOpt = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="table | tsv | csv | json | parquet (default: by the --output suffix "
            "(.csv .tsv .json .jsonl .parquet), else table on a terminal, else tsv).",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the result to this file.")
    ] = None,
) -> None:
    """Run DuckDB SQL over the lake's Parquet, lazily (dt pruning, column and filter pushdown)."""
    from etl.config import load_settings
    from etl.lake import FORMATS, query_batches, write_parquet, write_text

    if fmt is None:  # -o x.parquet / x.csv / x.json: the format its name says (else tsv)
        fmt = _SUFFIX_FORMATS.get(output.suffix.lower(), "tsv") if output else None
        fmt = fmt or ("table" if sys.stdout.isatty() else "tsv")
    if fmt not in FORMATS:
        err.print(f"[red]--format {escape(fmt)}: expected one of {', '.join(FORMATS)}")
        raise typer.Exit(2)
    if fmt == "parquet" and output is None and sys.stdout.isatty():
        err.print("[red]--format parquet writes binary: give --output FILE or a pipe")
        raise typer.Exit(2)
    settings = load_settings(lake=lake)
    root = None if settings.lake_settings.is_s3 else Path(settings.lake).expanduser().resolve()
    if root is not None and output is not None and root in output.resolve().parents:
        err.print(f"[red]--output {escape(str(output))} is inside the lake: write it elsewhere")
        raise typer.Exit(2)  # a result under articles/ would be read as articles, or replace one
    if root is not None and not root.is_dir():
        err.print(
            f"[yellow]warning:[/] lake {escape(settings.lake)} does not exist: its views are empty"
        )
    try:
        # the SQL typed runs locked: it reads the lake's views and nothing else
        with query_batches(settings.lake_settings, sql, locked=True) as reader:
            # Values are written verbatim: rich would read markup/emoji in the data.
            if output is not None:
                # a device or a pipe (-o /dev/stdout, a FIFO): written in place, never renamed over
                special = output.exists() and not output.is_file() and not output.is_dir()
                tmp = output if special else output.with_name(f".{output.name}.partial")
                try:
                    if fmt == "parquet":
                        with tmp.open("wb") as fb:
                            rows = write_parquet(reader, fb)
                    else:
                        with tmp.open("w", encoding="utf-8", newline="") as ft:
                            rows = write_text(fmt, reader, ft)
                    if not special:
                        tmp.replace(output)  # a half-written result never takes the name
                finally:
                    if not special:
                        tmp.unlink(missing_ok=True)
                err.print(f"{rows} rows → {output}", markup=False)
            elif fmt == "parquet":
                write_parquet(reader, sys.stdout.buffer)
            else:
                write_text(fmt, reader, sys.stdout)
    except EtlError as exc:
        err.print(f"[red]{escape(str(exc))}")
        raise typer.Exit(2) from None
    except BrokenPipeError:  # the reader went away (| head -1): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(141) from None
    except OSError as exc:
        err.print(f"[red]{escape(str(output or 'stdout'))}: cannot write: {escape(str(exc))}")
        raise typer.Exit(2) from None


def compact(
    day: Annotated[str, typer.Option("--day", help="The dt partition to compact (YYYY-MM-DD).")],
    lake: LakeOpt = None,
) -> None:
    """Merge a day's hourly article files into a few sorted files; link near-duplicates."""
    from etl.config import load_settings
    from etl.lake import compact_day, open_lake

    check_day(day, "--day")
    settings = load_settings(lake=lake)
    try:
        result = compact_day(open_lake(settings.lake_settings), day, lease=settings.lease)
    except EtlError as exc:
        hint = " (transient: running it again may succeed)" if exc.transient else ""
        err.print(f"[red]error:[/] {escape(str(exc))}{hint}")
        raise typer.Exit(2) from None
    if result.skipped:
        out.print(f"dt={day}: nothing new to compact ({result.rows} rows compacted before)")
    else:
        out.print(
            f"dt={day}: {result.rows} rows from {len(result.replaced)} intervals into "
            f"{len(result.files)} file(s), {result.duplicates_linked} near-duplicates linked, "
            f"{len(result.deleted)} replaced objects deleted",
            markup=False,
        )
    for key in result.files:
        out.print(f"  {key}", markup=False)


def ddl(
    engine: Annotated[str, typer.Argument(help="athena | trino | spark | duckdb | polars")],
    location: Annotated[
        str | None,
        typer.Option("--location", help="Lake URI (default: $NEWSETL_LAKE or ./lake)."),
    ] = None,
    table: Annotated[str, typer.Option(help="articles or fetch_log.")] = "articles",
) -> None:
    """Print the table definition (or Polars snippet) for an engine, from schemas/."""
    from etl.config import load_settings
    from etl.lake import render

    settings = load_settings(lake=location)
    try:
        text = render(engine, settings.lake, table=table, settings=settings.lake_settings)
    except EtlError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    sys.stdout.write(text)


def report(
    since: Annotated[
        str | None, typer.Option("--since", help="First day (YYYY-MM-DD); default: all.")
    ] = None,
    lake: LakeOpt = None,
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report.")
    ] = None,
) -> None:
    """Run figures per day and source from the manifests and the fetch_log; flags drops."""
    from etl.config import load_settings
    from etl.report import build_report

    if since is not None:
        check_day(since, "--since")
    settings = load_settings(lake=lake)
    try:
        rep = build_report(settings.lake_settings, since)
    except EtlError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    arts = sum(r["articles"] for r in rep.intervals)
    out.print(f"{len(rep.intervals)} intervals, {arts} articles", markup=False)
    cols = ["dt", "source", "discovered", "fetched", "failed", "written", "yield", "words"]
    sys.stdout.write("\t".join(cols) + "\n")
    for row in rep.days:
        cells = [f"{v:.2f}" if isinstance(v, float) else "" if v is None else str(v)
                 for v in (row[c] for c in cols)]  # fmt: skip
        sys.stdout.write("\t".join(cells) + "\n")
    for f in rep.flags:
        out.print(
            f"FLAG {f['source']} {f['dt']}: {f['metric']} {f['value']:.2f} against "
            f"{f['trailing']:.2f} over its trailing week",
            markup=False,
        )
    if html_file is not None:
        from etl.report import render_html

        try:
            html_file.write_text(render_html(rep), encoding="utf-8")
        except OSError as exc:
            err.print(f"[red]{escape(str(html_file))}: cannot write: {escape(str(exc))}")
            raise typer.Exit(2) from None
        err.print(f"HTML report → {html_file}", markup=False)
