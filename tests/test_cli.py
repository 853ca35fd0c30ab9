"""The ``newsetl`` command line: extract, eval, ingest and query (through typer's CliRunner)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from etl.article.process import process_page, read_page
from etl.cli import app
from etl.config import Settings
from etl.urls import article_id, canonicalize

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "seeds" / "site"
EXPECTED = Path(__file__).parent / "cases" / "seeds" / "expected"
PAGES = Path(__file__).parent / "cases" / "pages"
BASE = "https://canadiannews.example/"
ARTICLES = sorted(p.parent.relative_to(SITE).as_posix() for p in SITE.rglob("*/index.html"))
KHARKIV = "2022/05/14/russia-withdraw-kharkiv"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NEWSETL_LAKE", "NEWSETL_SOURCES", "NEWSETL_WORKERS"):
        monkeypatch.delenv(name, raising=False)


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """A folder with one good page and three that yield no article."""
    folder = tmp_path / "pages"
    folder.mkdir()
    shutil.copy(SITE / KHARKIV / "index.html", folder / "a-good.html")
    (folder / "b-empty.html").write_bytes(b"")
    (folder / "c-binary.html").write_bytes(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n" + b"\x00" * 64)
    shutil.copy(PAGES / "no_text.html", folder / "d-no-text.html")
    (folder / "notes.txt").write_text("not a page")
    return folder


def test_articles_found() -> None:
    assert len(ARTICLES) == 7  # the seeds site's article pages


# --- extract ----------------------------------------------------------------------------------


def test_extract_prints_one_json_object_per_page() -> None:
    folders = [SITE / a for a in ARTICLES[:4]]
    result = run("extract", *folders)
    assert result.exit_code == 0, result.stderr
    rows = json_lines(result)
    assert [r["path"] for r in rows] == [str(f / "index.html") for f in folders]
    for folder, row in zip(folders, rows, strict=True):
        for key in (
            "id",
            "text",
            "title",
            "authors",
            "published_at",
            "date_source",
            "language",
            "captions",
            "canonical_url",
            "boilerplate_removed",
            "word_count",
        ):
            assert key in row
        assert row["id"] == "index"
        article = process_page(read_page(folder / "index.html"), Settings())
        assert row["text"] == article.cleaned.text
        assert row["title"] == article.extracted.title
        assert row["authors"] == list(article.extracted.authors)
        assert row["boilerplate_removed"] == [
            {"rule": r.rule, "text": r.text} for r in article.cleaned.removed
        ]
        assert row["word_count"] == len(re.findall(r"\w+", row["text"])) > 50


def test_extract_json_matches_the_expected_metadata() -> None:
    (row,) = json_lines(run("extract", SITE / KHARKIV / "index.html"))
    expected = json.loads((EXPECTED / f"{KHARKIV.replace('/', '__')}.json").read_text())
    assert row["title"] == expected["title"]
    assert row["authors"] == expected["authors"]
    assert row["published_at"] == expected["published_at"]
    assert row["date_source"] == "json-ld"
    assert row["language"] == "en"
    # the declared link in etl.urls key form (its trailing slash folded): the id's own input
    assert row["canonical_url"] == canonicalize(expected["canonical_url"])
    assert row["article_id"] == article_id(expected["canonical_url"])
    assert row["domain"] == "canadiannews.example" and row["canonical_link"] is None
    assert row["url"] == row["canonical_url"]  # no URL of its own: the canonical one
    assert set(expected["captions"]) <= set(row["captions"])
    assert any(r["text"] == "More in Russo-Ukrainian War" for r in row["boilerplate_removed"])
    assert "More in Russo-Ukrainian War" not in row["text"]


def test_extract_human_shows_removed_lines_with_rule_ids() -> None:
    page = SITE / KHARKIV / "index.html"
    result = run("extract", "--human", page)
    assert result.exit_code == 0
    article = process_page(read_page(page), Settings())
    assert article.cleaned.removed
    text = result.stdout
    assert "✓ index  Russian forces begin withdrawing from Kharkiv" in text
    assert "authors: Daniel Okafor" in text
    assert "(json-ld)" in text
    for removed in article.cleaned.removed:
        first = removed.text.split("\n")[0][:140]
        assert f"- [{removed.rule}] {first}" in text
    assert "~ caption: Static anti-tank hedgehogs" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_extract_human_also_shows_what_the_prune_rules_took_out() -> None:
    page = SITE / KHARKIV / "index.html"
    text = run("extract", "--human", page).stdout
    # the inline widget never reaches the text rules: the structural rule that took it names it
    assert re.search(r"- \[prune:[a-z-]+\] Trending on Canadian News Selma Blair", text)
    assert re.search(r"- \[prune:wp-comment-form\] Leave a Reply", text)
    # and the JSON rows (what the lake stores) are not changed by the explanation
    row = json.loads(run("extract", page).stdout)
    assert not any(r["rule"].startswith("prune:") for r in row["boilerplate_removed"])


def test_extract_human_shows_failures(mixed: Path) -> None:
    result = run("extract", "--human", mixed)
    assert result.exit_code == 1
    assert f"✗ b-empty  {mixed / 'b-empty.html'}: empty page" in result.stdout


def test_extract_with_two_workers_prints_the_same_lines() -> None:
    one = run("extract", SITE)
    two = run("extract", "--workers", "2", SITE)
    assert one.exit_code == two.exit_code == 0
    assert one.stdout == two.stdout
    assert len(json_lines(two)) == len(ARTICLES) + 1  # and the home page


def test_extract_exit_status_1_when_any_page_failed(mixed: Path) -> None:
    result = run("extract", mixed)
    assert result.exit_code == 1
    rows = {Path(r["path"]).name: r for r in json_lines(result)}
    assert set(rows) == {"a-good.html", "b-empty.html", "c-binary.html", "d-no-text.html"}
    assert rows["a-good.html"]["text"]
    assert "error" not in rows["a-good.html"]
    for name, kind, cause in [
        ("b-empty.html", "empty", "empty page"),
        ("c-binary.html", "binary", "PDF document"),
        ("d-no-text.html", "no-text", "no article text"),
    ]:
        row = rows[name]
        assert row["error_kind"] == kind
        assert row["id"] == name.split(".")[0]
        assert row["path"] == str(mixed / name)
        assert row["error"].startswith(f"{mixed / name}: ")
        assert cause in row["error"]
    assert "3 of 4 pages yielded no article" in result.stderr


def test_extract_two_workers_same_failures(mixed: Path) -> None:
    one, two = run("extract", mixed), run("extract", "-w", "2", mixed)
    assert one.exit_code == two.exit_code == 1
    assert one.stdout == two.stdout


def test_extract_exit_status_0_when_all_pages_are_fine(tmp_path: Path) -> None:
    shutil.copy(SITE / KHARKIV / "index.html", tmp_path / "kharkiv.html")
    result = run("extract", tmp_path)
    assert result.exit_code == 0
    assert result.stderr == ""
    assert json_lines(result)[0]["id"] == "kharkiv"


def test_extract_folder_without_pages_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("nothing here")
    result = run("extract", tmp_path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "no .html or .html.gz pages found" in result.stderr
    assert str(tmp_path) in result.stderr


# --- eval -------------------------------------------------------------------------------------


def build_corpus(root: Path, names: list[str]) -> Path:
    (root / "html").mkdir(parents=True)
    truth = {}
    for i, rel in enumerate(names):
        pid = f"page{i:02d}"
        shutil.copy(SITE / rel / "index.html", root / "html" / f"{pid}.html")
        body = (EXPECTED / f"{rel.replace('/', '__')}.txt").read_text(encoding="utf-8")
        truth[pid] = {"articleBody": body, "url": f"{BASE}{rel}/"}
    (root / "ground-truth.json").write_text(json.dumps(truth), encoding="utf-8")
    return root


def score_rows(stdout: str) -> dict[str, list[float]]:
    rows = {}
    for line in stdout.splitlines()[1:]:
        *name, f1, precision, recall, pages, secs = line.split()
        rows[" ".join(name)] = [float(f1), float(precision), float(recall), float(pages)]
        assert float(secs) >= 0
    return rows


EVAL_PAGES = [
    "business/2024/01/09/toronto-housing-starts-slump",
    "de/2023/11/02/leipzig-tempo-30-hauptstrassen",
    "amp/2023/09/07/saskatoon-library-social-workers",
]


def test_eval_prints_f1_precision_recall(tmp_path: Path) -> None:
    corpus = build_corpus(tmp_path / "corpus", EVAL_PAGES)
    result = run("eval", corpus)
    assert result.exit_code == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header == ["extractor", "F1", "precision", "recall", "pages", "seconds"]
    rows = score_rows(result.stdout)
    assert list(rows) == ["newsetl"]
    f1, precision, recall, pages = rows["newsetl"]
    assert pages == 3
    assert 0.9 < f1 <= 1 and 0.9 < precision <= 1 and 0.9 < recall <= 1


def test_eval_with_baseline_adds_a_trafilatura_row(tmp_path: Path) -> None:
    corpus = build_corpus(tmp_path / "corpus", EVAL_PAGES[:2])
    result = run("eval", "--baseline", corpus)
    assert result.exit_code == 0
    rows = score_rows(result.stdout)
    assert list(rows) == ["newsetl", "trafilatura (defaults)"]
    f1, precision, recall, pages = rows["trafilatura (defaults)"]
    assert pages == 2
    assert 0 < f1 <= 1 and 0 < precision <= 1 and 0 < recall <= 1
    assert f1 == pytest.approx(2 * precision * recall / (precision + recall), abs=2e-4)


def test_eval_counts_a_failed_page_as_empty(tmp_path: Path) -> None:
    corpus = build_corpus(tmp_path / "corpus", EVAL_PAGES[:2])
    (corpus / "html" / "page01.html").write_bytes(b"")
    rows = score_rows(run("eval", corpus).stdout)
    _, precision, recall, _ = rows["newsetl"]
    assert recall < 0.6  # one of the two pages found nothing
    assert precision > 0.9  # nothing predicted is wrong


def test_eval_without_ground_truth_is_exit_2(tmp_path: Path) -> None:
    result = run("eval", tmp_path)
    assert result.exit_code == 2
    assert "no ground-truth.json" in result.stderr


# --- ingest and query -------------------------------------------------------------------------


def test_ingest_then_query_round_trip(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    args: list[str | Path] = [
        "ingest",
        SITE,
        "--exclude",
        "index.html",
        "--base-url",
        BASE,
        "--lake",
        lake,
    ]
    result = run(*args, "--source-id", "seeds", "--start", "2024-06-01T12:00:00Z")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"wrote {len(ARTICLES)} articles in 1 file(s); 0 failed" in result.stdout
    assert "interval 20240601T1200Z-20240601T1300Z (dt=2024-06-01)" in result.stdout
    assert (lake / "_runs" / "20240601T1200Z-20240601T1300Z.json").is_file()

    count = run("query", "--lake", lake, "SELECT count(*) AS n FROM articles")
    assert count.exit_code == 0
    assert count.stdout.splitlines() == ["n", str(len(ARTICLES))]

    urls = run("query", "--lake", lake, "SELECT url, source_id FROM articles ORDER BY url")
    assert urls.stdout.splitlines()[1:] == [f"{BASE}{a}/\tseeds" for a in ARTICLES]

    # rerunning the same interval leaves the same rows
    again = run(*args, "--source-id", "seeds", "--start", "2024-06-01T12:00:00Z")
    assert again.exit_code == 0
    sql = "SELECT count(DISTINCT article_id), count(*) FROM articles"
    count = run("query", "--lake", lake, sql)
    assert count.stdout.splitlines()[1] == f"{len(ARTICLES)}\t{len(ARTICLES)}"


def test_ingest_with_failures_is_exit_1_and_logs_them(tmp_path: Path, mixed: Path) -> None:
    lake = tmp_path / "lake"
    result = run(
        "ingest",
        mixed,
        "--base-url",
        "https://pages.example/",
        "--lake",
        lake,
        "--start",
        "2024-06-01T12:00:00",
        "--end",
        "2024-06-01T12:30:00",
    )
    assert result.exit_code == 1
    assert "wrote 1 articles in 1 file(s); 3 failed" in result.stdout
    assert "✗ https://pages.example/b-empty.html: empty page" in result.stdout
    log = run(
        "query",
        "--lake",
        lake,
        "SELECT url, error_class FROM fetch_log ORDER BY url",
    )
    assert log.stdout.splitlines()[1:] == [
        "https://pages.example/b-empty.html\tempty",
        "https://pages.example/c-binary.html\tbinary",
        "https://pages.example/d-no-text.html\tno-text",
    ]


def test_ingest_without_a_url_fails_only_that_page(tmp_path: Path) -> None:
    folder = tmp_path / "pages"
    folder.mkdir()
    shutil.copy(SITE / KHARKIV / "index.html", folder / "kharkiv.html")  # has a canonical link
    shutil.copy(PAGES / "article_en.html", folder / "ferry.html")  # has none
    lake = tmp_path / "lake"
    result = run("ingest", folder, "--lake", lake, "--start", "2024-06-01T12:00:00Z")
    assert result.exit_code == 1
    assert "wrote 1 articles" in result.stdout
    assert "no absolute http(s) URL" in result.stdout
    q = run("query", "--lake", lake, "SELECT canonical_url FROM articles")
    assert q.stdout.splitlines()[1] == f"{BASE}{KHARKIV}"


def test_ingest_nothing_to_ingest_is_exit_2(tmp_path: Path) -> None:
    result = run("ingest", SITE, "--exclude", "*", "--lake", tmp_path / "lake")
    assert result.exit_code == 2
    assert "no .html or .html.gz pages found" in result.stderr
    assert not (tmp_path / "lake").exists()


def test_ingest_rejects_a_bad_interval(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["ingest", str(SITE), "--lake", str(tmp_path), "--start", "yesterday"]
    )
    assert result.exit_code == 2
    assert "not an ISO-8601 time" in result.stderr


def test_query_prints_values_verbatim(tmp_path: Path) -> None:
    sql = "SELECT '[bold]live[/bold] :thumbs_up: [red]x' AS s, NULL AS n"
    result = run("query", "--lake", tmp_path / "empty-lake", sql)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["s\tn", "[bold]live[/bold] :thumbs_up: [red]x\t"]


def test_query_on_an_empty_lake_has_empty_tables(tmp_path: Path) -> None:
    result = run(
        "query",
        "--lake",
        tmp_path,
        "SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM fetch_log)",
    )
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1] == "0\t0"


def test_bad_sql_is_exit_2_naming_the_lake(tmp_path: Path) -> None:
    result = run("query", "--lake", tmp_path, "SELECT nope FROM articles")
    assert result.exit_code == 2
    assert str(tmp_path) in result.stderr
    assert "query failed" in result.stderr


def test_query_reads_an_s3_lake_on_the_s3_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mixed: Path, s3_server: Any
) -> None:
    """``newsetl ingest`` then ``newsetl query`` on an ``s3://`` lake held by the real S3 server
    process (moto, reached through its endpoint): both views, read through the store."""
    bucket = s3_server.new_bucket("query")
    lake = f"s3://{bucket}/lake"
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.chdir(tmp_path)  # nothing may land in a local folder named like the lake
    ingested = run("ingest", mixed, "--base-url", "https://p.example/", "--lake", lake)
    assert ingested.exit_code == 1, ingested.output  # three of the four pages fail
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.startswith("lake/articles/") and k.endswith(".parquet") for k in keys)
    assert any(k.startswith("lake/fetch_log/") for k in keys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pages"]

    count = run("query", "--lake", lake, "SELECT count(*) AS n, min(url) AS url FROM articles")
    assert count.exit_code == 0, count.output
    assert count.stdout.splitlines() == ["n\turl", "1\thttps://p.example/a-good.html"]
    errors = run("query", "--lake", lake, "SELECT error_class FROM fetch_log ORDER BY 1")
    assert errors.exit_code == 0, errors.output
    assert errors.stdout.splitlines() == ["error_class", "binary", "empty", "no-text"]
    # the server is the only copy: another bucket is another (empty) lake
    other = run(
        "query", "--lake", f"s3://{s3_server.new_bucket('empty')}", "SELECT count(*) FROM articles"
    )
    assert other.exit_code == 0 and other.stdout.splitlines()[1:] == ["0"]


def cascade_corpus(root: Path) -> Path:
    """Two hand-written pages: a thread page, and a body with a hover card that only a
    shipped domain rule (thehill.com) prunes."""
    cases = PAGES / "cascade"
    (root / "html").mkdir(parents=True)
    card = (
        '<div class="rollover-people-block"><p>Jane Official, a senior member of the county '
        "board, has served on it since 2009 and chairs its finance and planning committees.</p>"
        "<p>Latest: board approves the new library budget after a long debate over branch "
        "hours and the future of the mobile library service.</p></div>"
    )
    split = (cases / "split_body.html").read_text(encoding="utf-8")
    split = split.replace('<div class="article-body">', card + '<div class="article-body">')
    (root / "html" / "hill.html").write_text(split, encoding="utf-8")
    shutil.copy(cases / "thread_bigger.html", root / "html" / "thread.html")
    truth = {
        "hill": {
            "articleBody": (cases / "split_body.txt").read_text(encoding="utf-8"),
            "url": "https://thehill.com/homenews/state-watch/1-dam",
        },
        "thread": {
            "articleBody": (cases / "thread_bigger.txt").read_text(encoding="utf-8"),
            "url": "https://harbourside.example/news/hall-roof",
        },
    }
    (root / "ground-truth.json").write_text(json.dumps(truth), encoding="utf-8")
    return root


def test_eval_global_only_scores_without_the_domain_rules(tmp_path: Path) -> None:
    corpus = cascade_corpus(tmp_path / "corpus")
    result = run("eval", "--global-only", corpus)
    assert result.exit_code == 0, result.stderr
    table, _, tail = result.stdout.partition("\n\n")
    rows = score_rows(table)
    assert list(rows) == ["newsetl", "newsetl --global-only"]
    assert rows["newsetl"][0] > rows["newsetl --global-only"][0]  # the hover card stays in
    assert rows["newsetl --global-only"][2] == pytest.approx(rows["newsetl"][2], abs=0.02)
    assert "global rules only: 0 page(s) below F1 0.5" in tail


def test_eval_by_domain_prints_domains_and_the_worst_pages_with_their_class(
    tmp_path: Path,
) -> None:
    corpus = cascade_corpus(tmp_path / "corpus")
    (corpus / "html" / "thread.html").write_bytes(b"")
    result = run("eval", "--by-domain", corpus)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "per domain (all rules):" in out
    domains = [line.split()[0] for line in out.split("per domain")[1].splitlines()[2:4]]
    assert domains == ["harbourside.example", "thehill.com"]
    worst = out.split("worst pages (all rules):")[1].strip().splitlines()
    assert worst[0].split()[:2] == ["page", "F1"]
    assert worst[1].split()[0] == "thread" and "empty" in worst[1]
    assert worst[2].split()[0] == "hill"


@pytest.mark.parametrize("content", ["not json", '{"page": [1, 2]}', "[]"])
def test_eval_with_a_broken_ground_truth_is_exit_2(tmp_path: Path, content: str) -> None:
    (tmp_path / "html").mkdir()
    (tmp_path / "ground-truth.json").write_text(content, encoding="utf-8")
    result = run("eval", "--by-domain", tmp_path)
    assert result.exit_code == 2
    assert "ground-truth.json: not a ground-truth file" in result.stderr
