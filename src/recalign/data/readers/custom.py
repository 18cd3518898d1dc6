"""Your own interaction log: CSV or Parquet, with configurable column names.

Interactions need a user and an item column; a timestamp and a rating column are
optional. Without a timestamp, each user's rows keep file order. Ratings must be finite
and within the given scale (`rating_scale`, e.g. (1, 5)), or non-negative without one.
Text files must be UTF-8; an undecodable byte is reported with its line and offset. The
optional items file maps the item column to a title (and any other metadata, kept as
is). What the items are (`domain`: movies, products, ... or your own words) sets the
prompts' words; by default they are neutral ("items", "interacted with"). Item ids
are assigned by `prepare`: dense from 1 in sorted source-id order (numeric order when
every id is an integer), so they do not depend on the order of the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recalign.constants import BRAND, CATEGORIES, ITEM_ID, SHORT_TEXT, SOURCE_ID, TITLE
from recalign.data.domain import Domain, parse_domain
from recalign.data.readers.base import (
    ITEM_KEY,
    PARQUET_SUFFIXES,
    RAW_ITEM,
    RAW_LINE,
    RAW_ORDER,
    RAW_RATING,
    RAW_TIMESTAMP,
    RAW_USER,
    RatingScale,
    SourceData,
    check_ratings,
    check_utf8,
    require_columns,
)
from recalign.errors import DataFormatError


@dataclass(frozen=True)
class CustomColumns:
    """Column names in the user's files."""

    user: str = "user_id"
    item: str = "item_id"
    timestamp: str | None = None
    rating: str | None = None
    title: str = "title"
    short_text: str | None = None


def _locate_ragged_line(path: Path, separator: str) -> DataFormatError | None:
    """After a fast parse failed: the first line whose field count differs from the header."""
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle, delimiter=separator)
        header = next(reader, [])
        for row in reader:
            if row and len(row) != len(header):
                return DataFormatError(
                    f"expected {len(header)} fields (as in the header), found {len(row)}",
                    path=path,
                    line=reader.line_num,
                )
    return None


def read_table(path: Path) -> pl.DataFrame:
    """CSV (or TSV) or Parquet, chosen by suffix; parse errors name the file."""
    if not path.is_file():
        raise DataFormatError("file not found", path=path)
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            return pl.read_parquet(path)
        if suffix in {".csv", ".tsv", ".txt"}:
            separator = "\t" if suffix == ".tsv" else ","
            # Everything as text first: ids may be strings, and a bad number must be
            # reported with its line rather than silently inferred as a string column.
            return pl.read_csv(path, separator=separator, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as error:
        if suffix not in PARQUET_SUFFIXES:
            check_utf8(path)  # polars says only "invalid utf-8 sequence": say where
            located = _locate_ragged_line(path, "\t" if suffix == ".tsv" else ",")
            if located is not None:
                raise located from error
        raise DataFormatError(f"cannot read table ({error})", path=path) from error
    raise DataFormatError("unsupported file type (use .csv, .tsv or .parquet)", path=path)


def _numeric(
    table: pl.DataFrame, column: str, dtype: pl.DataType, path: Path, header_lines: int
) -> pl.Series:
    values = table.get_column(column)
    if values.dtype.is_numeric():
        converted = values.cast(dtype, strict=False)
        bad = converted.is_null()
        if dtype.is_integer() and values.dtype.is_float():
            bad = bad | (values != values.floor())  # 1.5 would be truncated to 1
    else:
        text = values.cast(pl.Utf8).str.strip_chars()
        as_float = text.cast(pl.Float64, strict=False)
        converted = as_float.cast(dtype, strict=False)
        # For integers, "nan", "inf" and out-of-range values convert to null: bad too.
        bad = converted.is_null()
        if dtype.is_integer():
            bad = bad | (as_float != as_float.floor())
    if bad.any():
        row = int(bad.arg_true()[0])
        # Line numbers for CSV count the header; Parquet has rows, not lines.
        kind = "line" if header_lines else "row"
        raise DataFormatError(
            f"expected a number, found {values[row]!r} ({kind} {row + 1 + header_lines})",
            path=path,
            line=row + 1 + header_lines if header_lines else None,
            field=column,
        )
    return converted


def read_custom(
    interactions_path: Path,
    items_path: Path | None = None,
    columns: CustomColumns | None = None,
    rating_scale: RatingScale | None = None,
    domain: str | Mapping[str, Any] | Domain | None = None,
) -> SourceData:
    """`domain`: what the items are (a `parse_domain` value); neutral words by default."""
    columns = columns or CustomColumns()
    words = parse_domain(domain)  # checked before the files are read
    table = read_table(interactions_path)
    header_lines = 0 if interactions_path.suffix.lower() in PARQUET_SUFFIXES else 1
    required = [columns.user, columns.item]
    require_columns(table, required, interactions_path)
    for optional in (columns.timestamp, columns.rating):
        if optional is not None:
            require_columns(table, [optional], interactions_path)
    for column in required:
        nulls = table.get_column(column).is_null()
        if nulls.any():
            row = int(nulls.arg_true()[0])
            raise DataFormatError(
                "empty value",
                path=interactions_path,
                line=row + 1 + header_lines if header_lines else None,
                field=column,
            )
    # CSV lines count the header (a quoted field spanning lines would shift them);
    # Parquet rows count from 1.
    lines = pl.int_range(1 + header_lines, table.height + 1 + header_lines, eager=True)
    selected = [
        table.get_column(columns.user).cast(pl.Utf8).alias(RAW_USER),
        table.get_column(columns.item).cast(pl.Utf8).alias(RAW_ITEM),
        pl.int_range(table.height, dtype=pl.Int64, eager=True).alias(RAW_ORDER),
        lines.cast(pl.Int64).alias(RAW_LINE),
    ]
    if columns.timestamp is not None:
        selected.append(
            _numeric(table, columns.timestamp, pl.Int64, interactions_path, header_lines).alias(
                RAW_TIMESTAMP
            )
        )
    if columns.rating is not None:
        ratings = _numeric(table, columns.rating, pl.Float64, interactions_path, header_lines)
        check_ratings(
            ratings,
            interactions_path,
            lines=lines,
            field=columns.rating,
            scale=rating_scale,
            unit="line" if header_lines else "row",
        )
        selected.append(ratings.alias(RAW_RATING))
    interactions = pl.DataFrame(selected)
    files = {"interactions": interactions_path}

    if items_path is None:
        items = pl.DataFrame(
            {ITEM_KEY: [], SOURCE_ID: [], TITLE: []},
            schema={ITEM_KEY: pl.Utf8, SOURCE_ID: pl.Utf8, TITLE: pl.Utf8},
        )
    else:
        raw_items = read_table(items_path)
        require_columns(raw_items, [columns.item], items_path)
        renames = {columns.title: TITLE}
        if columns.short_text:
            renames[columns.short_text] = SHORT_TEXT
        if columns.title not in raw_items.columns and columns.short_text is None:
            require_columns(raw_items, [columns.title], items_path)
        keys = raw_items.get_column(columns.item).cast(pl.Utf8)
        if keys.is_duplicated().any():
            row = int(keys.is_duplicated().arg_true()[1])
            raise DataFormatError(
                f"duplicate item {keys[row]!r}", path=items_path, field=columns.item
            )
        items = raw_items.rename({k: v for k, v in renames.items() if k in raw_items.columns})
        # The item column becomes `key`/`source_id`; a metadata column named like one of
        # the columns we build (`key`, `source_id`, `item_id`) would clash, so it goes.
        clashing = [c for c in (ITEM_KEY, SOURCE_ID, ITEM_ID) if c in items.columns]
        items = items.drop(list(dict.fromkeys([columns.item, *clashing])), strict=False)
        items = items.with_columns(keys.alias(ITEM_KEY), keys.alias(SOURCE_ID))
        if CATEGORIES in items.columns and items.schema[CATEGORIES] == pl.Utf8:
            items = items.with_columns(pl.col(CATEGORIES).str.split("|"))
        if BRAND in items.columns:
            items = items.with_columns(pl.col(BRAND).cast(pl.Utf8))
        files["items"] = items_path
    return SourceData(
        interactions=interactions,
        items=items,
        files=files,
        log_file=interactions_path,
        domain=words,
    )
