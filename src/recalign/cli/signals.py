"""How a command stops when an operator says so: Ctrl-C and SIGTERM alike.

SIGTERM is what `timeout`, Slurm and Kubernetes send before they kill a job. Its default
action ends the process on the spot: no `finally`, no clean-up of temporary files, no
manifest saying what happened. The command line makes it raise `KeyboardInterrupt`
instead, as Ctrl-C does, so every command unwinds the same way (writers remove their
temporary files; training saves a checkpoint, see `InterruptCallback`) and exits 130
with a message, never a traceback.
"""

from __future__ import annotations

import signal
from typing import Any

import typer
from typer.core import TyperGroup

INTERRUPTED_EXIT = 130


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def sigterm_as_ctrl_c() -> None:
    """From now on SIGTERM raises `KeyboardInterrupt` in the main thread.

    A SIGTERM the parent chose to ignore stays ignored; outside the main thread nothing
    changes (Python only handles signals there).
    """
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:
        pass


def interrupted_message(stop: BaseException) -> str:
    """What to print for an interruption: its own message (an `Interrupted`), or a word."""
    text = str(stop).strip()
    return f"interrupted: {text}" if text else "interrupted"


class InterruptibleGroup(TyperGroup):
    """A command group where Ctrl-C or SIGTERM inside any sub-command exits 130 with a
    message (older typer would print "Aborted!" and exit 1)."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as stop:
            typer.echo(interrupted_message(stop), err=True)
            raise typer.Exit(INTERRUPTED_EXIT) from None
