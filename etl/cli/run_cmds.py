"""``newsetl ingest``, ``run`` and ``serve``: pages into the lake, one interval, the demo site."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from etl.cli.common import (
    EndOpt,
    LakeOpt,
    StartOpt,
    WorkersOpt,
    err,
    os_error,
    out,
    parse_interval,
    progress,
)
from etl.errors import EtlError

if TYPE_CHECKING:
    from etl.article import LocalPage


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
    interval = parse_interval(start, end)
    n_pages = sum(1 for _ in _local_pages(paths, base_url, source_id, exclude or []))
    if not n_pages:
        err.print(f"[red]no .html or .html.gz pages found in: {' '.join(map(str, paths))}")
        raise typer.Exit(2)
    with progress(n_pages, "ingest") as bar:
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

    interval = parse_interval(start, end)
    try:  # errors name the file, source, URL or key: print them, no traceback
        settings = load_settings(lake=lake, sources=sources, workers=workers)
        the_run = Run.open(settings, interval, refetch=refetch)
        ids = plan(the_run)
        with progress(len(ids) * 3, "run") as bar:
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
        err.print(f"[red]error:[/] {escape(os_error(exc))}")
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
