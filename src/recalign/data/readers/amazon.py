"""Amazon 2014 (McAuley) sources, in two layouts.

(a) S3-Rec/P5 files: `sequences.txt` (`user item item ...`, chronological, integer ids)
    and `items.tsv` (`item_id asin title short_text attributes`). The source's integer
    item ids are kept; there are no ratings or timestamps.
(b) McAuley's raw files: `reviews_<Category>_5.json.gz` (JSON lines with `reviewerID`,
    `asin`, `overall`, `unixReviewTime`) and `meta_<Category>.json.gz` (one Python-literal
    dict per line — not JSON — with `asin`, `title`, `brand`, `categories`, ...).
"""

from __future__ import annotations

import ast
import io
import json
import logging
import re
from pathlib import Path

import polars as pl

from recalign.constants import BRAND, CATEGORIES, ITEM_ID, SHORT_TEXT, SOURCE_ID, TITLE
from recalign.data.domain import DOMAINS
from recalign.data.readers.base import (
    ITEM_KEY,
    RAW_ITEM,
    RAW_LINE,
    RAW_ORDER,
    RAW_RATING,
    RAW_TIMESTAMP,
    RAW_USER,
    STARS_1_TO_5,
    SourceData,
    cast_columns,
    check_ratings,
    find_file,
    lines_frame,
    read_text,
    split_fields,
)
from recalign.errors import DataFormatError

logger = logging.getLogger(__name__)

S3REC_SEQUENCES = "sequences.txt"
S3REC_ITEMS = "items.tsv"
_ITEMS_COLUMNS = ("item_id", "asin", "title", "short_text", "attributes")
_REVIEW_FIELDS = {
    "reviewerID": pl.Utf8,
    "asin": pl.Utf8,
    "overall": pl.Float64,
    "unixReviewTime": pl.Int64,
}
_META_ASIN = re.compile(r"""['"]asin['"]\s*:\s*['"]([^'"]+)['"]""")


def is_s3rec_layout(directory: Path) -> bool:
    return (directory / S3REC_SEQUENCES).is_file() and (directory / S3REC_ITEMS).is_file()


def is_raw_layout(directory: Path) -> bool:
    return any(directory.glob("reviews_*.json.gz"))


# --- (a) S3-Rec layout -------------------------------------------------------------


def read_s3rec_sequences(path: Path) -> pl.DataFrame:
    """`user item item ...` lines -> one row per interaction, in file order."""
    frame = lines_frame(read_text(path))
    tokens = frame.with_columns(pl.col("text").str.strip_chars().str.split(" ").alias("tokens"))
    short = tokens.get_column("tokens").list.len() < 2
    if short.any():
        row = tokens.filter(short).row(0, named=True)
        raise DataFormatError(
            f"expected `user_id item_id ...`, found {row['text'][:80]!r}",
            path=path,
            line=row["line"],
        )
    exploded = (
        tokens.select("line", pl.col("tokens").list.first().alias(RAW_USER), "tokens")
        .with_columns(pl.col("tokens").list.slice(1))
        .explode("tokens")
        .rename({"tokens": RAW_ITEM})
        .filter(pl.col(RAW_ITEM).str.len_chars() > 0)  # doubled spaces
    )
    checked = cast_columns(exploded, path, {RAW_USER: pl.Int64, RAW_ITEM: pl.Int64})
    duplicated = tokens.select(pl.col("tokens").list.first()).to_series().is_duplicated()
    if duplicated.any():
        row = tokens.filter(duplicated).row(1, named=True)
        raise DataFormatError(
            f"user {row['tokens'][0]} appears on more than one line", path=path, line=row["line"]
        )
    return checked.select(
        pl.col(RAW_USER).cast(pl.Utf8),
        pl.col(RAW_ITEM).cast(pl.Utf8),
        pl.int_range(pl.len(), dtype=pl.Int64).alias(RAW_ORDER),
    )


def split_attributes(attributes: pl.Series) -> tuple[pl.Series, pl.Series]:
    """`brand|category|...` -> (brand, categories).

    The files omit the brand for some items (`Makeup|Lips`), so the first name counts as
    a brand only when it never appears as a category (in position 2+) of any item.
    """
    parts = (
        attributes.fill_null("").str.split("|").list.eval(pl.element().filter(pl.element() != ""))
    )
    category_names = parts.list.slice(1).explode().drop_nulls().unique()
    first = parts.list.first()
    is_brand = first.is_not_null() & ~first.is_in(category_names.implode())
    brand = pl.select(pl.when(is_brand).then(first).otherwise(None)).to_series().rename(BRAND)
    categories = (
        pl.select(pl.when(is_brand).then(parts.list.slice(1)).otherwise(parts))
        .to_series()
        .rename(CATEGORIES)
    )
    return brand, categories


def read_s3rec_items(path: Path) -> pl.DataFrame:
    frame = lines_frame(read_text(path))
    header = frame.row(0, named=True) if frame.height else {"text": "", "line": 1}
    names = header["text"].split("\t")
    if tuple(names[:2]) != _ITEMS_COLUMNS[:2]:
        missing = next(c for c in _ITEMS_COLUMNS if c not in names)
        raise DataFormatError(
            f"expected a header starting `item_id<TAB>asin`, missing column {missing!r}",
            path=path,
            line=header["line"],
            field=missing,
        )
    table = split_fields(frame.slice(1), path, sep="\t", names=names, dtypes={"item_id": pl.Int64})
    ids = table.get_column("item_id")
    if ids.is_duplicated().any():
        row = table.filter(ids.is_duplicated()).row(1, named=True)
        raise DataFormatError(f"duplicate item_id {row['item_id']}", path=path, line=row["line"])
    columns = [
        pl.col("item_id").cast(pl.Utf8).alias(ITEM_KEY),
        pl.col("asin").alias(SOURCE_ID),
        pl.col("item_id").alias(ITEM_ID),
    ]
    for name in (TITLE, SHORT_TEXT):
        columns.append(pl.col(name) if name in names else pl.lit(None, pl.Utf8).alias(name))
    items = table.select(columns)
    if "attributes" in names:
        brand, categories = split_attributes(table.get_column("attributes"))
        items = items.with_columns(brand, categories)
    return items


def read_s3rec(directory: Path) -> SourceData:
    """The S3-Rec/P5 layout: chronological sequences with the source's item ids."""
    sequences_path = directory / S3REC_SEQUENCES
    items_path = directory / S3REC_ITEMS
    interactions = read_s3rec_sequences(sequences_path)
    items = read_s3rec_items(items_path)
    return SourceData(
        domain=DOMAINS["products"],
        interactions=interactions,
        items=items,
        files={"sequences": sequences_path, "items": items_path},
        keep_item_ids=True,
    )


# --- (b) raw McAuley files ---------------------------------------------------------


def _not_json(constant: str) -> float:
    # Python's json accepts NaN and Infinity; JSON (and polars) do not.
    raise ValueError(f"{constant} is not a JSON number")


def _locate_bad_review(text: str, path: Path, error: Exception) -> DataFormatError:
    """Re-scan line by line (only after a fast parse failed) to name the bad line."""
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, parse_constant=_not_json)
        except json.JSONDecodeError as bad:
            return DataFormatError(f"invalid JSON ({bad.msg})", path=path, line=number)
        except ValueError as bad:
            return DataFormatError(f"invalid JSON ({bad})", path=path, line=number)
        if not isinstance(record, dict):
            return DataFormatError("expected a JSON object", path=path, line=number)
        for name in _REVIEW_FIELDS:
            if record.get(name) is None:
                return DataFormatError(
                    f"missing field {name!r}", path=path, line=number, field=name
                )
    return DataFormatError(f"cannot read reviews ({error})", path=path)


def read_reviews(path: Path) -> pl.DataFrame:
    """Reviews (JSON lines, gzip) -> user, item, order, timestamp, rating."""
    text = read_text(path)
    try:
        table = pl.read_ndjson(io.StringIO(text), schema=_REVIEW_FIELDS, ignore_errors=False)
    except Exception as error:  # polars raises several error types for bad JSON
        raise _locate_bad_review(text, path, error) from error
    # A null in a required field is a record that lacks it: name the line.
    nulls = table.select(pl.any_horizontal(pl.all().is_null())).to_series()
    if nulls.any():
        raise _locate_bad_review(text, path, ValueError("missing fields"))
    lines = _record_lines(text, table.height)
    check_ratings(
        table.get_column("overall"), path, lines=lines, field="overall", scale=STARS_1_TO_5
    )
    interactions = table.select(
        pl.col("reviewerID").alias(RAW_USER),
        pl.col("asin").alias(RAW_ITEM),
        pl.int_range(pl.len(), dtype=pl.Int64).alias(RAW_ORDER),
        pl.col("unixReviewTime").alias(RAW_TIMESTAMP),
        pl.col("overall").alias(RAW_RATING),
    )
    return interactions if lines is None else interactions.with_columns(lines.alias(RAW_LINE))


def _record_lines(text: str, records: int) -> pl.Series | None:
    """The 1-based line of each JSON record (blank lines hold none); None in the
    unexpected case that non-blank lines and parsed records do not pair up."""
    lines = pl.Series([text]).str.split("\n").explode()
    numbers = pl.int_range(1, lines.len() + 1, dtype=pl.Int64, eager=True)
    numbers = numbers.filter(lines.str.strip_chars().str.len_bytes() > 0)
    return numbers if numbers.len() == records else None


def _flatten_categories(value: object) -> list[str]:
    """`[["Beauty", "Makeup"], ["Beauty", "Nails"]]` -> unique names in first-seen order."""
    names: list[str] = []
    stack = [value]
    while stack:
        current = stack.pop(0)
        if isinstance(current, (list, tuple)):
            stack[:0] = list(current)
        elif isinstance(current, str) and current not in names:
            names.append(current)
    return names


def read_meta(path: Path, wanted: set[str]) -> pl.DataFrame:
    """Meta lines for the `wanted` ASINs only (a regex skips the rest before parsing)."""
    text = read_text(path)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        found = _META_ASIN.search(line)
        if found is None:
            if line.strip():
                raise DataFormatError(
                    "no 'asin' in meta record", path=path, line=number, field="asin"
                )
            continue
        if found.group(1) not in wanted:
            continue
        try:
            record = ast.literal_eval(line)
        except (ValueError, SyntaxError) as error:
            raise DataFormatError(
                f"not a Python-literal dict ({type(error).__name__})", path=path, line=number
            ) from error
        if not isinstance(record, dict):
            raise DataFormatError("expected a dict", path=path, line=number)
        rows.append(
            {
                ITEM_KEY: record["asin"],
                SOURCE_ID: record["asin"],
                TITLE: record.get("title"),
                SHORT_TEXT: None,
                BRAND: record.get("brand") or None,
                CATEGORIES: _flatten_categories(record.get("categories", [])),
                "price": float(record["price"])
                if isinstance(record.get("price"), (int, float))
                else None,
            }
        )
    schema = {
        ITEM_KEY: pl.Utf8,
        SOURCE_ID: pl.Utf8,
        TITLE: pl.Utf8,
        SHORT_TEXT: pl.Utf8,
        BRAND: pl.Utf8,
        CATEGORIES: pl.List(pl.Utf8),
        "price": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema).unique(ITEM_KEY, keep="first", maintain_order=True)


def read_raw(directory: Path) -> SourceData:
    """McAuley's raw 5-core reviews + meta (k-core filtering happens in `prepare`)."""
    reviews_path = find_file(
        directory, ["reviews_*_5.json.gz", "reviews_*.json.gz"], "reviews file"
    )
    category = reviews_path.name.removeprefix("reviews_").split(".")[0].removesuffix("_5")
    meta_path = find_file(directory, [f"meta_{category}.json.gz", "meta_*.json.gz"], "meta file")
    interactions = read_reviews(reviews_path)
    wanted = set(interactions.get_column(RAW_ITEM).unique().to_list())
    items = read_meta(meta_path, wanted)
    logger.info(
        "read %d reviews and meta for %d of %d items",
        interactions.height,
        items.height,
        len(wanted),
    )
    return SourceData(
        domain=DOMAINS["products"],
        interactions=interactions,
        items=items,
        files={"reviews": reviews_path, "meta": meta_path},
        log_file=reviews_path,
    )


def read_amazon(directory: Path) -> SourceData:
    """Either layout, detected from the files present."""
    if is_s3rec_layout(directory):
        return read_s3rec(directory)
    if is_raw_layout(directory):
        return read_raw(directory)
    raise DataFormatError(
        f"expected {S3REC_SEQUENCES} + {S3REC_ITEMS}, or reviews_<Category>_5.json.gz + "
        "meta_<Category>.json.gz",
        path=directory,
    )
