"""Load benchmarks (issue 10, ``make bench``; not part of ``make test``).

1. **Memory at scale**: ``newsetl ingest`` (the streaming path: pages flow from the folder through
   extraction into Parquet, never held together) of a generated folder of ``--pages`` small pages
   (default 20,000) and of a tenth of it, each in its own process; the peak RSS of the large run
   must stay within ``--max-rss-ratio`` (1.2) of the small one's.
2. **Soak**: ``--hours`` (50) consecutive hourly intervals of ``newsetl run`` (the runner, in
   process) against a site on 127.0.0.1 that keeps adding articles: each hour's feed lists that
   hour's new items and the older ones of the hours before. Every article must land exactly once
   across the lake, every interval must be complete, and the server's request log must show each
   article asked once: interval N+1 never fetches interval N's articles again.

    uv run python bench/bench_load.py [--pages 20000] [--hours 50] [--per-hour 4] [--skip-rss]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etl.config import Settings
from etl.lake import read_articles
from etl.records import Interval
from etl.runner import Run, run_interval
from tests.support.article_factory import prose
from tests.support.sites import Response, Site, SiteRequest

T0 = datetime(2026, 1, 5, 0, tzinfo=UTC)
PAGE = (
    "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Story {i}</title></head>"
    "<body><article><h1>Story {i}</h1><p>{a}</p><p>{b}</p></article></body></html>"
)


# -- 1. memory at scale ---------------------------------------------------------------------------


def make_folder(folder: Path, n: int) -> None:
    """``n`` small distinct pages, 100 per sub-folder."""
    for i in range(n):
        sub = folder / f"{i // 100:04d}"
        if i % 100 == 0:
            sub.mkdir(parents=True)
        text = PAGE.format(i=i, a=prose(i, 40), b=prose(i + 1_000_000, 30))
        (sub / f"story-{i}.html").write_text(text, encoding="utf-8")


def ingest_peak_rss(folder: Path, lake: Path) -> tuple[int, float, str]:
    """Peak RSS (bytes) and seconds of ``newsetl ingest folder`` in a fresh process."""
    cmd = [sys.executable, "-c", "from etl.cli import main; main()", "ingest", str(folder)]
    cmd += ["--lake", str(lake), "--base-url", "https://example.org/", "--workers", "1"]
    cmd += ["--start", "2026-01-05T10:00:00Z", "--end", "2026-01-05T11:00:00Z"]
    t0 = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, cwd="/")
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"ingest of {folder} failed ({proc.returncode}):\n{text[-2000:]}")
    wrote = next((line for line in text.splitlines() if line.startswith("wrote ")), "?")
    return usage.ru_maxrss * 1024, time.monotonic() - t0, wrote


def bench_rss(pages: int, ratio: float) -> bool:
    small = max(1, pages // 10)
    peaks = {}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        for n in (small, pages):
            folder = Path(tmp) / f"pages-{n}"
            t0 = time.monotonic()
            make_folder(folder, n)
            made = time.monotonic() - t0
            peak, secs, wrote = ingest_peak_rss(folder, Path(tmp) / f"lake-{n}")
            peaks[n] = peak
            print(
                f"ingest {n:>6} pages : peak RSS {peak / 2**20:6.1f} MiB, {secs:6.1f} s "
                f"({n / secs:.0f} pages/s; generated in {made:.1f} s) — {wrote}"
            )
    got = peaks[pages] / peaks[small]
    ok = got <= ratio
    print(f"RSS {pages} / {small} pages : {got:.3f} (target <= {ratio}) {'PASS' if ok else 'MISS'}")
    return ok


# -- 2. soak --------------------------------------------------------------------------------------


class GrowingSite:
    """A news site whose feed, at hour ``h``, lists hours ``h-3``..``h`` (``per_hour`` each)."""

    def __init__(self, site: Site, per_hour: int, window: int = 4) -> None:
        self.site, self.per_hour, self.window, self.hour = site, per_hour, window, 0
        site.routes["/robots.txt"] = Response(200, b"User-agent: *\nAllow: /\n", {}, "text/plain")
        site.routes["/feed.xml"] = self.feed
        site.default = self.article

    def path(self, hour: int, k: int) -> str:
        return f"/news/h{hour:03d}-{k}/"

    def feed(self, _req: SiteRequest) -> Response:
        items = []
        for h in range(max(0, self.hour - self.window + 1), self.hour + 1):
            for k in range(self.per_hour):
                when = T0 + timedelta(hours=h, minutes=5 + 10 * k)
                link = self.site.url(self.path(h, k))
                items.append(
                    f"<item><title>h{h} {k}</title><link>{link}</link><guid>{link}</guid>"
                    f"<pubDate>{format_datetime(when)}</pubDate></item>"
                )
        body = (
            "<?xml version='1.0' encoding='UTF-8'?><rss version='2.0'><channel>"
            f"<title>Growing</title><link>{self.site.base}/</link><description>d</description>"
            + "".join(reversed(items))
            + "</channel></rss>"
        )
        return Response(200, body.encode(), content_type="application/rss+xml")

    def article(self, req: SiteRequest) -> Response:
        if not req.path.startswith("/news/h"):
            return Response(404, b"not found")
        seed = abs(hash(req.path)) % 10**9
        html = PAGE.format(i=req.path, a=prose(seed, 80), b=prose(seed + 1, 60))
        return Response(200, html.encode(), content_type="text/html; charset=utf-8")


def bench_soak(hours: int, per_hour: int) -> bool:
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp, Site() as site:
        grow = GrowingSite(site, per_hour)
        src = Path(tmp) / "sources.yaml"
        data: dict[str, Any] = {
            "allow_private_addresses": True,
            "fetch": {"backoff_base_s": 0.01, "backoff_max_s": 0.05},
            "sources": [
                {
                    "id": "growing",
                    "kind": "rss",
                    "url": site.url("/feed.xml"),
                    "per_host_delay_s": 0,
                }
            ],
        }
        src.write_text(yaml.safe_dump(data), encoding="utf-8")
        settings = Settings(lake=str(Path(tmp) / "lake"), sources=src)
        t0 = time.monotonic()
        refetched = 0
        for h in range(hours):
            grow.hour = h
            n = len(site.requests())
            start = T0 + timedelta(hours=h)
            out = run_interval(Run.open(settings, Interval(start, start + timedelta(hours=1))))
            asked = [r.path for r in site.requests()[n:] if r.path.startswith("/news/")]
            mine = {grow.path(h, k) for k in range(per_hour)}
            refetched += sum(1 for p in asked if p not in mine)
            if out["status"] != "complete" or sorted(asked) != sorted(mine):
                ok = False
                print(f"hour {h}: status {out['status']}, asked {sorted(asked)}")
        secs = time.monotonic() - t0
        counts = Counter(r.path for r in site.requests() if r.path.startswith("/news/"))
        table = read_articles(Run.open(settings, Interval(T0, T0 + timedelta(hours=1))).lake)
        ids = table.column("article_id").to_pylist()
        urls = {str(u).removeprefix(site.base) for u in table.column("url").to_pylist()}
    expected = {grow.path(h, k) for h in range(hours) for k in range(per_hour)}
    once = len(ids) == len(set(ids)) == len(expected) and urls == expected
    asked_once = set(counts) == expected and set(counts.values()) == {1}
    print(
        f"soak {hours} hourly intervals : {len(expected)} articles listed ({per_hour}/hour, "
        f"each in {grow.window} hours' feeds), {len(ids)} rows, {len(set(ids))} distinct ids, "
        f"{sum(counts.values())} article requests, {refetched} re-fetches of an earlier hour; "
        f"{secs:.1f} s ({secs / hours:.2f} s/interval)"
    )
    ok = ok and once and asked_once and refetched == 0
    print(f"soak: each article exactly once, none fetched again: {'PASS' if ok else 'MISS'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=20_000)
    ap.add_argument("--max-rss-ratio", type=float, default=1.2)
    ap.add_argument("--hours", type=int, default=50)
    ap.add_argument("--per-hour", type=int, default=4)
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--skip-soak", action="store_true")
    args = ap.parse_args(argv)
    ok = True
    if not args.skip_soak:
        ok = bench_soak(args.hours, args.per_hour) and ok
    if not args.skip_rss:
        ok = bench_rss(args.pages, args.max_rss_ratio) and ok
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
