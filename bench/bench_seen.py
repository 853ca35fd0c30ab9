"""Lake requests per interval, and how many of them the seen index costs.

A lake holding ``--days`` days of hourly intervals before the measured one (``--rows`` articles
each, as the schedule leaves it), then one interval of ``--sources`` feed sources (a local site
on 127.0.0.1, ``--articles`` new articles per feed) run two ways: as ``newsetl run`` does (one
process, :func:`etl.runner.run_interval`) and as the DAG does (a fresh :class:`etl.runner.Run`
per task: plan, discover per source, fetch, process, publish, validate; each holding the
interval lease like ``dags/news_ingest.py``). On a moto S3 server (its own process, behind
:class:`tests.support.counting_proxy.CountingProxy`: every request counted) and on a local
lake (lake calls counted). Prints the requests by kind and the seen-index share.

    uv run python bench/bench_seen.py --sources 20 --days 7
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from etl.config import Settings  # noqa: E402
from etl.lake import (  # noqa: E402
    LakeSettings,
    interval_lease,
    new_attempt,
    new_holder,
    open_lake,
    publish_interval,
)
from etl.records import Interval  # noqa: E402
from etl.runner import (  # noqa: E402
    Run,
    discover_step,
    fetch_step,
    process_step,
    publish_step,
    run_interval,
    split_items,
    validate_step,
)

SEEN_PREFIXES = ("_index/", "_compact/", "articles/", "_staging/", "_seen")


def hour(day: datetime, h: int) -> Interval:
    start = day + timedelta(hours=h)
    return Interval(start, start + timedelta(hours=1))


def fill(root: Path, interval: Interval, days: int, rows: int) -> None:
    """``days`` days of hourly intervals before ``interval``, ``rows`` articles each."""
    from tests.support.article_factory import batches, make_article, prose

    lake = open_lake(str(root))
    day0 = interval.start.replace(hour=0)
    for d in range(days, -1, -1):
        day = day0 - timedelta(days=d)
        for h in range(24):
            iv = hour(day, h)
            if iv.start >= interval.start:
                break
            arts = [
                make_article(f"https://old.example.com/{iv.id}/{i}", text=prose(i, 60))
                for i in range(rows)
            ]
            publish_interval(lake, iv, batches(arts, dt=iv.dt))


def site_routes(n_sources: int, n_articles: int, interval: Interval) -> dict[str, Any]:
    """A feed per source (``/feed-<s>.xml``, its items dated in the interval) and its pages."""
    from tests.support.runner_helpers import FERRY, html, rss

    when = (interval.start + timedelta(minutes=5)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    routes: dict[str, Any] = {}
    for s in range(n_sources):
        paths = [f"/s{s}/story-{a}" for a in range(n_articles)]
        routes[f"/feed-{s}.xml"] = lambda req, paths=paths: rss(
            f"http://{req.header('host')}", [(p, when) for p in paths]
        )
        for a, p in enumerate(paths):
            body = FERRY.replace(b"Harbour ferry", f"Story {s}-{a} ferry".encode())
            routes[p] = html(body.replace(b"three-month", f"{s * 1000 + a}-day".encode()))
    return routes


def sources_yaml(tmp: Path, base: str, n_sources: int) -> Path:
    from tests.support.runner_helpers import sources_file

    entries = [
        {"id": f"src{s}", "kind": "rss", "url": f"{base}/feed-{s}.xml", "lookback_hours": 2}
        for s in range(n_sources)
    ]
    return sources_file(tmp, *entries)


def dag_like(settings: Settings, interval: Interval) -> dict[str, Any]:
    """The DAG's tasks in a row, each with a fresh Run (a fresh process's view of the lake)."""
    import etl.runner

    plan_step = getattr(etl.runner, "plan_step", etl.runner.plan)  # before: plan wrote nothing

    attempt, holder = new_attempt("bench"), new_holder("bench")

    def task(fn: Callable[..., Any], *args: Any, last: bool = False) -> Any:
        fresh_process()  # each task is a process of its own: nothing cached
        run = Run.open(settings, interval, attempt=attempt)
        lease_settings = run.settings.lease
        with interval_lease(run.lake, interval.id, holder=holder, settings=lease_settings,
                            attempt=attempt, release=False) as lease:  # fmt: skip
            result = fn(run, *args)
        if last:
            lease.release()
        return result

    sources = task(plan_step)
    found = [task(discover_step, s) for s in sources]
    fetched = [task(fetch_step, i) for i in split_items(found)]
    processed = [task(process_step, f) for f in fetched]
    published: dict[str, Any] = task(publish_step, processed, last=True)
    validate_step(Run.open(settings, interval, attempt=attempt))
    return published


def fresh_process() -> None:
    import etl.lake

    if "clear_seen_cache" in etl.lake.__all__:  # before etl.lake.seen nothing was cached
        etl.lake.clear_seen_cache()


def classify(method: str, path: str, prefix: str) -> str:
    query = parse_qs(urlsplit(path).query)
    key = unquote(urlsplit(path).path)
    if method == "GET" and "list-type" in query:
        sub = query.get("prefix", [""])[0].removeprefix(prefix)
        return f"LIST {sub.split('/', 1)[0]}/"
    parts = key.split("/", 3)  # '', bucket, prefix, key
    sub = parts[3] if len(parts) > 3 else ""
    top = sub.split("/", 1)[0] + ("/" if "/" in sub else "")
    if sub.endswith("/seen.parquet"):
        top = "seen snapshot"
    return f"{method} {top}"


SEEN_KINDS = ("LIST articles/", "LIST _index/", "LIST _compact/", "GET _index/", "GET _compact/",
              "GET seen snapshot", "PUT seen snapshot")  # fmt: skip


def report(label: str, kinds: Counter[str], articles: int, down: int | None = None) -> int:
    """Print one run's requests by kind; returns how many were the seen index's."""
    total = sum(kinds.values())
    seen = sum(kinds[k] for k in SEEN_KINDS)
    detail = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
    sent = f", {down / 2**20:.1f} MiB from the server" if down is not None else ""
    print(f"  {label}: {total} requests, seen index {seen} ({seen / max(total, 1):.0%}){sent}; "
          f"{articles} articles published\n    {detail}")  # fmt: skip
    return seen


@contextmanager
def counted_local() -> Iterator[Counter[str]]:
    """Count LocalLake calls by kind (class-level patch; restored after)."""
    LocalLake = type(open_lake(tempfile.gettempdir()))

    kinds: Counter[str] = Counter()
    names = ("list", "get_bytes", "put_bytes", "put_file", "delete", "exists", "get_tagged",
             "put_if_absent", "put_if_match", "delete_if_match", "list_modified",
             "list_versions")  # fmt: skip
    saved = {n: getattr(LocalLake, n) for n in names if hasattr(LocalLake, n)}

    depth = [0]

    def wrap(name: str, fn: Any) -> Any:
        def call(self: Any, *args: Any, **kw: Any) -> Any:
            if depth[0]:  # a call inside another (list_versions lists): counted once
                return fn(self, *args, **kw)
            arg = str(args[0]) if args and isinstance(args[0], str) else ""
            top = arg.split("/", 1)[0] + "/" if "/" in arg else arg
            if arg.endswith("/seen.parquet"):
                top = "seen snapshot"
            verb = {"get_bytes": "GET", "put_bytes": "PUT", "put_file": "PUT"}.get(name, name)
            if name in ("list", "list_versions"):
                verb = "LIST"
            kinds[f"{verb} {top}"] += 1
            depth[0] += 1
            try:
                return fn(self, *args, **kw)
            finally:
                depth[0] -= 1

        return call

    for n, fn in saved.items():
        setattr(LocalLake, n, wrap(n, fn))
    try:
        yield kinds
    finally:
        for n, fn in saved.items():
            setattr(LocalLake, n, fn)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=20)
    ap.add_argument("--articles", type=int, default=2, help="new articles per source")
    ap.add_argument("--days", type=int, default=7, help="days of history before the interval")
    ap.add_argument("--rows", type=int, default=3, help="articles per earlier interval")
    ap.add_argument("--no-s3", action="store_true")
    args = ap.parse_args()
    from tests.support.counting_proxy import CountingProxy
    from tests.support.s3_server import AWS_TEST_ENV, CREDENTIALS, REGION, MotoServer
    from tests.support.sites import Site

    os.environ.update(AWS_TEST_ENV)
    day = datetime(2026, 11, 25, tzinfo=UTC)
    interval = hour(day, 13)
    tmp = Path(tempfile.mkdtemp(prefix="bench-seen-"))
    try:
        fill(tmp / "history", interval, args.days, args.rows)
        n_files = len(open_lake(str(tmp / "history")).list("_index/"))
        print(f"history: {args.days} days + today's hours before {interval.id}, "
              f"{n_files} hourly intervals of {args.rows} rows; {args.sources} sources x "
              f"{args.articles} new articles")  # fmt: skip
        site = Site(site_routes(args.sources, args.articles, interval)).start()
        sources = sources_yaml(tmp, site.base, args.sources)
        results: dict[str, int] = {}  # seen-index requests per run
        for mode in ("run", "dag"):
            root = tmp / f"local-{mode}"
            shutil.copytree(tmp / "history", root)
            settings = Settings(lake=str(root), sources=sources)
            with counted_local() as kinds:
                out = run_mode(mode, settings, interval)
            results[f"local {mode}"] = report(f"local lake, {mode}", kinds, out["articles"])
        if not args.no_s3:
            with MotoServer() as server, CountingProxy(server.port) as proxy:
                for mode in ("run", "dag"):
                    bucket = server.new_bucket()
                    upload(server.client(), bucket, tmp / "history")

                    def s3(endpoint: str, bucket: str = bucket) -> LakeSettings:
                        return LakeSettings(uri=f"s3://{bucket}/news", endpoint_url=endpoint,
                                            region=REGION, path_style=True,
                                            access_key_id=CREDENTIALS["aws_access_key_id"],
                                            secret_access_key=CREDENTIALS["aws_secret_access_key"])  # fmt: skip

                    ls = s3(proxy.endpoint)
                    settings = Settings(lake=ls.uri, sources=sources, lake_settings=ls)
                    proxy.reset()
                    out = run_mode(mode, settings, interval)
                    kinds = Counter(classify(m, p, "news/") for m, p in proxy.requests)
                    results[f"s3 {mode}"] = report(
                        f"S3 lake, {mode}", kinds, out["articles"], proxy.bytes_down
                    )
        site.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # once per interval: each key-index file read once (n_files GETs), plus a snapshot GET per
    # task and a few LISTs per read; before, every source's discover read every file again
    limit = n_files + 2 * args.sources + 40
    missed = {k: v for k, v in results.items() if v > limit}
    verdict = "PASS" if not missed else f"MISS {missed}"
    print(f"seen-index requests per interval <= {limit} (files + 2 x sources + 40): {verdict}")
    return 1 if missed else 0


def run_mode(mode: str, settings: Settings, interval: Interval) -> dict[str, Any]:
    fresh_process()
    if mode == "run":
        result: dict[str, Any] = dict(run_interval(Run.open(settings, interval)))
        return result
    return dag_like(settings, interval)


def upload(client: Any, bucket: str, root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            key = "news/" + path.relative_to(root).as_posix()
            client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())


if __name__ == "__main__":
    sys.exit(main())
