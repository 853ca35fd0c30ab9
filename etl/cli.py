"""The ``newsetl`` command line (typer + rich). The only place that prints."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from etl.errors import EtlError
from etl.records import Article, Failure, Interval

if TYPE_CHECKING:  # commands import what they use in their bodies: --help loads no pipeline
    from rich.progress import Progress

    from etl.article import LocalPage

log = logging.getLogger("etl.cli")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # errors are one line (EtlError); rich.traceback costs 50 ms
    help="newsetl: news pages in, clean schema-checked Parquet out.",
)
err = Console(stderr=True, soft_wrap=True)  # messages name paths and URLs: never wrap them
out = Console(highlight=False, soft_wrap=True)

LakeOpt = Annotated[str | None, typer.Option(help="Lake URI (default: $NEWSETL_LAKE or ./lake).")]
StartOpt = Annotated[
    str | None, typer.Option(help="Interval start (ISO); default: last full hour.")
]
EndOpt = Annotated[str | None, typer.Option(help="Interval end (ISO); default: start + 1 h.")]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers", "-w", min=1, help="Worker processes (default: $NEWSETL_WORKERS or 1)."
    ),
]


def _progress(total: int | None, label: str) -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def article_json(article: Article) -> dict[str, Any]:
    """The JSON object `newsetl extract` prints for an article: ``id`` then the row fields."""
    from etl.article import article_row

    rules = article.cleaned.rules_version
    row = article_row(article, dt=None, rules_version=rules, strict=False)
    extra = {"decode_errors": article.extracted.decode_errors}
    return {"id": article.page.id, "path": article.page.raw_ref, **_jsonable(row), **extra}


def json_line(result: Article | Failure) -> tuple[bool, str]:
    """One JSON line for a result (runs in the worker process): ``(ok, line)``."""
    if isinstance(result, Failure):
        row = {"id": result.id, "path": result.subject, "error": result.error}
        return False, json.dumps({**row, "error_kind": result.kind}, ensure_ascii=False) + "\n"
    return True, json.dumps(article_json(result), ensure_ascii=False) + "\n"


def _human(result: Article | Failure) -> None:
    if isinstance(result, Failure):
        out.print(f"[bold red]✗ {escape(result.id)}[/]  {escape(result.error)}")
        return
    ex, cl = result.extracted, result.cleaned
    out.print(f"[bold green]✓ {escape(result.page.id)}[/]  {escape(ex.title or '(no title)')}")
    out.print(
        f"  authors: {', '.join(ex.authors) or '-'}   published: "
        f"{ex.published_at.isoformat() if ex.published_at else '-'} ({ex.date_source or '-'})   "
        f"language: {ex.language or '-'}   words: {len(cl.text.split())}",
        markup=False,
    )
    for r in (*ex.pruned, *cl.removed):
        first = r.text.split("\n")[0]
        more = f"  (+{r.text.count(chr(10))} lines)" if "\n" in r.text else ""
        out.print(f"  [red]- {escape(f'[{r.rule}]')}[/] {escape(first[:140])}{more}")
    for c in cl.captions:
        out.print(f"  [cyan]~ caption:[/] {escape(c[:140])}")


@app.command()
def extract(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or folders of .html / .html.gz pages.")
    ],
    workers: WorkersOpt = None,
    human: Annotated[
        bool, typer.Option("--human", help="Readable report: removed lines with rule ids.")
    ] = False,
) -> None:
    """Extract and clean pages; print one JSON object per page (JSON lines)."""
    from etl.article import find_pages, process_pages
    from etl.config import load_settings

    settings = load_settings(workers=workers)
    workers = settings.workers
    if human:  # the report also shows the blocks the prune rules took out
        settings = replace(settings, extract=replace(settings.extract, explain=True))
    files = list(find_pages(paths))
    if not files:
        err.print(f"[red]no .html or .html.gz pages found in: {' '.join(map(str, paths))}")
        raise typer.Exit(2)
    failed = 0
    with _progress(len(files), "extract") as bar:
        task = bar.add_task("extract", total=len(files))
        finish = None if human else json_line
        for result in process_pages(files, settings, workers=workers, finish=finish):
            bar.advance(task)
            if human:
                failed += isinstance(result, Failure)
                _human(result)
            else:
                ok, line = result
                failed += not ok
                sys.stdout.write(line)
    if failed:
        err.print(f"[yellow]{failed} of {len(files)} pages yielded no article")
        raise typer.Exit(1)


@app.command("eval")
def evaluate_cmd(
    corpus: Annotated[Path, typer.Argument(help="Folder with ground-truth.json and html/.")],
    baseline: Annotated[
        bool, typer.Option("--baseline", help="Also score bare trafilatura (defaults).")
    ] = False,
    global_only: Annotated[
        bool,
        typer.Option(
            "--global-only",
            help="Also score with the domain-specific rules off (what an unseen site gets).",
        ),
    ] = False,
    by_domain: Annotated[
        bool,
        typer.Option("--by-domain", help="Per-domain F1 and the ten worst pages with their class."),
    ] = False,
    workers: WorkersOpt = None,
) -> None:
    """Precision / recall / F1 of newsetl on a corpus (the benchmark's shingle metric)."""
    from etl.article import classified, evaluate, load_truth, pages_of, score_corpus
    from etl.config import load_settings

    if not (corpus / "ground-truth.json").is_file():
        err.print(f"[red]{corpus}: no ground-truth.json here")
        raise typer.Exit(2)
    settings = load_settings(workers=workers)
    workers = settings.workers
    try:
        pages = pages_of(corpus)
        load_truth(corpus)
    except (OSError, ValueError, AttributeError) as exc:
        err.print(f"{corpus}/ground-truth.json: not a ground-truth file ({exc})", markup=False)
        raise typer.Exit(2) from None
    full = score_corpus(corpus, settings, workers=workers, pages=pages)
    rows = [("newsetl", full.score, full.seconds)]
    shown = full
    if global_only:
        shown = score_corpus(corpus, settings, workers=workers, pages=pages, global_only=True)
        rows.append(("newsetl --global-only", shown.score, shown.seconds))
    if baseline:
        import trafilatura

        t0 = time.perf_counter()
        bare = {p.id: trafilatura.extract(p.body) or "" for p in pages}
        score = evaluate(bare, load_truth(corpus))[0]
        rows.append(("trafilatura (defaults)", score, time.perf_counter() - t0))
    out.print(
        f"{'extractor':<24} {'F1':>7} {'precision':>10} {'recall':>8} {'pages':>6} {'seconds':>8}"
    )
    for name, score, secs in rows:
        out.print(
            f"{name:<24} {score.f1:7.4f} {score.precision:10.4f} {score.recall:8.4f} "
            f"{score.pages:6d} {secs:8.2f}"
        )
    if not (global_only or by_domain):
        return
    low = shown.below(0.5)
    label = "global rules only" if global_only else "all rules"
    out.print(
        f"\n{label}: {len(low)} page(s) below F1 0.5 with over 100 words of ground truth"
        + (f": {', '.join(p.score.id for p in low)}" if low else ""),
        markup=False,
    )
    if not by_domain:
        return
    out.print(f"\nper domain ({label}):", markup=False)
    out.print(f"{'domain':<40} {'F1':>7} {'precision':>10} {'recall':>8} {'pages':>6}")
    for domain, score in shown.by_domain().items():
        out.print(
            f"{domain:<40} {score.f1:7.4f} {score.precision:10.4f} {score.recall:8.4f} "
            f"{score.pages:6d}",
            markup=False,
        )
    out.print(f"\nworst pages ({label}):", markup=False)
    out.print(
        f"{'page':<12} {'F1':>6} {'P':>6} {'R':>6} {'words':>6}  {'class':<12} {'method':<20} url"
    )
    for p, kind in classified(shown, pages):
        out.print(
            f"{p.score.id[:12]:<12} {p.f1:6.3f} {p.score.precision or 0:6.3f} "
            f"{p.score.recall or 0:6.3f} {p.truth_words:6d}  {kind:<12} "
            f"{(p.method or '-') + ('?' if p.doubtful else ''):<20} {p.url or '-'}",
            markup=False,
        )


def _parse_time(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{what}: not an ISO-8601 time: {value!r}") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "json",
                   ".ndjson": "json", ".parquet": "parquet"}  # fmt: skip


@app.command()
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


@app.command()
def compact(
    day: Annotated[str, typer.Option("--day", help="The dt partition to compact (YYYY-MM-DD).")],
    lake: LakeOpt = None,
) -> None:
    """Merge a day's hourly article files into a few sorted files; link near-duplicates."""
    from etl.config import load_settings
    from etl.lake import compact_day, open_lake

    _check_day(day, "--day")
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


@app.command()
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


@app.command()
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
        _check_day(since, "--since")
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


def _local_pages(
    paths: list[Path], base_url: str | None, source_id: str, exclude: list[str]
) -> Iterator[LocalPage]:
    """Local files to ingest (read later, one at a time, where they are processed); with
    ``base_url`` each gets the URL it would have on that site."""
    from fnmatch import fnmatch

    from etl.article import LocalPage, find_pages

    now = datetime.now(UTC)
    for root in paths:
        for f in find_pages([root]):
            rel = f.relative_to(root).as_posix() if root.is_dir() else f.name
            if any(fnmatch(rel, pattern) for pattern in exclude):
                continue
            url = None
            if base_url:
                rel = rel.removesuffix(".gz").removesuffix("index.html")
                url = base_url.rstrip("/") + "/" + rel
            yield LocalPage(f, url=url, source_id=source_id, fetched_at=now)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of saved pages.")],
    lake: LakeOpt = None,
    source_id: Annotated[str, typer.Option("--source-id", help="source_id of the rows.")] = "local",
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="Site root the folder mirrors (gives each page its URL)."),
    ] = None,
    start: StartOpt = None,
    end: EndOpt = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Skip files whose path under the folder matches (glob)."),
    ] = None,
    workers: WorkersOpt = None,
) -> None:
    """Run the article core on saved pages and publish them as one lake interval."""
    from etl.config import load_settings
    from etl.lake import open_lake
    from etl.runner import ingest as run_ingest

    settings = load_settings(lake=lake, workers=workers)
    interval = _interval(start, end)
    n_pages = sum(1 for _ in _local_pages(paths, base_url, source_id, exclude or []))
    if not n_pages:
        err.print(f"[red]no .html or .html.gz pages found in: {' '.join(map(str, paths))}")
        raise typer.Exit(2)
    with _progress(n_pages, "ingest") as bar:
        task = bar.add_task("ingest", total=n_pages)
        summary = run_ingest(  # pages stream through: memory does not grow with the folder
            _local_pages(paths, base_url, source_id, exclude or []),
            settings,
            interval=interval,
            lake=open_lake(settings.lake_settings),
            source_id=source_id,
            workers=settings.workers,
            on_result=lambda _: bar.advance(task),
        )
    m = summary.manifest
    out.print(f"[bold]lake[/] {settings.lake}   [bold]interval[/] {m.interval} (dt={m.dt})")
    out.print(
        f"wrote {m.articles} articles in {len(m.shards)} file(s); {len(summary.failures)} failed"
    )
    for info in m.shards:
        out.print(f"  {info.key}  ({info.rows} rows, {info.bytes} bytes)")
    for title in summary.titles[:5]:
        out.print(f"  • {title}", markup=False, emoji=False)
    if summary.rule_hits:
        fired = ", ".join(f"{rule}×{n}" for rule, n in summary.rule_hits.most_common())
        out.print(f"rules fired: {fired}")
    for f in summary.failures:
        out.print(f"[yellow]  ✗ {escape(f.error)}")
    out.print(
        f'query it: newsetl query --lake {settings.lake} "SELECT title, published_at FROM articles"'
    )
    if summary.failures:
        raise typer.Exit(1)


@app.command()
def run(
    sources: Annotated[
        str | None, typer.Option(help="sources.yaml (default: $NEWSETL_SOURCES).")
    ] = None,
    lake: LakeOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    refetch: Annotated[
        bool, typer.Option("--refetch", help="Fetch again even if the raw archive exists.")
    ] = False,
    workers: WorkersOpt = None,
) -> None:
    """One pipeline run for one interval: discover → fetch → extract → clean → publish.

    Exit status: 0 the interval is complete; 1 it was published but is incomplete (URLs pending
    after transient failures: run it again to fetch just those) or a source failed; 2 an error
    stopped the run before anything was published (bad configuration, the quality gate...).
    """
    from etl.config import load_settings
    from etl.runner import Run, plan, run_interval

    interval = _interval(start, end)
    try:  # errors name the file, source, URL or key: print them, no traceback
        settings = load_settings(lake=lake, sources=sources, workers=workers)
        the_run = Run.open(settings, interval, refetch=refetch)
        ids = plan(the_run)
        with _progress(len(ids) * 3, "run") as bar:
            task = bar.add_task("run", total=len(ids) * 3 + 2)

            def step(name: str) -> None:
                bar.update(task, description=name)
                bar.advance(task)

            # the one step loop (runner.run_interval), holding the interval lease throughout
            published = run_interval(the_run, on_step=step)
        processed, quality = published["sources"], published["quality"]
    except EtlError as exc:
        hint = " (transient: running it again may succeed)" if exc.transient else ""
        err.print(f"[red]error:[/] {escape(str(exc))}{hint}")
        raise typer.Exit(2) from None
    except OSError as exc:  # a full scratch disk, a read-only folder: nothing was published
        err.print(f"[red]error:[/] {escape(_os_error(exc))}")
        raise typer.Exit(2) from None
    out.print(f"lake {settings.lake}   interval {interval.id} (dt={interval.dt})", markup=False)
    for p in processed:
        if p["mode"] in ("failed", "error"):
            kind = "transient" if p.get("transient") else "terminal"
            out.print(f"  source {p['source']}: FAILED ({kind}): {p['error']}", markup=False)
            continue
        out.print(
            f"  source {p['source']}: mode {p['mode']}, {p.get('count', '-')} listed, "
            f"{p.get('pages', '-')} fetched, {p.get('fetch_failed', 0)} fetches failed, "
            f"{p['rows']} articles, {p['failed']} pages without an article",
            markup=False,
        )
    out.print(
        f"published {published['articles']} articles in {len(published['keys'])} file(s); "
        f"{published['urls_tried']} fetch_log rows; quality {quality}",
        markup=False,
    )
    pending, failed = published["pending"], published["failed_sources"]
    if published["status"] != "complete" or failed:
        if pending:
            shown = "\n  ".join(pending[:20]) + ("\n  …" if len(pending) > 20 else "")
            err.print(
                f"interval {interval.id} is INCOMPLETE: {len(pending)} URLs pending after "
                f"transient failures (run it again to fetch just these):\n  {shown}",
                markup=False,
            )
        for f in failed:
            again = "retried by the next run" if f.get("transient") else "--refetch to retry"
            err.print(f"source {f['source']} failed ({again}): {f.get('error')}", markup=False)
        raise typer.Exit(1)


def _os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc} (local scratch space: $TMPDIR; nothing was published)"


def _check_day(value: str, flag: str) -> None:
    """A YYYY-MM-DD option, or exit 2 naming it."""
    try:
        date.fromisoformat(value)
    except ValueError:
        err.print(f"[red]{flag} {escape(value)}: not a date (YYYY-MM-DD)")
        raise typer.Exit(2) from None


def _interval(start: str | None, end: str | None) -> Interval:
    s, e = _parse_time(start, "--start"), _parse_time(end, "--end")
    if s is None:
        return Interval.last_complete_hour() if e is None else Interval(e - timedelta(hours=1), e)
    try:
        return Interval(s, e or s + timedelta(hours=1))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def serve(
    root: Annotated[Path, typer.Argument(help="Folder to serve (e.g. seeds/site).")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port).")] = 8765,
) -> None:
    """Serve a folder as a local news site on 127.0.0.1 ({{BASE}} → its URL). Ctrl-C stops."""
    from etl.devsite import DevSite

    with DevSite(root, port=port) as site:
        out.print(f"serving {root} at {site.base}  (Ctrl-C to stop)", markup=False)
        with contextlib.suppress(KeyboardInterrupt):
            site.thread.join()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # trafilatura logs a warning for every page it finds no text in; newsetl reports those
    # pages itself (an error row naming the file and the cause), so only its errors show
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    try:
        app()
    except EtlError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        sys.exit(2)
    except OSError as exc:
        err.print(f"[red]error:[/] {escape(_os_error(exc))}")
        sys.exit(2)
