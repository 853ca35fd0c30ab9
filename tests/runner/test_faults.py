"""Faults with real processes (issue 10): the S3 endpoint killed in the middle of a publish and
restarted; the disk filling up while a run stages its files; a site answering 503 for a minute.

The S3 server is moto in its own process behind :mod:`s3_proxy`, a relay process that SIGKILLs
itself when the publish sends a chosen request (moto keeps objects in memory, so the relay is
the process killed and restarted; what was written before the kill stays, as on real S3). The
full disk is a 64 KiB tmpfs mounted for the test (root only; skipped where ``mount`` fails).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from etl.lake.manifest import read_manifest
from etl.lake.opener import open_lake
from etl.lake.tables import read_articles
from etl.records import Interval
from etl.runner.interval import run_interval
from tests.support.article_factory import prose
from tests.support.runner_helpers import (
    HOUR9,
    article_html,
    articles,
    fetch_log,
    open_run,
    paragraphs,
    rss,
    sources_file,
)
from tests.support.s3_server import free_port
from tests.support.sites import Response, Site, SiteRequest, static_site

ROOT = Path(__file__).resolve().parents[2]
START, END = "2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z"
INTERVAL = Interval(datetime(2026, 1, 5, 10, tzinfo=UTC), datetime(2026, 1, 5, 11, tzinfo=UTC))


def newsetl(*args: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from etl.cli import main; main()", *map(str, args)]
    full = {**os.environ, **(env or {})}
    # cwd "/": the etl package comes from the environment, never from the current folder
    return subprocess.run(
        cmd, capture_output=True, text=True, env=full, timeout=300, check=False, cwd="/"
    )


def pages(folder: Path, seeds: range, *, words: int = 300) -> Path:
    folder.mkdir(parents=True)
    for s in seeds:
        html = (
            f"<html><head><title>Story {s}</title></head><body><article><h1>Story {s}</h1>"
            f"<p>{prose(s, words)}</p></article></body></html>"
        )
        (folder / f"story-{s}.html").write_text(html, encoding="utf-8")
    return folder


class Relay:
    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target = target_port
        self.proc: subprocess.Popen[str] | None = None

    def start(self, pattern: str | None = None) -> Relay:
        args = [sys.executable, str(ROOT / "tests" / "support" / "s3_proxy.py"), str(self.port)]
        args += [str(self.target), *([pattern] if pattern else [])]
        for _ in range(50):  # the port may linger a moment after a kill
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
            assert self.proc.stdout is not None
            ready = self.proc.stdout.readline().strip() == "ready"
            self.proc.stdout.close()
            if ready:
                return self
            self.proc.wait()
            time.sleep(0.1)
        raise RuntimeError("relay did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()


@pytest.fixture
def relay(s3_server: Any) -> Iterator[Relay]:
    r = Relay(s3_server.port)
    yield r
    r.stop()


def _ids(lake: Any) -> set[str]:
    return {str(u) for u in read_articles(lake).column("url").to_pylist()}


@pytest.mark.parametrize("kill_at", ["/articles/", "/fetch_log/", "/_runs/"])
def test_s3_killed_mid_publish_leaves_old_or_new_and_a_rerun_completes(
    s3_server: Any, relay: Relay, tmp_path: Path, kill_at: str
) -> None:
    bucket = s3_server.new_bucket()
    uri = f"s3://{bucket}/lake"
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{relay.port}", "AWS_MAX_ATTEMPTS": "2"}
    base = "https://example.org/"
    old, new = pages(tmp_path / "old", range(1, 4)), pages(tmp_path / "new", range(11, 15))
    span = ("--start", START, "--end", END, "--base-url", base, "--lake", uri)

    relay.start()
    first = newsetl("ingest", old, *span, env=env)
    assert first.returncode == 0, first.stderr
    relay.stop()

    direct = open_lake(uri, endpoint_url=s3_server.endpoint)
    old_urls = _ids(direct)
    assert len(old_urls) == 3

    relay.start(f"PUT [^ ]*{kill_at}")  # the endpoint dies when publish sends this request
    killed = newsetl("ingest", new, *span, env=env)
    assert relay.proc is not None and relay.proc.wait() == -9  # it was killed mid-publish
    assert killed.returncode == 2, killed.stdout + killed.stderr
    assert "Traceback" not in killed.stderr
    urls = _ids(direct)
    assert urls == old_urls or (len(urls) == 4 and not urls & old_urls), urls  # never a mix

    relay.start()  # the endpoint is back: a rerun completes the interval
    again = newsetl("ingest", new, *span, env=env)
    assert again.returncode == 0, again.stderr
    urls = _ids(direct)
    assert len(urls) == 4 and not urls & old_urls
    manifest = read_manifest(direct, INTERVAL)
    assert manifest is not None and manifest["articles"] == 4


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_while_staging_is_a_clear_error_and_nothing_is_published(
    small_disk: Path, tmp_path: Path
) -> None:
    folder = pages(tmp_path / "big", range(1, 7), words=12_000)  # ~170 KB of Parquet > 64 KiB
    lake = small_disk / "lake"
    span = ("--start", START, "--end", END, "--base-url", "https://example.org/")
    out = newsetl("ingest", folder, "--lake", lake, *span)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    [line] = [x for x in out.stderr.splitlines() if x.strip()]
    assert "No space left on device" in line and "write failed" in line
    files = [p for p in lake.rglob("*") if p.is_file()]
    assert files == []  # no article file, no manifest, no stray temporary file


def test_a_full_scratch_disk_while_a_run_stages_is_a_clear_error(
    small_disk: Path, tmp_path: Path
) -> None:
    import yaml

    lake = tmp_path / "lake"
    with static_site(ROOT / "seeds" / "site") as site:
        template = (ROOT / "seeds" / "sources.demo.yaml").read_text(encoding="utf-8")
        data = yaml.safe_load(template.replace("{{BASE}}", site.base))
        src = tmp_path / "sources.yaml"
        src.write_text(yaml.safe_dump(data), encoding="utf-8")
        out = newsetl("run", "--sources", src, "--lake", lake, env={"TMPDIR": str(small_disk)})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    [line] = [x for x in out.stderr.splitlines() if x.strip()]
    assert "No space left on device" in line and "nothing was published" in line
    assert not (lake / "_runs").exists() and not (lake / "articles").exists()


OUTAGE_S = 60.0  # the site answers 503 (Retry-After: 1) for this long after its first article hit


@pytest.mark.slow
def test_a_site_answering_503_for_a_minute_gets_bounded_retries_then_pending_then_completes(
    tmp_path: Path, site: Site
) -> None:
    """Within a run: max_attempts tries per URL, spaced by Retry-After; then the URLs are pending
    (the interval incomplete); a rerun during the outage is bounded the same way and asks for the
    pending URLs alone; a rerun after it completes the interval exactly, with no duplicates."""
    paths = [f"/news/story-{i}/" for i in range(3)]
    when = "Sat, 14 May 2022 09:30:00 +0000"
    down: dict[str, float] = {}

    def route(body: bytes) -> Any:
        def answer(_req: SiteRequest) -> Response:
            until = down.setdefault("until", time.monotonic() + OUTAGE_S)
            if time.monotonic() < until:
                return Response(503, b"overloaded", {"Retry-After": "1"}, "text/plain")
            return Response(200, body)

        return answer

    site.routes.update(
        {
            "/robots.txt": Response(200, b"User-agent: *\nAllow: /\n", content_type="text/plain"),
            "/feed.xml": rss(site.base, [(p, when) for p in paths]),
        }
    )
    for i, p in enumerate(paths):
        site.routes[p] = route(
            article_html(f"Story {i}", paragraphs(prose(i, 90), prose(50 + i, 90)))
        )
    entry = {"id": "gazette", "kind": "rss", "url": site.url("/feed.xml")}
    src = sources_file(tmp_path, entry, max_attempts=3, max_attempts_across_runs=5)
    tries = 3

    def hits(since: int) -> dict[str, list[SiteRequest]]:
        reqs = site.requests()[since:]
        return {p: [r for r in reqs if r.path == p] for p in paths}

    run = open_run(tmp_path, src)
    first = run_interval(run)
    assert time.monotonic() < down["until"]  # (the whole run fell within the outage)
    assert first["status"] == "incomplete"
    assert sorted(first["pending"]) == sorted(site.url(p) for p in paths)
    for p, reqs in hits(0).items():
        assert len(reqs) == tries, p  # bounded: max_attempts, then pending
        gaps = [b.arrived - a.arrived for a, b in itertools.pairwise(reqs)]
        assert all(g >= 0.99 for g in gaps), gaps  # Retry-After honoured
    assert articles(run) == []

    n = len(site.requests())
    second = run_interval(open_run(tmp_path, src))  # a rerun while the site is still down
    if time.monotonic() < down["until"]:
        assert second["status"] == "incomplete"
        assert all(len(reqs) == tries for reqs in hits(n).values())
    assert {r.path for r in site.requests()[n:]} <= set(paths)  # no re-listing, no robots

    time.sleep(max(0.0, down["until"] - time.monotonic()))  # the site recovers
    n = len(site.requests())
    third = run_interval(open_run(tmp_path, src))
    assert [len(reqs) for reqs in hits(n).values()] == [1, 1, 1]  # each pending URL once
    assert third["status"] == "complete" and third["pending"] == []
    rows = articles(run)
    assert sorted(r["url"] for r in rows) == sorted(site.url(p) for p in paths)
    assert len({r["article_id"] for r in rows}) == len(rows) == 3  # no duplicates
    log = [r for r in fetch_log(run, HOUR9) if r["purpose"] == "article"]
    assert sorted((r["url"], r["status"]) for r in log) == sorted((site.url(p), 200) for p in paths)
    total = sum(len(v) for v in hits(0).values())
    assert total <= len(paths) * (2 * tries + 1)  # the server saw a bounded number of requests
