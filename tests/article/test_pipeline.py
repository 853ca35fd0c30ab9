"""etl.article.process: process_page / process_pages (in-process, in a worker pool), ingest."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl.article.normalization import article_id
from etl.article.process import find_pages, page_id, process_page, process_pages, read_page
from etl.config import Settings
from etl.errors import ExtractError
from etl.lake.local import LocalLake
from etl.lake.manifest import read_manifest
from etl.lake.tables import read_articles
from etl.records import Article, Failure, Interval, Page
from etl.runner.ingestion import ingest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "seeds" / "site"
EXPECTED = Path(__file__).parents[1] / "cases" / "seeds" / "expected"
PAGES = Path(__file__).parents[1] / "cases" / "pages"
BASE = "https://canadiannews.example/"
SEEDS = [
    "2022/05/14/russia-withdraw-kharkiv",
    "business/2024/01/09/toronto-housing-starts-slump",
    "de/2023/11/02/leipzig-tempo-30-hauptstrassen",
    "amp/2023/09/07/saskatoon-library-social-workers",
    "features/bay-of-fundy-tide-guides",
]
FETCHED = datetime(2024, 6, 1, 12, 5, tzinfo=UTC)
INTERVAL = Interval(datetime(2024, 6, 1, 12, tzinfo=UTC), datetime(2024, 6, 1, 13, tzinfo=UTC))
SETTINGS = Settings()


def _ids(table: pa.Table) -> list[str]:
    return cast("list[str]", table.column("article_id").to_pylist())


def seed_file(rel: str) -> Path:
    return SITE / rel / "index.html"


def seed_page(rel: str) -> Page:
    return Page(
        id=rel,
        body=seed_file(rel).read_bytes(),
        url=f"{BASE}{rel}/",
        fetched_at=FETCHED,
        source_id="seeds",
    )


def expected_canonical(rel: str) -> str:
    meta = json.loads((EXPECTED / f"{rel.replace('/', '__')}.json").read_text(encoding="utf-8"))
    url: str = meta["canonical_url"]
    return url


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    """One file per way a page can fail, each named like a page."""
    files = {
        "empty": tmp_path / "empty.html",
        "binary": tmp_path / "binary.html",
        "undecodable": tmp_path / "garbage.html",
        "no-text": tmp_path / "nav-only.html",
    }
    files["empty"].write_bytes(b"")
    files["binary"].write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    files["undecodable"].write_bytes(bytes(range(0x80, 0x100)) * 4)
    shutil.copy(PAGES / "no_text.html", files["no-text"])
    return files


# --- process_page -----------------------------------------------------------------------------


def test_process_page_extracts_and_cleans() -> None:
    article = process_page(seed_page(SEEDS[0]), SETTINGS)
    assert article.page.id == SEEDS[0]
    assert article.extracted.canonical_url == expected_canonical(SEEDS[0])
    assert article.cleaned.text
    assert "More in Russo-Ukrainian War" not in article.cleaned.text
    removed = [r.text for r in article.cleaned.removed]
    assert all(r.rule for r in article.cleaned.removed)
    assert all(text not in article.cleaned.text.splitlines() for text in removed)


def test_page_whose_text_is_all_boilerplate_is_a_no_text_error() -> None:
    html = (
        "<!DOCTYPE html><html lang='en'><head><title>t</title></head><body><article>"
        "<p>Your email address will not be published. Required fields are marked *</p>"
        "</article></body></html>"
    )
    with pytest.raises(ExtractError) as info:
        process_page(Page(id="x", body=html.encode(), url="https://e.example/a"), SETTINGS)
    assert info.value.kind == "no-text"
    assert "after cleaning" in str(info.value)
    assert str(info.value).startswith("https://e.example/a: ")


# --- reading local pages ----------------------------------------------------------------------


def test_page_id_and_read_page(tmp_path: Path) -> None:
    assert page_id(Path("a/b/abc.html.gz")) == "abc"
    assert page_id(Path("index.html")) == "index"
    raw = seed_file(SEEDS[1]).read_bytes()
    gz = tmp_path / "toronto.html.gz"
    gz.write_bytes(gzip.compress(raw))
    page = read_page(gz, url="https://x.example/t")
    assert (page.id, page.body, page.url) == ("toronto", raw, "https://x.example/t")


@pytest.mark.parametrize("name", ["missing.html", "broken.html.gz"])
def test_unreadable_file_is_an_extract_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(b"not gzip at all")
    with pytest.raises(ExtractError) as info:
        read_page(path)
    assert info.value.kind == "unreadable"
    assert info.value.subject == str(path)


def test_find_pages_takes_page_files_from_folders_sorted(tmp_path: Path) -> None:
    for name in ["b/2.html", "a/1.htm", "c.html.gz", "d.xhtml", "notes.txt", "e.HTML", "f.json"]:
        p = tmp_path / "site" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    named = tmp_path / "named.txt"
    named.write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_pages([tmp_path / "site", named])]
    assert found == [
        "site/a/1.htm",
        "site/b/2.html",
        "site/c.html.gz",
        "site/d.xhtml",
        "site/e.HTML",
        "named.txt",  # a file named explicitly is taken whatever its name
    ]
    assert list(find_pages([tmp_path / "empty-dir-does-not-exist"])) == [
        tmp_path / "empty-dir-does-not-exist"
    ]


# --- process_pages ----------------------------------------------------------------------------


def test_failures_name_the_file_and_cause_while_the_others_go_on(
    bad_files: dict[str, Path],
) -> None:
    items = [
        seed_file(SEEDS[0]),
        bad_files["empty"],
        seed_file(SEEDS[1]),
        bad_files["binary"],
        bad_files["undecodable"],
        bad_files["no-text"],
        seed_file(SEEDS[2]),
    ]
    results = list(process_pages(items, SETTINGS))
    assert len(results) == len(items)
    assert [type(r).__name__ for r in results] == [
        "Article",
        "Failure",
        "Article",
        "Failure",
        "Failure",
        "Failure",
        "Article",
    ]
    failures = {r.kind: r for r in results if isinstance(r, Failure)}
    assert set(failures) == {"empty", "binary", "undecodable", "no-text"}
    for kind, failure in failures.items():
        path = bad_files[kind]
        assert failure.id == path.name.split(".")[0]
        assert failure.subject == str(path)
        assert failure.error.startswith(f"{path}: ")
    assert "PNG" in failures["binary"].error
    articles = [r for r in results if isinstance(r, Article)]
    assert [a.page.raw_ref for a in articles] == [str(seed_file(s)) for s in SEEDS[:3]]
    assert all(a.cleaned.text for a in articles)


def test_unexpected_exception_on_one_page_is_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import etl.article.process
    from etl.article.extraction import extract as real  # what etl.article.process calls

    def flaky(page: Page, settings: object) -> object:
        if page.id == "boom":
            raise RuntimeError("parser exploded")
        return real(page, SETTINGS.extract)

    monkeypatch.setattr(etl.article.process, "extract", flaky)
    pages = [seed_page(SEEDS[0]), replace(seed_page(SEEDS[1]), id="boom", url=None)]
    results = list(process_pages(pages, SETTINGS))
    assert isinstance(results[0], Article)
    assert results[1] == Failure("boom", "boom", "internal", "boom: RuntimeError: parser exploded")


def test_one_and_two_workers_give_the_same_results_in_order(
    bad_files: dict[str, Path],
) -> None:
    items = [seed_file(s) for s in SEEDS] + [bad_files["binary"], bad_files["no-text"]]
    items.insert(2, bad_files["empty"])
    one = list(process_pages(items, SETTINGS, workers=1))
    two = list(process_pages(items, SETTINGS, workers=2))
    assert one == two
    assert [r.page.raw_ref if isinstance(r, Article) else r.subject for r in two] == [
        str(p) for p in items
    ]
    assert sum(isinstance(r, Failure) for r in two) == 3


def test_pages_in_a_worker_pool_keep_their_order() -> None:
    pages = [seed_page(s) for s in SEEDS * 2]  # more items than one chunk
    two = list(process_pages(pages, SETTINGS, workers=3))
    assert [r.page.id for r in two if isinstance(r, Article)] == [p.id for p in pages]
    assert two == list(process_pages(pages, SETTINGS))


def summarize(result: Article | Failure) -> tuple[str, str]:
    """A module-level ``finish`` (it runs in the worker)."""
    if isinstance(result, Failure):
        return "fail", result.kind
    return "ok", result.cleaned.text[:40]


def test_finish_runs_on_each_result_in_the_workers(bad_files: dict[str, Path]) -> None:
    items = [seed_file(SEEDS[0]), bad_files["empty"], seed_file(SEEDS[2])]
    one = list(process_pages(items, SETTINGS, finish=summarize))
    two = list(process_pages(items, SETTINGS, workers=2, finish=summarize))
    assert one == two
    assert [r[0] for r in one] == ["ok", "fail", "ok"]
    assert one[1] == ("fail", "empty")


# --- ingest -----------------------------------------------------------------------------------


def lake_keys(lake: LocalLake) -> list[str]:
    return lake.list()


def test_ingest_publishes_articles_failures_and_manifest(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    pages = [seed_page(s) for s in SEEDS]
    broken = Page(id="broken", body=b"", url=f"{BASE}broken/", fetched_at=FETCHED)
    nourl = Page(id="no-url", body=(PAGES / "article_de.html").read_bytes(), fetched_at=FETCHED)
    seen: list[Article | Failure] = []
    summary = ingest(
        [*pages[:2], broken, *pages[2:], nourl],
        SETTINGS,
        interval=INTERVAL,
        lake=lake,
        source_id="seeds",
        on_result=seen.append,
    )
    assert len(seen) == len(pages) + 2

    # articles
    table = read_articles(lake, INTERVAL.dt)
    ids = _ids(table)
    assert sorted(ids) == sorted(article_id(expected_canonical(s)) for s in SEEDS)
    assert len(set(ids)) == len(ids)
    assert set(table.column("source_id").to_pylist()) == {"seeds"}
    assert set(table.column("dt").to_pylist()) == {INTERVAL.dt}
    assert summary.manifest.articles == len(pages)
    assert len(summary.titles) == len(pages)

    # failures → fetch_log rows
    assert {(f.id, f.kind) for f in summary.failures} == {("broken", "empty"), ("no-url", "no-url")}
    assert summary.manifest.fetch_log is not None
    log = pq.read_table(lake.uri_for(summary.manifest.fetch_log.key)).to_pylist()
    by_class = {row["error_class"]: row for row in log}
    assert set(by_class) == {"empty", "no-url"}
    assert by_class["empty"]["url"] == f"{BASE}broken/"
    assert by_class["empty"]["error"].startswith(f"{BASE}broken/: ")
    assert all(row["source_id"] == "seeds" and row["dt"] == INTERVAL.dt for row in log)

    # manifest with the rule hits
    stored = read_manifest(lake, INTERVAL)
    assert stored is not None
    extra = stored["extra"]
    expected_hits: Counter[str] = Counter()
    for s in SEEDS:
        expected_hits.update(r.rule for r in process_page(seed_page(s), SETTINGS).cleaned.removed)
    assert expected_hits  # the seeds carry boilerplate the rules remove
    assert extra["rule_hits"] == dict(expected_hits)
    assert summary.rule_hits == expected_hits
    assert (extra["pages"], extra["failed"]) == (len(pages) + 2, 2)
    assert extra["sources"]["seeds"]["mode"] == "ingest"  # the manifest shape of every run
    assert stored["status"] == "complete" and stored["quality"]["articles"] == len(pages)
    assert extra["rules_version"] and all(isinstance(v, str) for v in extra["rules_version"])
    assert extra["dedupe"]["rows_out"] == len(pages)
    assert stored["articles"] == len(pages)


def test_ingest_rerun_leaves_exactly_the_same_articles(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    pages = [seed_page(s) for s in SEEDS]
    first = ingest(pages, SETTINGS, interval=INTERVAL, lake=lake, source_id="seeds")
    keys = lake_keys(lake)
    ids = sorted(_ids(read_articles(lake)))

    second = ingest(pages, SETTINGS, interval=INTERVAL, lake=lake, source_id="seeds")
    assert lake_keys(lake) == keys
    assert sorted(_ids(read_articles(lake))) == ids
    assert second.manifest.articles == first.manifest.articles == len(pages)
    assert second.manifest.deleted == ()

    # A rerun with fewer pages (and other sharding) replaces the interval: no stale rows.
    third = ingest(
        pages[:2],
        replace(SETTINGS, n_shards=4),
        interval=INTERVAL,
        lake=lake,
        source_id="seeds",
    )
    assert third.manifest.articles == 2
    assert sorted(_ids(read_articles(lake))) == sorted(
        article_id(expected_canonical(s)) for s in SEEDS[:2]
    )
    fourth = ingest(pages, SETTINGS, interval=INTERVAL, lake=lake, source_id="seeds")
    assert sorted(_ids(read_articles(lake))) == ids
    assert lake_keys(lake) == keys
    assert fourth.manifest.deleted  # the extra shards of the 4-shard run are gone


def test_ingest_of_the_next_interval_skips_articles_already_in_the_lake(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    pages = [seed_page(s) for s in SEEDS[:3]]
    ingest(pages, SETTINGS, interval=INTERVAL, lake=lake)
    later = Interval(INTERVAL.end, datetime(2024, 6, 1, 14, tzinfo=UTC))
    summary = ingest(pages, SETTINGS, interval=later, lake=lake)
    assert summary.manifest.articles == 0
    assert summary.dropped["seen"] == 3
    assert read_articles(lake).num_rows == 3


def test_ingest_with_two_workers_matches_one(tmp_path: Path) -> None:
    pages = [seed_page(s) for s in SEEDS]
    one = ingest(pages, SETTINGS, interval=INTERVAL, lake=LocalLake(tmp_path / "one"))
    two = ingest(pages, SETTINGS, interval=INTERVAL, lake=LocalLake(tmp_path / "two"), workers=2)
    a = read_articles(LocalLake(tmp_path / "one")).drop_columns(["extractor"])
    b = read_articles(LocalLake(tmp_path / "two")).drop_columns(["extractor"])
    assert a.equals(b)
    assert one.rule_hits == two.rule_hits
