"""``newsetl extract`` (through typer's CliRunner)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from etl.article.process import process_page, read_page
from etl.config import Settings
from etl.urls import article_id, canonicalize
from tests.support.cli_helpers import (
    ARTICLES,
    EXPECTED,
    KHARKIV,
    SITE,
    json_lines,
    run,
)


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
