"""``newsetl extract`` and ``newsetl eval``: the article core on saved pages, and its score."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from etl.cli.common import WorkersOpt, err, out, progress
from etl.records import Article, Failure


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
    with progress(len(files), "extract") as bar:
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
