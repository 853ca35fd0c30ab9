"""The ``newsetl`` command line (typer + rich). The only place that prints.

The commands are in ``article_cmds`` (extract, eval), ``lake_cmds`` (query, compact, ddl, report)
and ``run_cmds`` (ingest, run, serve); what they share is in ``common``. Each command imports what
it uses in its body: ``--help`` loads no pipeline.
"""

from __future__ import annotations

import logging
import sys

import typer
from rich.markup import escape

from etl.cli import article_cmds, lake_cmds, run_cmds
from etl.cli.common import err, os_error
from etl.errors import EtlError

log = logging.getLogger("etl.cli")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # errors are one line (EtlError); rich.traceback costs 50 ms
    help="newsetl: news pages in, clean schema-checked Parquet out.",
)
# the commands, in the order --help lists them
app.command()(article_cmds.extract)
app.command("eval")(article_cmds.evaluate_cmd)
app.command()(lake_cmds.query)
app.command()(lake_cmds.compact)
app.command()(lake_cmds.ddl)
app.command()(lake_cmds.report)
app.command()(run_cmds.ingest)
app.command()(run_cmds.run)
app.command()(run_cmds.serve)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # trafilatura logs a warning for every page it finds no text in; newsetl reports those
    # pages itself (an error row naming the file and the cause), so only its errors show
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    try:
        app()
    except EtlError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        sys.exit(2)
    except OSError as exc:
        err.print(f"[red]error:[/] {escape(os_error(exc))}")
        sys.exit(2)
