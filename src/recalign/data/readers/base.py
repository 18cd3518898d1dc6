"""What every reader returns, and the fast-but-precise parsing helpers they share.

Readers parse a whole file at once with polars (vectorised) and validate every field
with vectorised checks; when a check fails, the first failing row gives the exact
line number, so a malformed line is located without a slow per-line parse.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from recalign.data.domain import NEUTRAL, Domain
from recalign.errors import DataFormatError, MissingColumnError

# Columns of `SourceData.interactions` (internal to the data stage).
RAW_USER = "user"  # the source's user id, as text
RAW_ITEM = "item"  # the source's item key, as text; matches `SourceData.items[ITEM_KEY]`
RAW_ORDER = "order"  # position in the source file: the tie-breaker that keeps sorts stable
RAW_TIMESTAMP = "timestamp"  # Int64 Unix seconds (optional)
RAW_RATING = "rating"  # Float64 (optional)
# Int64 (optional): the record's 1-based line in `SourceData.log_file` (its row, for
# Parquet), so `prepare` can say where a dropped duplicate was.
RAW_LINE = "line"
ITEM_KEY = "key"

# (lowest, highest) rating a source allows. GroupLens and McAuley's Amazon reviews both
# use whole stars 1..5; a custom log is checked against the scale its owner gives, or
# else only for finite, non-negative values.
RatingScale = tuple[float, float]
STARS_1_TO_5: RatingScale = (1.0, 5.0)
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})


def line_unit(path: Path) -> str:
    """What a record number in `path` counts: Parquet has rows, text files lines."""
    return "row" if path.suffix.lower() in PARQUET_SUFFIXES else "line"


@dataclass
class SourceData:
    """A source read into two tables, before ordering, filtering and id assignment.

    - `interactions`: `user`, `item`, `order`, and `timestamp` / `rating` when the
      source has them. Without timestamps, `order` is the chronological order.
    - `items`: `key` (matches `interactions.item`), `source_id`, optional `item_id`
      (when the source's integer ids are kept), `title`, `short_text` and metadata.
    - `files`: the input files, hashed into the manifest.
    - `keep_item_ids`: use `items.item_id` as is (S3-Rec files) instead of assigning ids.
    - `log_file`: the file `interactions.line` numbers refer to (when they are given).
    - `domain`: what the items are and what users do with them (the prompts' words).
    """

    interactions: pl.DataFrame
    items: pl.DataFrame
    files: dict[str, Path] = field(default_factory=dict)
    keep_item_ids: bool = False
    report: dict[str, object] = field(default_factory=dict)
    log_file: Path | None = None
    domain: Domain = NEUTRAL


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """A whole text file (gzip-aware), with a clear error for undecodable bytes."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataFormatError(f"cannot read file: {error.strerror or error}", path=path) from error
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise DataFormatError(f"not a valid gzip file ({error})", path=path) from error
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise decode_error(path, raw, error, encoding) from error


def decode_error(
    path: Path, raw: bytes, error: UnicodeDecodeError, encoding: str = "utf-8"
) -> DataFormatError:
    """Name the line and byte offset of the first byte that does not decode."""
    line = raw.count(b"\n", 0, error.start) + 1
    in_line = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
    bad = " ".join(f"0x{byte:02x}" for byte in raw[error.start : error.end])
    return DataFormatError(
        f"cannot decode {bad} at byte offset {error.start} (byte {in_line} of the line) as "
        f"{encoding} ({error.reason}); re-save the file as {encoding}",
        path=path,
        line=line,
    )


def check_utf8(path: Path) -> None:
    """Raise `decode_error` for a file that is not valid UTF-8 (one pass, after a
    faster reader already failed, to say where)."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise decode_error(path, raw, error) from error


def lines_frame(text: str, first_line: int = 1) -> pl.DataFrame:
    """Non-blank lines with their 1-based line numbers (numbers count blank lines too)."""
    lines = pl.Series("text", text.splitlines(), dtype=pl.Utf8)
    frame = pl.DataFrame(
        {"line": pl.int_range(first_line, first_line + len(lines), eager=True), "text": lines}
    )
    return frame.filter(pl.col("text").str.strip_chars().str.len_chars() > 0)


def _first_bad(frame: pl.DataFrame, mask: pl.Series) -> tuple[int, str]:
    row = frame.filter(mask).row(0, named=True)
    return int(row["line"]), str(row["text"])


def split_fields(
    frame: pl.DataFrame,
    path: Path,
    *,
    sep: str,
    names: Sequence[str],
    dtypes: Mapping[str, pl.DataType] | None = None,
    min_fields: int | None = None,
) -> pl.DataFrame:
    """Split each line into `names` and cast `dtypes`; a bad line raises with its number.

    Lines must have exactly `len(names)` fields, or at least `min_fields` (the extra
    ones are ignored) when given. Returns the columns plus `line`.
    """
    parts = frame.get_column("text").str.split(sep)
    counts = parts.list.len()
    expected = len(names)
    bad = counts < min_fields if min_fields is not None else counts != expected
    if bad.any():
        line, text = _first_bad(frame, bad)
        got = text.count(sep) + 1
        raise DataFormatError(
            f"expected {expected} {sep!r}-separated fields, found {got}: {text[:80]!r}",
            path=path,
            line=line,
        )
    columns = {"line": frame.get_column("line")}
    for position, name in enumerate(names):
        columns[name] = parts.list.get(position, null_on_oob=True).rename(name)
    table = pl.DataFrame(columns)
    return cast_columns(table, path, dtypes or {})


def cast_columns(
    table: pl.DataFrame, path: Path, dtypes: Mapping[str, pl.DataType]
) -> pl.DataFrame:
    """Cast text columns to numbers; the first value that does not parse is reported."""
    casts = []
    for name, dtype in dtypes.items():
        column = table.get_column(name)
        stripped = column.str.strip_chars()
        if dtype.is_integer():
            # Accept "881250949.0" (RecBole float timestamps) but not "12abc" or "1.5";
            # "nan", "inf" and values beyond the integer type do not convert (null).
            as_float = stripped.cast(pl.Float64, strict=False)
            converted = as_float.cast(dtype, strict=False)
            bad = converted.is_null() | (as_float != as_float.floor())
        else:
            converted = stripped.cast(dtype, strict=False)
            bad = converted.is_null()
        bad = bad & column.is_not_null() | column.is_null()
        if bad.any():
            row = table.filter(bad).row(0, named=True)
            kind = "an integer" if dtype.is_integer() else "a number"
            raise DataFormatError(
                f"expected {kind}, found {row[name]!r}",
                path=path,
                line=int(row["line"]),
                field=name,
            )
        casts.append(converted.rename(name))
    return table.with_columns(casts) if casts else table


def check_ratings(
    ratings: pl.Series,
    path: Path,
    *,
    lines: pl.Series | None,
    field: str,
    scale: RatingScale | None = None,
    unit: str = "line",
) -> None:
    """Every rating finite and within `scale` (without one: non-negative).

    A NaN or infinite rating would reach prompts as `nan` and the rating metrics as
    garbage, so the first bad one is reported with its file, line (or `unit` number)
    and field. Nulls are the caller's business (they are checked where parsed).
    """
    low, high = scale if scale is not None else (0.0, float("inf"))
    values = ratings.cast(pl.Float64)
    bad = ~values.is_finite() | (values < low) | (values > high)
    bad = bad.fill_null(False)
    if not bad.any():
        return
    row = int(bad.arg_true()[0])
    wanted = f" number in [{low:g}, {high:g}]" if scale is not None else ", non-negative number"
    number = int(lines[row]) if lines is not None else None
    raise DataFormatError(
        f"a rating must be a finite{wanted}, found {values[row]!r}"
        + (f" ({unit} {number})" if number is not None and unit != "line" else ""),
        path=path,
        line=number if unit == "line" else None,
        field=field,
    )


def require_columns(table: pl.DataFrame, columns: Sequence[str], path: Path) -> None:
    for column in columns:
        if column not in table.columns:
            raise MissingColumnError(column, path=path, available=table.columns)


def find_file(directory: Path, candidates: Sequence[str], what: str) -> Path:
    """The first of `candidates` (names or glob patterns) present in `directory`."""
    for pattern in candidates:
        matches = sorted(directory.glob(pattern))
        if matches:
            return matches[0]
    raise DataFormatError(f"no {what} found (looked for {', '.join(candidates)})", path=directory)
