"""Reading the JSON, JSON-lines and Parquet files the stages write, with errors that name them.

A truncated or corrupt file — a killed writer, a full disk, a bad copy — surfaces here as
a `DataFormatError` naming the file (and the line, for JSON lines) instead of a
traceback from inside json, polars or pyarrow. Every stage reads its inputs through these.

Parquet keeps its footer (schema, row groups) at the end of the file, so truncation is
caught as soon as a file is opened; `scan_parquet` checks the footer before returning
its lazy query. Damage inside a data page shows only when that page is decoded: the
eager readers here catch it; a lazy query collected elsewhere reports it there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from recalign.errors import DataFormatError, RecalignError


# --- JSON ----------------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecalignError(f"{path} does not exist") from None
    except UnicodeDecodeError as error:
        raise DataFormatError(
            f"not UTF-8 text (byte {error.start}): damaged or not a JSON file", path=path
        ) from None
    except OSError as error:
        raise DataFormatError(f"cannot be read ({error.strerror or error})", path=path) from None


def read_json(path: str | Path) -> Any:
    """The JSON value in `path`; a `DataFormatError` naming the file and line if damaged."""
    path = Path(path)
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataFormatError(
            f"not valid JSON ({error.msg}, column {error.colno}); the file is damaged or was "
            "cut short",
            path=path,
            line=error.lineno,
        ) from None


def read_json_object(path: str | Path) -> dict[str, Any]:
    """`read_json` of a file that must hold one JSON object (a manifest, metrics, stats)."""
    value = read_json(path)
    if not isinstance(value, dict):
        raise DataFormatError(f"expected a JSON object, found {type(value).__name__}", path=path)
    return value


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of a JSON-lines file."""
    path = Path(path)
    if not path.is_file():
        raise RecalignError(f"{path} does not exist")
    with open(path, encoding="utf-8") as handle:
        line_no = 0
        try:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DataFormatError(
                        f"not valid JSON ({error.msg}, column {error.colno}); the line is "
                        "damaged or was cut short",
                        path=path,
                        line=line_no,
                    ) from None
                yield line_no, value
        except UnicodeDecodeError:
            raise DataFormatError(
                "not UTF-8 text: damaged or not a JSON-lines file", path=path, line=line_no + 1
            ) from None


def read_jsonl(path: str | Path) -> list[Any]:
    """Every value of a JSON-lines file, in order."""
    return [value for _, value in iter_jsonl(path)]


# --- Parquet -------------------------------------------------------------------------------
def _parquet_errors() -> tuple[type[BaseException], ...]:
    import polars as pl
    import pyarrow as pa

    # What a damaged file raises: polars' ComputeError ("parquet: File out of
    # specification"), pyarrow's ArrowInvalid or IO error. Not polars' schema or type
    # errors, which are about the query, not the file.
    return (pl.exceptions.ComputeError, pa.ArrowException, OSError)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


@contextmanager
def parquet_errors(path: str | Path) -> Iterator[None]:
    """Around a read of the Parquet file `path`: its failures become a `DataFormatError`
    naming the file. Keep the block to the read itself."""
    path = Path(path)
    if not path.is_file():
        raise RecalignError(f"{path} does not exist")
    try:
        yield
    except _parquet_errors() as error:
        raise DataFormatError(
            f"not a readable Parquet file ({_first_line(error)}); it is damaged or was cut "
            "short: write it again",
            path=path,
        ) from None


def read_parquet(path: str | Path, **kwargs: Any) -> Any:
    """`polars.read_parquet`, with damage reported against the file."""
    import polars as pl

    with parquet_errors(path):
        return pl.read_parquet(path, **kwargs)


def scan_parquet(path: str | Path, **kwargs: Any) -> Any:
    """`polars.scan_parquet` of a file whose footer has been checked (see the module doc)."""
    import polars as pl

    check_parquet(path)
    return pl.scan_parquet(path, **kwargs)


def parquet_file(path: str | Path, **kwargs: Any) -> Any:
    """A `pyarrow.parquet.ParquetFile` (footer read), with damage reported against the file."""
    import pyarrow.parquet as pq

    with parquet_errors(path):
        return pq.ParquetFile(path, **kwargs)


def record_batches(path: str | Path, batches: Iterator[Any]) -> Iterator[Any]:
    """The batches of a pyarrow `iter_batches` over `path`, damage reported against it."""
    while True:
        with parquet_errors(path):
            batch = next(batches, None)
        if batch is None:
            return
        yield batch


def check_parquet(path: str | Path) -> None:
    """Read the footer of a Parquet file: a truncated or foreign file fails here, cheaply."""
    import pyarrow.parquet as pq

    with parquet_errors(path):
        pq.read_metadata(path)
