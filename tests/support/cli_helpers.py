"""Running the newsetl command line in-process (typer's CliRunner), and the seeds site's pages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from etl.cli import app

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "seeds" / "site"
EXPECTED = ROOT / "tests" / "cases" / "seeds" / "expected"
PAGES = ROOT / "tests" / "cases" / "pages"
BASE = "https://canadiannews.example/"
ARTICLES = sorted(p.parent.relative_to(SITE).as_posix() for p in SITE.rglob("*/index.html"))
KHARKIV = "2022/05/14/russia-withdraw-kharkiv"


def newsetl(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
