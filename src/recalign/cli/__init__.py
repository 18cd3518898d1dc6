"""The `recalign` command line: a thin layer over the Python API.

Sub-commands import their stage lazily (inside the command function), so that
`recalign data ...` starts without loading torch or transformers.

Errors a user can cause never end in a traceback:
- usage errors (unknown command or option, missing option, bad value) are click's to
  report: the app runs in click's standalone mode, which prints the usage line and one
  "Error: ..." paragraph and exits 2. Recent typer (0.29 here) vendors its own click, whose
  exceptions are not `click.ClickException`s, so catching those here would depend on
  the typer version; standalone mode works with both.
- a `RecalignError` (bad input found by the library) prints `error: ...`, exit 2;
- Ctrl-C or SIGTERM exits 130 with a message (`cli/signals.py`: SIGTERM is made to
  stop a command the way Ctrl-C does, so temporary files are cleaned up and training
  saves a checkpoint).
"""

from __future__ import annotations

import logging
import sys

import typer

from recalign.cli import baseline as baseline_cli
from recalign.cli import data as data_cli
from recalign.cli import evaluate as evaluate_cli
from recalign.cli import metrics as metrics_cli
from recalign.cli import pipeline as pipeline_cli
from recalign.cli import samples as samples_cli
from recalign.cli import serve as serve_cli
from recalign.cli import train as train_cli
from recalign.cli.signals import (
    INTERRUPTED_EXIT,
    InterruptibleGroup,
    interrupted_message,
    sigterm_as_ctrl_c,
)
from recalign.errors import RecalignError
from recalign.threads import THREADS_ENV, export_request

app = typer.Typer(
    name="recalign",
    cls=InterruptibleGroup,
    help="Align language models with recommendation knowledge.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # -h is help for every command: context settings are inherited by sub-commands.
    context_settings={"help_option_names": ["-h", "--help"]},
    # click's plain help and error format: flags show no type (typer 0.29's rich help
    # labels every flag `<bool>`), and a usage error is one "Error: ..." paragraph.
    rich_markup_mode=None,
)
app.add_typer(data_cli.app, name="data")
app.add_typer(samples_cli.app, name="samples")
app.command("train")(train_cli.train)
app.add_typer(train_cli.models_app, name="models")
app.add_typer(evaluate_cli.app, name="evaluate")
app.add_typer(metrics_cli.app, name="metrics")
app.command("baseline")(baseline_cli.baseline)
app.command("run")(pipeline_cli.run)
app.command("ablate")(pipeline_cli.ablate)
app.command("report")(pipeline_cli.report)
app.command("recommend")(serve_cli.recommend)
app.command("serve")(serve_cli.serve)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    threads: str | None = typer.Option(
        None,
        "--threads",
        metavar="N|auto",
        help="CPU threads for models. Default: $" + THREADS_ENV + ", else chosen from "
        "the cores other processes leave free (1 on a busy machine).",
    ),
) -> None:
    # Before torch or numpy is imported, so their native pools start at this size.
    export_request(threads)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    """Entry point: usage errors exit 2 (click), a `RecalignError` 2, Ctrl-C or SIGTERM 130."""
    sigterm_as_ctrl_c()
    try:
        app()
    except RecalignError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except KeyboardInterrupt as stop:  # outside a command (while parsing, importing)
        typer.echo(interrupted_message(stop), err=True)
        sys.exit(INTERRUPTED_EXIT)
