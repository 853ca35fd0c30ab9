"""The run at its edges (issue 7): failing sources, attempt staging, the refetch switch, the
quality gate before publish. Real sites on 127.0.0.1, a lake in a tmp folder.

Each test reproduces what the old code did wrong (named in its docstring) and fails on it.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from etl.errors import QualityError
from etl.lake.layout import quarantine_prefix, raw_key
from etl.lake.manifest import read_manifest
from etl.lake.tables import write_table
from etl.runner.interval import run_interval
from etl.runner.rawzone import read_index
from etl.schema import fetch_log_schema
from tests.support.cli_helpers import newsetl
from tests.support.runner_helpers import (
    FERRY,
    HOUR9,
    LIBRARY,
    STORM,
    articles,
    fetch_log,
    html,
    open_run,
    record_at,
    rss,
    sources_file,
)
from tests.support.sites import Response, Site

WHEN = "Sat, 14 May 2022 09:30:00 +0000"
FERRY_PATH, LIBRARY_PATH = "/news/ferry-returns/", "/news/library-hours/"


def gazette(site: Site) -> None:
    site.routes.update(
        {
            "/robots.txt": Response(200, b"User-agent: *\nAllow: /\n", content_type="text/plain"),
            "/feed.xml": rss(site.base, [(FERRY_PATH, WHEN), (LIBRARY_PATH, WHEN)]),
            FERRY_PATH: html(FERRY),
            LIBRARY_PATH: html(LIBRARY),
        }
    )


# -- a failing source never sinks the rest --------------------------------------------------------


def test_failing_sources_do_not_sink_the_others(tmp_path: Path, site: Site) -> None:
    """Old code: the first source failing discovery raised out of ``newsetl run``: nothing was
    published for the others, staging stayed behind, the failure was only on stderr."""
    gazette(site)
    site.routes["/busy.xml"] = Response(503, b"busy", content_type="text/plain")
    site.routes["/loop.xml"] = Response.redirect(site.url("/loop.xml"))
    src = sources_file(
        tmp_path,
        {"id": "missing", "kind": "rss", "url": site.url("/missing.xml")},  # 404: terminal
        {"id": "loop", "kind": "rss", "url": site.url("/loop.xml")},  # redirect loop: terminal
        {"id": "busy", "kind": "rss", "url": site.url("/busy.xml")},  # 503: transient
        {"id": "gazette", "kind": "rss", "url": site.url("/feed.xml")},
        max_attempts=2,
    )
    lake = tmp_path / "lake"
    args: list[str | Path] = [
        "run",
        "--sources",
        src,
        "--lake",
        lake,
        "--start",
        "2022-05-14T09:00:00Z",
    ]

    result = newsetl(*args)

    assert result.exit_code == 1, result.output
    for name in ("missing", "loop", "busy"):
        assert f"source {name}: FAILED" in result.output
    assert "INCOMPLETE" in result.output and site.url("/busy.xml") in result.output
    run = open_run(tmp_path, src)
    assert sorted(r["url"] for r in articles(run)) == [site.url(FERRY_PATH), site.url(LIBRARY_PATH)]
    manifest = read_manifest(run.lake, HOUR9)
    assert manifest is not None and manifest["status"] == "incomplete"
    failed = {f["source"]: f for f in manifest["failed_sources"]}
    assert {k: v["transient"] for k, v in failed.items()} == {
        "missing": False,
        "loop": False,
        "busy": True,
    }
    assert "redirect" in failed["loop"]["error"]
    log = {(r["source_id"], r["purpose"]): r for r in fetch_log(run)}
    assert log["missing", "feed"]["error_class"] == "http-4xx"
    assert log["busy", "feed"]["error_class"] == "http-5xx"
    assert log["loop", "feed"]["error_class"] == "redirect-loop"
    assert run.lake.list("_staging/") == []

    # the busy feed answers now: a rerun discovers it again; the terminal failures are replayed
    site.routes["/busy.xml"] = rss(site.base, [("/news/storm/", WHEN)])
    site.routes["/news/storm/"] = html(STORM)
    n = len(site.requests())
    again = newsetl(*args)
    assert again.exit_code == 1  # terminal failures still name their sources
    asked = [r.path for r in site.requests()[n:]]
    assert "/missing.xml" not in asked and "/feed.xml" not in asked and "/loop.xml" not in asked
    assert "/busy.xml" in asked and "/news/storm/" in asked
    manifest = read_manifest(run.lake, HOUR9)
    assert manifest is not None and manifest["status"] == "complete"
    assert sorted(f["source"] for f in manifest["failed_sources"]) == ["loop", "missing"]
    assert len(articles(run)) == 3


# -- attempt-keyed staging -----------------------------------------------------------------------


def test_leftovers_of_a_crashed_attempt_never_reach_the_published_outputs(
    tmp_path: Path, site: Site
) -> None:
    """Old code: publish read every file under ``_staging/<interval>/fetch_log/``, whoever
    wrote it: a crashed run's rows were published with the next run's."""
    gazette(site)
    src = sources_file(tmp_path, {"id": "gazette", "kind": "rss", "url": site.url("/feed.xml")})
    run = open_run(tmp_path, src)
    planted = pa.Table.from_pylist(
        [{"url": "http://planted.example/x", "source_id": "gazette", "purpose": "extract",
          "error_class": "no-text", "attempts": 1, "dt": HOUR9.dt}],
        schema=fetch_log_schema(),
    )  # fmt: skip
    other = f"_staging/{HOUR9.id}/20220514T093000Z-crashed-0000"
    keys = [
        f"{other}/fetch_log/gazette-process.parquet",
        f"_staging/{HOUR9.id}/fetch_log/gazette-process.parquet",  # the old layout
    ]
    for key in keys:
        write_table(run.lake, key, planted)
    stale_rows = pq.read_table(io.BytesIO(_storm_rows(tmp_path, site)))
    run.lake.put_bytes(f"{other}/articles/gazette.parquet", _parquet(stale_rows))

    out = run_interval(run)

    assert out["attempt"] == run.attempt and other.rsplit("/", 1)[1] != run.attempt
    assert sorted(r["url"] for r in articles(run)) == [site.url(FERRY_PATH), site.url(LIBRARY_PATH)]
    assert not any("planted" in r["url"] for r in fetch_log(run))
    # the new holder of the interval lease removes a crashed attempt's staging
    assert not any(run.lake.exists(k) for k in keys)
    assert run.lake.list(f"_staging/{HOUR9.id}/{run.attempt}/") == []


def _storm_rows(tmp_path: Path, site: Site) -> bytes:
    """A real staged article file (the storm story) from a run in another lake."""
    other = Site({"/robots.txt": Response(404), "/feed.xml": Response(404)}).start()
    try:
        other.routes["/feed.xml"] = rss(other.base, [("/news/storm/", WHEN)])
        other.routes["/news/storm/"] = html(STORM)
        path = tmp_path / "other"
        path.mkdir()
        src = sources_file(path, {"id": "gazette", "kind": "rss", "url": other.url("/feed.xml")})
        run = open_run(path, src)
        run_interval(run)
        manifest = read_manifest(run.lake, HOUR9)
        assert manifest is not None
        return run.lake.get_bytes(manifest["shards"][0]["key"])
    finally:
        other.close()


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


# -- --refetch replaces the WARC and its index as one step -------------------------------------


class CrashingLake:
    """A lake that raises when the page index is about to be written (the switch)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_bytes(self, key: str, data: bytes) -> None:
        if key.endswith(".pages.jsonl"):
            raise RuntimeError(f"killed before writing {key}")
        self.inner.put_bytes(key, data)


def test_a_refetch_killed_before_the_index_leaves_the_archive_consistent(
    tmp_path: Path, site: Site
) -> None:
    """Old code: --refetch wrote the new WARC over the old key, then the index: killed in
    between, the old index's offsets pointed into the new file."""
    gazette(site)
    src = sources_file(tmp_path, {"id": "gazette", "kind": "rss", "url": site.url("/feed.xml")})
    run_interval(open_run(tmp_path, src))
    before = {r["url"]: r["text"] for r in articles(open_run(tmp_path, src))}
    site.routes[LIBRARY_PATH] = html(STORM)  # other bytes: other offsets in a new archive

    crashing = open_run(tmp_path, src, refetch=True)
    with pytest.raises(RuntimeError, match="killed before writing"):
        run_interval(replace(crashing, lake=CrashingLake(crashing.lake)))

    run = open_run(tmp_path, src)
    index = read_index(run.lake, "gazette", HOUR9)
    assert index is not None and index.warc == raw_key("gazette", HOUR9)  # still the old one
    for page in index.pages:  # every offset still reads the response it was written for
        got = record_at(run, page["raw_ref"])
        assert got.url == page["url"]
        assert (b"Library extends" if LIBRARY_PATH in got.url else b"Harbour ferry") in got.body
    out = run_interval(run)  # a replay: what the index names, consistently
    assert out["sources"][0]["mode"] == "replay"
    assert {r["url"]: r["text"] for r in articles(run)} == before

    again = run_interval(open_run(tmp_path, src, refetch=True))  # a refetch that completes
    assert again["sources"][0]["mode"] == "fetch"
    index = read_index(run.lake, "gazette", HOUR9)
    assert index is not None and index.warc != raw_key("gazette", HOUR9)
    stem = raw_key("gazette", HOUR9).removesuffix(".warc.gz")
    assert sorted(run.lake.list(stem)) == sorted(
        [index.warc, str(index.fetch_log), stem + ".pages.jsonl"]
    )  # the old archive and the crashed attempt's orphans are gone
    texts = {r["url"]: r["text"] for r in articles(run)}
    assert "Crews spent Wednesday" in texts[site.url(LIBRARY_PATH)]
    for r in articles(run):
        assert record_at(run, r["raw_ref"]).url == r["url"]


# -- quality before publishing ------------------------------------------------------------------


def test_a_run_failing_the_gate_publishes_nothing_and_quarantines_its_rows(
    tmp_path: Path, site: Site
) -> None:
    """Old code: the gate ran after publish: a failing run had already replaced the interval's
    articles by the time it failed."""
    gazette(site)
    entry = {"id": "gazette", "kind": "rss", "url": site.url("/feed.xml")}
    src = sources_file(tmp_path, entry)
    run = open_run(tmp_path, src)
    run_interval(run)
    published = _published(run)
    manifest = read_manifest(run.lake, HOUR9)
    assert manifest is not None and manifest["quality"]["articles"] == 2
    assert set(manifest["quality"]) >= {
        "empty_rate", "duplicate_rate", "with_title", "with_date", "with_author", "languages",
        "mean_words", "rule_hits", "doubtful", "doubtful_share",
    }  # fmt: skip
    rows = articles(run)
    doubtful = sum(1 for r in rows if (r.get("extraction") or {}).get("doubtful"))
    assert manifest["quality"]["doubtful"] == doubtful
    assert all(r.get("extraction") for r in rows)  # every row says how its body was chosen

    # thresholds come from sources.yaml; the page at one URL changed meanwhile
    data = yaml.safe_load(src.read_text(encoding="utf-8"))
    data["quality"] = {"min_words": 10_000, "max_empty_rate": 0.5}
    src.write_text(yaml.safe_dump(data), encoding="utf-8")
    site.routes[LIBRARY_PATH] = html(STORM)
    strict = open_run(tmp_path, src, refetch=True)
    assert strict.settings.quality.min_words == 10_000

    with pytest.raises(QualityError) as info:
        run_interval(strict)

    msg = str(info.value)
    assert "empty-text rate 100.0% > 50.0% (quality.max_empty_rate)" in msg and HOUR9.id in msg
    assert not info.value.transient
    assert _published(run) == published  # the interval as it was
    prefix = quarantine_prefix(HOUR9, strict.attempt)
    assert prefix in msg
    q = json.loads(run.lake.get_bytes(prefix + "manifest.json"))
    assert q["status"] == "quarantined" and q["quality"]["empty_rate"] == 1.0
    assert q["failed"] == ["empty-text rate 100.0% > 50.0% (quality.max_empty_rate)"]
    held = pq.read_table(io.BytesIO(run.lake.get_bytes(prefix + "articles.parquet")))
    assert held.num_rows == 2 and any(
        "storm" in t.lower() for t in cast("list[str]", held.column("text").to_pylist())
    )
    assert run.lake.list(f"_staging/{HOUR9.id}/{strict.attempt}/") == []
    assert "_quarantine" not in json.dumps(run.lake.list("articles/"))

    # the CLI says so: exit 2, the figure and the threshold
    args: list[str | Path] = [
        "--sources",
        src,
        "--lake",
        run.lake.uri,
        "--start",
        "2022-05-14T09:00:00Z",
    ]
    result = newsetl("run", *args)
    assert result.exit_code == 2 and "quality.max_empty_rate" in result.output


def _published(run: Any) -> dict[str, bytes]:
    """Every object a reader of the interval sees."""
    keys = [k for k in run.lake.list() if k.startswith(("articles/", "fetch_log/", "_runs/"))]
    return {k: run.lake.get_bytes(k) for k in keys}
