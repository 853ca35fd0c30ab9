"""``newsetl eval``: the score of a corpus (through typer's CliRunner)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.cli_helpers import (
    BASE,
    EXPECTED,
    PAGES,
    SITE,
    run,
)

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
