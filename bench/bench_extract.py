"""Extraction speed and memory, measured in one run against bare trafilatura.

- single-process throughput of the `newsetl extract` path (extract + clean + JSON row) vs bare
  ``trafilatura.extract(bytes)`` with default settings, same pages, same process, best of N;
- ``--workers 2`` vs one worker on the same pages;
- peak RSS of ``newsetl extract`` over 10x more pages vs 1x (separate processes).

Targets (issue 2): ratio >= 0.85, workers-2 speed-up >= 1.7, RSS growth <= 20 %.
Exits 1 when a target is missed. Pages: ../shared/corpus/sh_dev (read, never copied in).
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("NEWSETL_CORPUS", ROOT.parent / "shared" / "corpus" / "sh_dev"))
if not CORPUS.is_dir() and "NEWSETL_CORPUS" not in os.environ:  # a worktree under /work/wt/
    CORPUS = ROOT.parents[1] / "shared" / "corpus" / "sh_dev"


def load_pages() -> list[tuple[str, bytes]]:
    from etl.article import corpus_pages

    return list(corpus_pages(CORPUS))


def run_ours(pages: list[tuple[str, bytes]], workers: int) -> float:
    from etl.article import process_pages
    from etl.cli.article_cmds import json_line
    from etl.config import load_settings
    from etl.records import Page

    settings = load_settings(env={}, workers=workers)
    items = [Page(id=f"{pid}-{i}", body=raw) for i, (pid, raw) in enumerate(pages)]
    t0 = time.perf_counter()
    n = 0
    for _ok, _line in process_pages(items, settings, workers=workers, finish=json_line):
        n += 1
    assert n == len(items)
    return time.perf_counter() - t0


def run_bare(pages: list[tuple[str, bytes]]) -> float:
    import trafilatura

    t0 = time.perf_counter()
    for _, raw in pages:
        trafilatura.extract(raw)
    return time.perf_counter() - t0


def child_memory(n_pages: int) -> None:
    """Run in a child: extract n_pages files through the CLI code path; print peak RSS (KiB)."""
    pages = load_pages()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n_pages):
            pid, raw = pages[i % len(pages)]
            (Path(tmp) / f"{i:05d}-{pid[:8]}.html.gz").write_bytes(gzip.compress(raw, 1))
        from etl.cli import app

        devnull = open(os.devnull, "w")
        sys.stdout = devnull
        try:
            app(["extract", tmp], standalone_mode=False)
        except SystemExit:
            pass
        sys.stdout = sys.__stdout__
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def measure_rss(n_pages: int) -> int:
    cmd = [sys.executable, __file__, "--child-memory", str(n_pages)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return int(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child-memory", type=int)
    ap.add_argument("--repeat", type=int, default=3, help="best of N timings")
    ap.add_argument("--scale", type=int, default=4, help="corpus copies for the workers test")
    args = ap.parse_args()
    if args.child_memory:
        child_memory(args.child_memory)
        return 0
    pages = load_pages()
    run_ours(pages[:5], 1)  # warm up imports and models
    run_bare(pages[:5])
    ours = min(run_ours(pages, 1) for _ in range(args.repeat))
    bare = min(run_bare(pages) for _ in range(args.repeat))
    ratio = bare / ours
    print(f"pages: {len(pages)} from {CORPUS}")
    print(f"bare trafilatura.extract : {len(pages) / bare:7.1f} pages/s")
    print(
        f"newsetl extract, 1 proc  : {len(pages) / ours:7.1f} pages/s  ratio {ratio:.2f} (target >= 0.85)"
    )
    many = pages * args.scale
    one = min(run_ours(many, 1) for _ in range(2))
    two = min(run_ours(many, 2) for _ in range(2))
    speedup = one / two
    print(
        f"workers 1 vs 2 ({len(many)} pages): {len(many) / one:.1f} vs {len(many) / two:.1f} pages/s  "
        f"speed-up {speedup:.2f} (target >= 1.7)"
    )
    small, large = len(pages), len(pages) * 10
    rss_small, rss_large = measure_rss(small), measure_rss(large)
    growth = rss_large / rss_small - 1
    print(
        f"peak RSS: {small} pages {rss_small / 1024:.0f} MiB, {large} pages {rss_large / 1024:.0f} MiB  "
        f"growth {growth:+.1%} (target <= +20%)"
    )
    ok = ratio >= 0.85 and speedup >= 1.7 and growth <= 0.20
    print("extract targets:", "MET" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
