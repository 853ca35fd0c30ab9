"""A local lake folder read as plain files: keys, rows, ids, staging and temp files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pyarrow.parquet as pq


def lake_files(lake: Path) -> set[str]:
    """Every file under the lake, as keys (temp files and staging included)."""
    return {p.relative_to(lake).as_posix() for p in lake.rglob("*") if p.is_file()}


def read_rows(lake: Path, key: str) -> list[dict[str, Any]]:
    return pq.read_table(lake / key, use_threads=False).to_pylist()


def file_ids(lake: Path, key: str) -> list[str]:
    table = pq.read_table(lake / key, columns=["article_id"], use_threads=False)
    ids = cast("list[str]", table.column(0).to_pylist())
    return ids


def all_article_ids(lake: Path) -> list[str]:
    """Article ids of every Parquet file under articles/ (what a glob reader would see)."""
    keys = sorted(k for k in lake_files(lake) if k.startswith("articles/"))
    return [i for k in keys if k.endswith(".parquet") for i in file_ids(lake, k)]


def staged_files(lake: Path) -> set[str]:
    return {k for k in lake_files(lake) if k.startswith("_staging/")}


def temp_files(lake: Path) -> set[str]:
    """Hidden or .tmp files (LocalLake writes ``.<name>.<random>.tmp`` and renames it)."""
    names = {k: k.rsplit("/", 1)[-1] for k in lake_files(lake)}
    return {k for k, n in names.items() if n.startswith(".") or n.endswith(".tmp")}
