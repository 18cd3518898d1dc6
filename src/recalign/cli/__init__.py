"""The `recalign` command line: a thin layer over the Python API.

Sub-commands import their stage lazily (inside the command function), so that
`recalign data ...` starts without loading torch or transformers.
"""

from __future__ import annotations

import logging
import sys

import typer

from recalign.cli import data as data_cli
from recalign.errors import RecalignError

app = typer.Typer(
    name="recalign",
    help="Align language models with recommendation knowledge.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_cli.app, name="data")


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
) -> None:
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
