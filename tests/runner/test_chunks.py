"""Work that divides (etl/runner/chunks.py): chunk plans, chunked WARC and listed sources,
politeness across chunks, a chunk retried alone. Real servers on 127.0.0.1 and real lakes (local,
moto S3)."""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from warcio.archiveiterator import ArchiveIterator

from etl.config import SourceConfig
from etl.discover import SourceFiles
from etl.discover.warcchunks import open_range, plan_warc
from etl.lake import raw_chunks_key, raw_index_key
from etl.runner import (
    Discovered,
    Processed,
    discover_step,
    fetch_step,
    process_step,
    publish_step,
    run_interval,
    validate_step,
)
from etl.runner.chunks import plan_candidates, site_key, split_items
from etl.runner.rawzone import read_index
from tests.support.runner_helpers import (
    HOUR9,
    articles,
    fetch_log,
    open_run,
    sources_file,
    utc,
)
from tests.support.sites import Site
from tests.support.warc_sites import (
    DELAY,
    s3_lake_settings,
    two_sites,
    warc_file,
)

# -- planning ------------------------------------------------------------------------------------

HOSTS = st.sampled_from(
    ["a.example", "news.a.example", "b.example.co.uk", "c.example.org", "127.0.0.1:8001"]
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    urls=st.lists(st.tuples(HOSTS, st.integers(0, 30)), max_size=40),
    size=st.integers(1, 8),
)
def test_candidate_chunks_cover_every_candidate_once_and_keep_a_site_whole(
    urls: list[tuple[str, int]], size: int
) -> None:
    rows = [{"url": f"http://{h}/n/{i}", "n": k} for k, (h, i) in enumerate(urls)]
    batches = plan_candidates(rows, size)
    assert plan_candidates(rows, size) == batches  # deterministic
    flat = [r["n"] for b in batches for r in b]
    assert sorted(flat) == list(range(len(rows)))  # every candidate exactly once
    sites_of = [{site_key(r["url"]) for r in b} for b in batches]
    for a, b in itertools.combinations(sites_of, 2):
        assert not a & b  # one site's candidates never in two chunks
    for batch, sites in zip(batches, sites_of, strict=True):
        assert len(batch) <= size or len(sites) == 1  # oversized only for one big site
    assert all(batches)
    assert site_key("http://news.a.example/x") == site_key("http://a.example/y") == "a.example"


def responses(stream: Any) -> list[tuple[int, str]]:
    it = ArchiveIterator(stream)
    return [
        (it.offset, r.rec_headers.get_header("WARC-Target-URI"))
        for r in it
        if r.rec_type == "response"
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 100])
def test_warc_chunks_cover_every_record_once_at_the_files_offsets(
    tmp_path: Path, size: int
) -> None:
    folder = tmp_path / "crawl"
    folder.mkdir()
    warc_file(folder / "a.warc.gz", 7)
    warc_file(folder / "b.warc.gz", 4, start=utc(2022, 5, 14, 9, 40))
    src = SourceConfig(id="crawl", kind="warc", path=str(folder))
    files = SourceFiles()
    chunks = plan_warc(src, files, size)
    assert plan_warc(src, files, size) == chunks  # deterministic, same ids
    assert [c["chunk"] for c in chunks] == [f"{i:04d}" for i in range(len(chunks))]
    whole = []
    for name in ("a", "b"):
        with (folder / f"{name}.warc.gz").open("rb") as fh:
            whole += [(str(folder / f"{name}.warc.gz"), o, u) for o, u in responses(fh)]
    seen = []
    for c in chunks:
        with open_range(files, c["path"], c["from_byte"], c["to_byte"]) as stream:
            got = [(c["path"], o, u) for o, u in responses(stream)]
        assert 1 <= len(got) <= size
        seen += got
    assert seen == whole  # every response record exactly once, at the whole file's offset
    per_file = Counter(c["path"] for c in chunks)
    assert per_file == {
        str(folder / "a.warc.gz"): -(-7 // size),
        str(folder / "b.warc.gz"): -(-4 // size),
    }


def test_warc_chunks_read_ranges_of_an_s3_object(tmp_path: Path, s3_server: Any) -> None:
    bucket = s3_server.new_bucket("chunks")
    local = tmp_path / "crawl.warc.gz"
    warc_file(local, 5)
    s3_server.client().put_object(Bucket=bucket, Key="in/crawl.warc.gz", Body=local.read_bytes())
    files = SourceFiles(s3_lake_settings(s3_server, bucket))
    uri = f"s3://{bucket}/in/crawl.warc.gz"
    chunks = plan_warc(SourceConfig(id="crawl", kind="warc", path=uri), files, 2)
    assert [(c["from_byte"] > 0, c["to_byte"] is None) for c in chunks] == [
        (False, False),
        (True, False),
        (True, True),
    ]
    with local.open("rb") as fh:
        whole = responses(fh)
    got = []
    for c in chunks:
        with open_range(files, uri, c["from_byte"], c["to_byte"]) as stream:
            got += responses(stream)
    assert got == whole


# -- a chunked WARC source -----------------------------------------------------------------------


def test_a_warc_source_in_chunks_publishes_what_it_does_unchunked(tmp_path: Path) -> None:
    warc = tmp_path / "crawl.warc.gz"
    warc_file(warc, 10)
    rows = {}
    for label, extra in (("whole", {}), ("chunked", {"chunk_size": 3})):
        base = tmp_path / label
        base.mkdir()
        src = {"id": "crawl", "kind": "warc", "path": str(warc), **extra}
        run = open_run(base, sources_file(base, src))
        out = run_interval(run)
        assert out["status"] == "complete"
        rows[label] = {r["article_id"]: (r["url"], r["raw_ref"], r["text"]) for r in articles(run)}
        if label == "chunked":
            found = discover_step(run, "crawl")
            assert len(found["chunks"]) == 4  # 10 records, 3 a chunk
            assert out["sources"][0]["chunk_count"] == 4 and out["sources"][0]["rows"] == 10
    assert len(rows["whole"]) == 10
    assert rows["chunked"] == rows["whole"]  # same ids, same raw_ref offsets, same text


# -- a chunked listed source across two hosts ----------------------------------------------------


def feed_source(tmp_path: Path, site: Site, **extra: Any) -> Path:
    src = {"id": "wire", "kind": "rss", "url": site.url("/feed.xml"), "per_host_delay_s": DELAY}
    return sources_file(tmp_path, {**src, **extra}, max_attempts=1)


def test_chunks_of_two_hosts_on_two_workers_keep_each_hosts_spacing(tmp_path: Path) -> None:
    a, b = two_sites(4)
    try:
        run = open_run(tmp_path, feed_source(tmp_path, a, chunk_size=3))
        found = discover_step(run, "wire")
        items = split_items([found])
        assert [i["chunk"] for i in items] == ["0000", "0001"]  # 4 + 4 candidates, 3 a chunk
        hosts = [{i["url"].split("/")[2] for i in chunk_rows(run, item)} for item in items]
        assert hosts == [{a.base[7:]}, {b.base[7:]}]  # a host's candidates in one chunk
        results: dict[str, Processed] = {}

        def work(item: Discovered) -> None:  # each chunk as its own worker would run it
            results[item["chunk"]] = process_step(run, fetch_step(run, item))

        threads = [threading.Thread(target=work, args=(i,)) for i in items]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert set(results) == {"0000", "0001"}
        for site in (a, b):
            pages = [r for r in site.requests() if r.path.startswith(("/a/", "/b/"))]
            assert len(pages) == 4
            # the chunk's requests (robots.txt and pages); the discover step's listing requests
            # came from another fetcher before (the boundary of two tasks, as unchunked)
            listed = max((r.arrived for r in a.requests("/feed.xml")), default=0.0)
            log = sorted((r.arrived, r.path) for r in site.requests() if r.arrived > listed)
            assert len(log) == 5  # robots.txt + 4 pages
            gaps = [(y[0] - x[0], y[1]) for x, y in itertools.pairwise(log)]
            # the host's spacing held (80 %: arrival times at the server jitter on a busy box)
            assert min(g for g, _ in gaps) >= 0.8 * DELAY, gaps
        # (the two chunks ran in two threads at once; no bound on how close their starts were:
        # a busy machine may start one late, and the spacing above is what politeness means)
        published = publish_step(run, [results["0000"], results["0001"]])
        assert published["status"] == "complete" and published["articles"] == 8
        assert validate_step(run)["articles"] == 8
        assert json.loads(run.lake.get_bytes(raw_chunks_key("wire", HOUR9)))["chunks"] == [
            "0000",
            "0001",
        ]
        for cid in ("0000", "0001"):
            assert read_index(run.lake, "wire", HOUR9, chunk=cid) is not None
        assert not run.lake.exists(raw_index_key("wire", HOUR9))  # no unchunked zone
        feed_rows = [r for r in fetch_log(run) if r["purpose"] == "feed"]
        assert len(feed_rows) == 1  # the listing archived once (by the head chunk)
    finally:
        a.close()
        b.close()


def chunk_rows(run: Any, item: Mapping[str, Any]) -> list[dict[str, Any]]:
    data = run.lake.get_bytes(item["candidates"])
    return [json.loads(line) for line in data.decode().splitlines()]


def test_a_chunked_listed_source_gives_the_lake_of_the_unchunked_one(tmp_path: Path) -> None:
    a, b = two_sites(3)
    try:
        got: dict[str, list[Any]] = {}
        for label, extra in (("whole", {}), ("chunked", {"chunk_size": 2})):
            base = tmp_path / label
            base.mkdir()
            run = open_run(base, feed_source(base, a, **extra))
            out = run_interval(run)
            assert out["status"] == "complete", out
            got[label] = sorted((r["article_id"], r["url"], r["text"]) for r in articles(run))
            log = Counter((r["purpose"], r["url"]) for r in fetch_log(run))
            assert all(v == 1 for k, v in log.items() if k[0] != "robots"), log
            got[label + "-log"] = sorted(log.items())  # robots.txt: once by discover, once a fetch
            again = run_interval(open_run(base, feed_source(base, a, **extra)))  # replay
            assert again["sources"][0]["mode"] == "replay" and again["articles"] == 6
        assert len(got["whole"]) == 6 and got["chunked"] == got["whole"]
        assert got["chunked-log"] == got["whole-log"]
        assert len([r for r in a.requests() if r.path.startswith("/a/")]) == 2 * 3  # no refetch
    finally:
        a.close()
        b.close()


def test_a_chunk_failing_transiently_is_retried_alone_and_the_interval_completes(
    tmp_path: Path,
) -> None:
    a, b = two_sites(3, flaky={"/b/1/": 1})
    try:
        sources = feed_source(tmp_path, a, chunk_size=3)
        first = run_interval(open_run(tmp_path, sources))
        assert first["status"] == "incomplete" and first["pending"] == [b.url("/b/1/")]
        assert first["articles"] == 5
        n_a, n_b = len(a.requests()), len(b.requests())
        rerun = open_run(tmp_path, sources)
        found = discover_step(rerun, "wire")
        assert [(c["chunk"], c["mode"]) for c in found["chunks"]] == [
            ("0000", "replay"),
            ("0001", "resume"),
        ]
        again = run_interval(rerun)
        assert again["status"] == "complete" and again["articles"] == 6
        assert len(a.requests()) == n_a  # host A's chunk replayed: no request, not even the feed
        assert [r.path for r in b.requests()[n_b:]] == ["/b/1/"]  # the pending URL alone
        rows = [r for r in fetch_log(rerun) if r["url"] == b.url("/b/1/")]
        assert [r["status"] for r in rows] == [200]
    finally:
        a.close()
        b.close()


def test_warc_chunk_items_carry_their_range(tmp_path: Path) -> None:
    warc = tmp_path / "crawl.warc.gz"
    warc_file(warc, 4)
    run = open_run(
        tmp_path,
        sources_file(tmp_path, {"id": "crawl", "kind": "warc", "path": str(warc), "chunk_size": 2}),
    )
    items = split_items([discover_step(run, "crawl")])
    assert [(i["mode"], i["chunk"], i["path"]) for i in items] == [
        ("warc", "0000", str(warc)),
        ("warc", "0001", str(warc)),
    ]
    assert items[0]["to_byte"] == items[1]["from_byte"] and items[1]["to_byte"] is None
    assert not {"start", "end"} & {k for i in items for k in i}  # the DAG items' interval
    limited = open_run(
        tmp_path,
        sources_file(
            tmp_path,
            {"id": "crawl", "kind": "warc", "path": str(warc), "chunk_size": 2, "max_articles": 3},
        ),
    )
    assert "chunks" not in discover_step(limited, "crawl")  # a source-wide limit: one task


def test_a_run_killed_between_chunks_and_a_refetch_keep_every_article_once(
    tmp_path: Path,
) -> None:
    a, b = two_sites(3)
    try:
        sources = feed_source(tmp_path, a, chunk_size=3)
        crashed = open_run(tmp_path, sources)
        items = split_items([discover_step(crashed, "wire")])
        fetch_step(crashed, items[0])  # host A's chunk archived, then the run dies
        assert not crashed.lake.exists(raw_chunks_key("wire", HOUR9))

        out = run_interval(open_run(tmp_path, sources))  # no directory: discovered again

        assert out["status"] == "complete" and out["articles"] == 6
        pages = Counter(
            r.path for s in (a, b) for r in s.requests() if r.path[:3] in ("/a/", "/b/")
        )
        assert set(pages.values()) == {1}  # chunk 0000 merged into its zone: A not asked again
        before = set(out["keys"])

        refetched = run_interval(open_run(tmp_path, sources, refetch=True))

        assert refetched["status"] == "complete" and refetched["articles"] == 6
        pages = Counter(
            r.path for s in (a, b) for r in s.requests() if r.path[:3] in ("/a/", "/b/")
        )
        assert set(pages.values()) == {2}  # every page fetched again, once
        run = open_run(tmp_path, sources)
        raw = run.lake.list(f"raw/dt={HOUR9.dt}/source=wire/")
        warcs = [k for k in raw if k.endswith(".warc.gz")]
        assert len(warcs) == 2 and all(".chunk-" in k for k in warcs)  # old zones removed
        assert set(refetched["keys"]) == before
        n = len(a.requests()) + len(b.requests())
        replayed = run_interval(run)
        assert replayed["sources"][0]["mode"] == "replay" and replayed["articles"] == 6
        assert len(a.requests()) + len(b.requests()) == n  # replay: no request
    finally:
        a.close()
        b.close()
