"""`recalign data ...`: list, prepare and describe datasets."""

from __future__ import annotations

import typer

app = typer.Typer(help="Prepare datasets and inspect them.", no_args_is_help=True)
