"""Running the newsetl command line in-process (typer's CliRunner)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from etl.cli import app


def newsetl(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env=env)
