"""Exceptions with messages a user can act on.

Every error the library raises on bad input is a `RecalignError`; the CLI prints its
message (no traceback) and exits with status 2. An operator's Ctrl-C or SIGTERM ends a
command with `Interrupted` (exit 130).
"""

from __future__ import annotations

from pathlib import Path


class Interrupted(KeyboardInterrupt):
    """An operator stopped a command (Ctrl-C or SIGTERM); the message says what was kept.

    A `KeyboardInterrupt`, not a `RecalignError`: it passes through `except Exception`
    like Ctrl-C does. The CLI prints its message and exits 130. `resumable`: whether
    running the same command again continues from a checkpoint rather than starting over.
    """

    def __init__(self, message: str, *, resumable: bool = False) -> None:
        super().__init__(message)
        self.resumable = resumable


class RecalignError(Exception):
    """Base class: bad input or configuration, explained for the user."""


class DataFormatError(RecalignError):
    """A file (and, where known, a line or field) that cannot be read as expected."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.line = line
        self.field = field
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class MissingColumnError(DataFormatError):
    """A table lacks a required column."""

    def __init__(self, column: str, *, path: str | Path | None = None, available=()) -> None:
        have = ", ".join(map(str, available)) or "none"
        super().__init__(
            f"missing column {column!r} (columns found: {have})", path=path, field=column
        )


class ConfigError(RecalignError):
    """A configuration value that is unknown, of the wrong type or out of range."""


class DownloadError(RecalignError):
    """A download failed, was interrupted, or did not match its checksum."""


class IncompatibleArtifactError(RecalignError):
    """Two artefacts that must belong together do not (e.g. samples of another dataset)."""
