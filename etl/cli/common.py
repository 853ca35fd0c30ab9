"""What every ``newsetl`` command shares: the consoles, the common options, progress, times."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from etl.records import Interval

if TYPE_CHECKING:
    from rich.progress import Progress

err = Console(stderr=True, soft_wrap=True)  # messages name paths and URLs: never wrap them
out = Console(highlight=False, soft_wrap=True)

LakeOpt = Annotated[str | None, typer.Option(help="Lake URI (default: $NEWSETL_LAKE or ./lake).")]
StartOpt = Annotated[
    str | None, typer.Option(help="Interval start (ISO); default: last full hour.")
]
EndOpt = Annotated[str | None, typer.Option(help="Interval end (ISO); default: start + 1 h.")]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers", "-w", min=1, help="Worker processes (default: $NEWSETL_WORKERS or 1)."
    ),
]


def progress(total: int | None, label: str) -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _parse_time(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{what}: not an ISO-8601 time: {value!r}") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc} (local scratch space: $TMPDIR; nothing was published)"


def check_day(value: str, flag: str) -> None:
    """A YYYY-MM-DD option, or exit 2 naming it."""
    try:
        date.fromisoformat(value)
    except ValueError:
        err.print(f"[red]{flag} {escape(value)}: not a date (YYYY-MM-DD)")
        raise typer.Exit(2) from None


def parse_interval(start: str | None, end: str | None) -> Interval:
    s, e = _parse_time(start, "--start"), _parse_time(end, "--end")
    if s is None:
        return Interval.last_complete_hour() if e is None else Interval(e - timedelta(hours=1), e)
    try:
        return Interval(s, e or s + timedelta(hours=1))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
