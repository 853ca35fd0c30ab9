"""Fixtures of the command-line tests: a clean environment, a folder of mixed pages."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.cli_helpers import KHARKIV, PAGES, SITE


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NEWSETL_LAKE", "NEWSETL_SOURCES", "NEWSETL_WORKERS"):
        monkeypatch.delenv(name, raising=False)


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
