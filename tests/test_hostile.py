"""Hostile input, slow servers and bad configuration (issue 10): each reproduction as a test.

Real parts throughout: raw-socket servers on 127.0.0.1 that drip their headers, gzip bombs and
corrupt gzip files on disk, the real ``newsetl`` command line (in a subprocess where the exit
status and every printed line matter), a real process killed with SIGKILL.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from etl import workdir as workdir_mod
from etl.article.process import process_page, process_pages, read_page
from etl.cli import app
from etl.config import Settings, load_settings, load_sources
from etl.errors import ConfigError, ExtractError
from etl.fetch.deadline import http_client
from etl.fetch.fetcher import Fetcher
from etl.records import Failure, Page
from tests.support.drip import DripServer, quick, slow_headers
from tests.support.fetch_helpers import policy
from tests.support.sites import static_site

ROOT = Path(__file__).resolve().parents[1]
UA = "newsetl-test/0.1 (+https://example.org/newsetl-tests)"
BODY = "<p>" + "Le conseil municipal a voté le budget après un long débat public. " * 12 + "</p>"
ARTICLE = (
    "<html><head><meta charset='utf-8'><title>Élection à Montréal</title></head><body>"
    f"<article><h1>Élection à Montréal</h1>{BODY * 3}</article></body></html>"
).encode()


NO_ROBOTS = {"/robots.txt": quick("404 Not Found", b"")}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NEWSETL_LAKE", "NEWSETL_SOURCES", "NEWSETL_WORKERS"):
        monkeypatch.delenv(name, raising=False)


def newsetl(*args: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command line in its own process: exit status, stdout and stderr as a user sees."""
    cmd = [sys.executable, "-c", "from etl.cli import main; main()", *map(str, args)]
    full = {**os.environ, **(env or {})}
    # cwd "/": the etl package comes from the environment, never from the current folder
    return subprocess.run(
        cmd, capture_output=True, text=True, env=full, timeout=300, check=False, cwd="/"
    )


def sources_file(tmp_path: Path, entries: list[dict[str, Any]], **top: Any) -> Path:
    data = {"allow_private_addresses": True, "user_agent": UA, **top, "sources": entries}
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


# --- hang: one deadline covers connect, headers and body -------------------------------------


def test_dripped_headers_hit_the_request_deadline() -> None:
    # ~1,300 header bytes at 0.1 s each: every read returns within the 30 s read timeout, so
    # only a deadline over the whole request stops it (the old code waited ~130 s, then got 200)
    with DripServer(slow_headers(), interval_s=0.1, fast=NO_ROBOTS) as srv, http_client() as client:
        p = policy(total_timeout_s=1.0, read_timeout_s=30.0, max_attempts=1)
        res = Fetcher(client, p).fetch_document(srv.base + "/a", source_id=None, purpose="feed")
    assert res.page is None
    assert res.error is not None and res.error.kind == "timeout"
    assert "deadline" in res.error.message
    assert res.log.status is None


def test_a_run_level_deadline_bounds_every_request() -> None:
    import time

    with DripServer(slow_headers(), interval_s=0.1, fast=NO_ROBOTS) as srv, http_client() as client:
        fetcher = Fetcher(client, policy(total_timeout_s=600.0, max_attempts=1))
        fetcher.run_deadline = time.monotonic() + 1.0  # what fetch.run_deadline_s sets
        res = fetcher.fetch_document(srv.base + "/a", source_id=None, purpose="feed")
    assert res.error is not None and res.error.kind == "timeout" and res.error.transient
    assert "run deadline" in res.error.message


def test_newsetl_run_against_a_header_dripping_server_finishes(tmp_path: Path) -> None:
    fast = {"/robots.txt": quick("404 Not Found", b"")}
    with DripServer(slow_headers(), interval_s=0.1, fast=fast) as srv:
        (tmp_path / "urls.txt").write_text(srv.base + "/story\n", encoding="utf-8")
        src = sources_file(
            tmp_path,
            [{"id": "drip", "kind": "urls", "path": str(tmp_path / "urls.txt")}],
            fetch={"total_timeout_s": 2, "read_timeout_s": 30, "max_attempts": 1},
        )
        lake = tmp_path / "lake"
        result = CliRunner().invoke(app, ["run", "--sources", str(src), "--lake", str(lake)])
    # a timeout is transient: the run finishes, the interval is incomplete with the URL pending
    assert result.exit_code == 1, result.output
    assert "1 fetches failed" in result.stdout and "INCOMPLETE" in result.output
    from etl.lake.query import run_query

    _, rows = run_query(str(lake), "SELECT url, error_class FROM fetch_log WHERE purpose='article'")
    assert rows == [(srv.base + "/story", "timeout")]


# --- memory: .html.gz inflated in a stream, capped as it goes --------------------------------


def _bomb(path: Path, inflated: int) -> Path:
    z = zlib.compressobj(9, wbits=31)
    block = b"\0" * (1 << 20)
    with path.open("wb") as fh:
        fh.write(z.compress(b"<html><body>"))
        for _ in range(inflated >> 20):
            fh.write(z.compress(block))
        fh.write(z.flush())
    return path


def test_a_gzip_bomb_is_a_too_large_row_without_inflating_it(tmp_path: Path) -> None:
    bomb = _bomb(tmp_path / "bomb.html.gz", 256 << 20)  # ~250 KB on disk, 256 MiB inflated
    settings = Settings()
    cap = settings.extract.max_page_bytes
    tracemalloc.start()
    try:
        results = list(process_pages([bomb], settings))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    [row] = results
    assert isinstance(row, Failure) and row.kind == "too-large"
    assert str(bomb) in row.error
    assert peak < 3 * cap  # never the whole 256 MiB (the old code allocated all of it)


def _ingest_peak(tmp_path: Path, n: int) -> float:
    """Traced peak (bytes) of ``newsetl ingest`` over ``n`` pages of ~400 KB (in this process)."""
    from tests.support.article_factory import prose

    folder = tmp_path / f"pages{n}"
    folder.mkdir()
    junk = "<!-- " + "x" * 400_000 + " -->"  # page weight that is not article text
    for s in range(n):
        (folder / f"p{s}.html").write_text(
            f"<html><head><title>T{s}</title>{junk}</head><body><article><h1>T{s}</h1>"
            f"<p>{prose(s, 300)}</p></article></body></html>",
            encoding="utf-8",
        )
    args = ["ingest", str(folder), "--lake", str(tmp_path / f"lake{n}")]
    args += ["--base-url", "https://example.org/", "--start", "2026-01-05T10:00:00Z"]
    tracemalloc.start()
    try:
        result = CliRunner().invoke(app, args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    return peak


def test_ingest_memory_does_not_grow_with_the_folder(tmp_path: Path) -> None:
    from etl.article.process import warm_up

    warm_up()  # the language model loads once, outside the measurement
    _ingest_peak(tmp_path, 2)
    small, large = _ingest_peak(tmp_path, 10), _ingest_peak(tmp_path, 40)
    # 30 more pages are 12 MB of page bytes: the old ingest held them all (+12 MB)
    assert large - small < 3_000_000, (small, large)


def test_extract_and_ingest_report_corrupt_gzip_as_unreadable(tmp_path: Path) -> None:
    folder = tmp_path / "pages"
    folder.mkdir()
    (folder / "good.html").write_bytes(ARTICLE)
    data = bytearray(gzip.compress(ARTICLE))
    data[len(data) // 2 : len(data) // 2 + 8] = b"\xff" * 8  # corrupt compressed data
    (folder / "corrupt.html.gz").write_bytes(bytes(data))
    (folder / "truncated.html.gz").write_bytes(gzip.compress(ARTICLE)[:-12])
    (folder / "notgzip.html.gz").write_bytes(b"plain text, not gzip")

    out = newsetl("extract", folder)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    rows = {r["id"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert rows["good"].get("error") is None
    for name in ("corrupt", "truncated", "notgzip"):
        assert rows[name]["error_kind"] == "unreadable", rows[name]
        assert f"{name}.html.gz" in rows[name]["error"]

    lake = tmp_path / "lake"
    out = newsetl("ingest", folder, "--lake", lake, "--base-url", "https://example.org/")
    assert out.returncode == 1, out.stderr  # some pages failed; the good one is published
    assert "Traceback" not in out.stderr
    from etl.lake.query import run_query

    _, arts = run_query(str(lake), "SELECT url FROM articles")
    assert arts == [("https://example.org/good.html",)]
    _, log = run_query(str(lake), "SELECT url, error_class FROM fetch_log ORDER BY url")
    assert [k for _, k in log] == ["unreadable"] * 3


def test_read_page_caps_plain_files_and_reads_multi_member_gzip(tmp_path: Path) -> None:
    big = tmp_path / "big.html"
    big.write_bytes(b"<p>" + b"x" * 5000)
    with pytest.raises(ExtractError) as exc:
        read_page(big, max_bytes=1024)
    assert exc.value.kind == "too-large"
    two = tmp_path / "two.html.gz"
    two.write_bytes(gzip.compress(b"<html>") + gzip.compress(b"</html>"))
    assert read_page(two).body == b"<html></html>"  # as gzip.decompress reads it


# --- mojibake: decode as declared, replace only the bad bytes ---------------------------------


def test_one_invalid_byte_in_a_utf8_page_is_replaced_not_guessed(tmp_path: Path) -> None:
    page = tmp_path / "montreal.html"
    page.write_bytes(ARTICLE.replace("voté".encode(), b"vot\xff", 1))
    out = newsetl("extract", page)
    assert out.returncode == 0, out.stderr
    [row] = map(json.loads, out.stdout.splitlines())
    assert row["title"] == "Élection à Montréal"
    assert "après un long débat" in row["text"]
    assert row["decode_errors"] == 1


# --- bad input: one-line errors, exit 2, before any fetch -------------------------------------


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("not-utf8", "not UTF-8"),
        ("folder", "is a folder"),
        ("port", "invalid port"),
        ("ipv6", "IPv6"),
        ("empty", "`sources:` is empty"),
        ("userinfo", "credentials"),
    ],
)
def test_bad_sources_are_one_line_errors_before_any_fetch(
    tmp_path: Path, case: str, expect: str
) -> None:
    with DripServer(quick("200 OK", b"")) as srv:
        url = f"{srv.base}/feed.xml"
        entry = {"id": "s", "kind": "rss", "url": url}
        src = tmp_path / "sources.yaml"
        if case == "not-utf8":
            src.write_bytes(yaml.safe_dump({"sources": [entry]}).encode() + b"# caf\xe9\n")
        elif case == "folder":
            src.mkdir()
        else:
            urls = {
                "port": "http://127.0.0.1:99999/feed.xml",
                "ipv6": "http://[::1/feed.xml",
                "userinfo": url.replace("http://", "http://alice:hunter2-src@"),
            }
            entries = [] if case == "empty" else [{**entry, "url": urls[case]}]
            src = sources_file(tmp_path, entries)
        args = ["run", "--sources", str(src), "--lake", str(tmp_path / "lake")]
        out = CliRunner().invoke(app, args)
        assert srv.connections == 0  # validated before anything was fetched
    assert out.exit_code == 2, out.output
    assert isinstance(out.exception, SystemExit)  # no traceback
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expect in lines[0], out.stderr
    assert "hunter2" not in out.output
    assert not (tmp_path / "lake").exists()


def test_a_lake_path_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake.write_text("not a folder")
    (tmp_path / "p.html").write_bytes(ARTICLE)
    for args in (("query", "SELECT 1", "--lake", lake), ("ingest", tmp_path, "--lake", lake)):
        out = newsetl(*args)
        assert out.returncode == 2, out.stderr
        assert "Traceback" not in out.stderr
        assert f"lake {lake}: is a file, not a folder" in out.stderr
        assert ".tmp" not in out.stderr


def test_credentials_in_the_lake_endpoint_are_refused_and_never_echoed(tmp_path: Path) -> None:
    env = {"AWS_ENDPOINT_URL": "http://bob:hunter2-ep@127.0.0.1:9"}
    out = newsetl("query", "SELECT 1", "--lake", "s3://bucket/x", env=env)
    assert out.returncode == 2
    assert "credentials" in out.stderr and "***@" in out.stderr
    assert "hunter2" not in out.stdout + out.stderr
    with pytest.raises(ConfigError) as exc:
        load_settings(env, lake="s3://bucket/x")
    assert "hunter2" not in str(exc.value)


def test_listed_urls_and_redirects_with_credentials_are_never_fetched(tmp_path: Path) -> None:
    from tests.support.sites import Response, Site

    with Site() as site:
        target = site.url("/x").replace("http://", "http://carol:hunter2-red@")
        site.routes["/moved"] = Response.redirect(target)
        site.routes["/x"] = Response(200, ARTICLE)
        listed = site.url("/x").replace("http://", "http://dave:hunter2-list@")
        (tmp_path / "urls.txt").write_text(f"{listed}\n{site.url('/moved')}\n")
        src = sources_file(
            tmp_path, [{"id": "u", "kind": "urls", "path": str(tmp_path / "urls.txt")}]
        )
        out = newsetl("run", "--sources", src, "--lake", tmp_path / "lake")
        assert out.returncode == 0, out.stderr
        assert not any(r.header("authorization") for r in site.requests())
        assert [r.path for r in site.requests() if r.path == "/x"] == []
    assert "hunter2" not in out.stdout
    for line in out.stderr.splitlines():  # our messages: the secrets redacted
        assert "hunter2" not in line, line
    from etl.lake.query import run_query

    _, rows = run_query(str(tmp_path / "lake"), "SELECT url, error, final_url FROM fetch_log")
    assert rows and not any("hunter2" in str(v) for row in rows for v in row)


# --- silence: say something ------------------------------------------------------------------


def test_a_warc_glob_that_matches_nothing_is_a_warning(tmp_path: Path) -> None:
    src = sources_file(
        tmp_path, [{"id": "w", "kind": "warc", "path": str(tmp_path / "none" / "*.warc.gz")}]
    )
    out = newsetl("run", "--sources", src, "--lake", tmp_path / "lake")
    assert out.returncode == 0, out.stderr
    assert "matches no WARC file" in out.stderr


def test_query_on_a_missing_lake_warns(tmp_path: Path) -> None:
    out = newsetl("query", "SELECT count(*) AS n FROM articles", "--lake", tmp_path / "nope")
    assert out.returncode == 0
    assert "does not exist" in out.stderr
    assert out.stdout.splitlines() == ["n", "0"]


# --- small ones --------------------------------------------------------------------------------


def test_newsetl_workers_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import etl.article

    seen: list[int] = []

    def spy(items: Any, settings: Settings, *, workers: int = 1, finish: Any = None) -> Any:
        seen.append(workers)
        return iter(())

    (tmp_path / "p.html").write_bytes(ARTICLE)
    monkeypatch.setattr(etl.article, "process_pages", spy)  # the command imports it
    monkeypatch.setenv("NEWSETL_WORKERS", "3")
    CliRunner().invoke(app, ["extract", str(tmp_path / "p.html")])
    CliRunner().invoke(app, ["extract", "--workers", "2", str(tmp_path / "p.html")])
    assert seen == [3, 2]  # the variable when no flag is given; the flag over it


def test_nesting_too_deep_says_so() -> None:
    deep = b"<html><body>" + b"<div>" * 400 + ARTICLE + b"</div>" * 400 + b"</body></html>"
    with pytest.raises(ExtractError) as exc:
        process_page(Page(id="d", body=deep, url="https://example.org/d"), Settings())
    assert exc.value.kind == "too-deep"
    assert "nesting too deep" in str(exc.value)


def test_scratch_folders_of_a_killed_process_are_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    code = (
        "import os, signal, tempfile; tempfile.tempdir = None\n"
        "from etl.workdir import workdir\n"
        "with workdir('fetch') as d:\n"
        "    (d / 'part.warc.gz').write_bytes(b'x' * 1000)\n"
        "    print(d, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    cmd = [sys.executable, "-c", code]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL
    left = Path(proc.stdout.strip())
    assert left.is_dir() and left.parent == tmp_path / "newsetl-work"  # what a kill leaves
    mine = left.parent / f"{workdir_mod._host()}-{os.getpid()}-live-x"
    mine.mkdir()  # a live process's folder: kept
    assert workdir_mod.sweep(left.parent) == [left]
    assert not left.exists() and mine.exists()


def test_sources_file_validation_reports_every_url_problem_without_the_secret(
    tmp_path: Path,
) -> None:
    src = sources_file(
        tmp_path, [{"id": "a", "kind": "rss", "url": "https://eve:hunter2@example.org/feed"}]
    )
    with pytest.raises(ConfigError) as exc:
        load_sources(src)
    assert "hunter2" not in str(exc.value) and "***@example.org" in str(exc.value)


def test_a_run_onto_s3_leaves_its_keys_nowhere(s3_server: Any, tmp_path: Path) -> None:
    """Every line printed or logged and every byte of every object the run wrote (WARC members
    inflated) is searched for the lake's access key and secret: none is there."""

    key_id, secret = "AKIDKNOWNKEY1234567", "known-secret-Zq8xW2v"
    bucket = s3_server.new_bucket()
    env = {
        "AWS_ENDPOINT_URL": s3_server.endpoint,
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "NEWSETL_LAKE": f"s3://{bucket}/lake",
    }
    with static_site(ROOT / "seeds" / "site") as site:
        src = sources_file(
            tmp_path,
            [
                {
                    "id": "feed",
                    "kind": "rss",
                    "url": f"{site.base}/feed.xml",
                    "per_host_delay_s": 0,
                },
            ],
        )
        span = ("--start", "2022-05-14T09:00:00Z", "--end", "2022-05-14T10:00:00Z")
        out = newsetl("run", "--sources", src, *span, env={**env, "PYTHONWARNINGS": "always"})
    assert "Traceback" not in out.stderr
    assert out.returncode == 0, out.stderr
    client = s3_server.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert any(k.endswith(".warc.gz") for k in keys) and any("/_runs/" in k for k in keys)
    for key in keys:
        data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        blobs = [data]
        if key.endswith(".gz"):
            blobs.append(gzip.decompress(data))  # every member of the WARC
        for blob in blobs:
            for needle in (key_id, secret):
                assert needle.encode() not in blob, (key, needle)
    for needle in (key_id, secret):
        assert needle not in out.stdout + out.stderr
