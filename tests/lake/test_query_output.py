"""``newsetl query`` output formats with values the article schema does not have but a query
can make (issue 9 review): NaN and infinities, bytes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tests.support.cli_helpers import newsetl

SQL = (
    "SELECT 'nan'::DOUBLE AS x, 'inf'::DOUBLE AS y, [1.5, '-inf'::DOUBLE] AS l, "
    "'\\x00\\xff'::BLOB AS b"
)


def test_json_lines_stay_json(tmp_path: Path) -> None:
    """NaN and Infinity are not JSON: ``{"x": NaN}`` failed every strict JSON parser."""
    run = newsetl("query", "--lake", tmp_path / "lake", "-f", "json", SQL)
    assert run.exit_code == 0, run.stderr
    row = json.loads(run.stdout, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert row == {"x": None, "y": None, "l": [1.5, None], "b": "00ff"}


def test_csv_nested_values_are_json_and_bytes_are_hex(tmp_path: Path) -> None:
    run = newsetl("query", "--lake", tmp_path / "lake", "-f", "csv", SQL)
    assert run.exit_code == 0, run.stderr
    header, row = list(csv.reader(io.StringIO(run.stdout)))
    assert header == ["x", "y", "l", "b"]
    assert row[2] == "[1.5, null]" and row[3] == "00ff"  # not "[1.5, -Infinity]", "b'\\x00\\xff'"


def test_the_terminal_table_shows_no_control_character(tmp_path: Path) -> None:
    """A scraped title with an ESC sequence (clear screen, set the window title) or a CR was
    written raw by ``--format table``, the terminal's format: the terminal obeyed it."""
    sql = (
        "SELECT 'a' || chr(27) || '[2J' || chr(27) || ']0;pwned' || chr(7) || 'b' || chr(13) "
        "|| 'c' || chr(155) || 'd' AS \"t\"\"\" , 'x' AS \"h" + "\x1b" + '[1m"'
    )
    run = newsetl("query", "--lake", tmp_path / "lake", "-f", "table", sql)
    assert run.exit_code == 0, run.stderr
    assert not any(ch in run.stdout for ch in "\x1b\x07\r\x9b"), repr(run.stdout)
    assert "[2J" in run.stdout and "pwned" in run.stdout  # shown, as text
