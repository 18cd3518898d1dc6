"""The `recalign` command line: a thin layer over the Python API.

Sub-commands import their stage lazily (inside the command function), so that
`recalign data ...` starts without loading torch or transformers.
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
from recalign.errors import RecalignError
from recalign.threads import THREADS_ENV, export_request

app = typer.Typer(
    name="recalign",
    help="Align language models with recommendation knowledge.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
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
    """Entry point: run the app; a `RecalignError` becomes a message and exit status 2."""
    try:
        app(standalone_mode=False)
    except RecalignError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as error:  # click usage errors
        import click

        if isinstance(error, click.exceptions.ClickException):
            error.show()
            sys.exit(error.exit_code)
        raise
