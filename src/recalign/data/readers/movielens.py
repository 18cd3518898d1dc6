"""MovieLens (GroupLens) in three layouts, detected from the files present.

- ML-100K: `u.data` (tab: user, item, rating, timestamp) + `u.item` (`|`, latin-1:
  id, "Title (Year)", release date, video date, URL, 19 genre flags).
- ML-1M: `ratings.dat` (`::`) + `movies.dat` (`::`, latin-1: id, "Title (Year)", genres).
- RecBole atomic files: `*.inter` + `*.item`, tab-separated with typed headers
  (`user_id:token item_id:token rating:float timestamp:float`).
Ratings and timestamps are kept; the reader keeps file order, and `prepare` sorts each
user's interactions by timestamp with a stable sort (ties keep file order). Ratings must
be finite whole-star values in 1..5 (a bad one is reported with its line).
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from recalign.constants import CATEGORIES, SOURCE_ID, TITLE
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
    check_ratings,
    find_file,
    lines_frame,
    read_text,
    require_columns,
    split_fields,
)
from recalign.errors import DataFormatError

logger = logging.getLogger(__name__)

RELEASE_YEAR = "release_year"
_GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_INTER_NAMES = ["user", "item", "rating", "timestamp"]
_INTER_DTYPES = {"user": pl.Int64, "item": pl.Int64, "rating": pl.Float64, "timestamp": pl.Int64}
_TITLE_YEAR = r"^(.*?)\s*\((\d{4})\)\s*$"


def _interactions(table: pl.DataFrame, path: Path) -> pl.DataFrame:
    """The interaction columns, after checking every (non-null) rating is 1..5."""
    lines = table.get_column("line")
    check_ratings(table.get_column("rating"), path, lines=lines, field="rating", scale=STARS_1_TO_5)
    return table.select(
        pl.col("user").cast(pl.Utf8).alias(RAW_USER),
        pl.col("item").cast(pl.Utf8).alias(RAW_ITEM),
        pl.int_range(pl.len(), dtype=pl.Int64).alias(RAW_ORDER),
        pl.col("timestamp").alias(RAW_TIMESTAMP),
        pl.col("rating").alias(RAW_RATING),
        pl.col("line").cast(pl.Int64).alias(RAW_LINE),
    )


def _split_title_year(table: pl.DataFrame, column: str) -> pl.DataFrame:
    """ "Toy Story (1995)" -> title "Toy Story", release_year "1995" (year kept apart so
    it can tell remakes apart instead of being part of every title)."""
    title = pl.col(column).str.strip_chars()
    year = title.str.extract(_TITLE_YEAR, 2)
    return table.with_columns(
        pl.when(year.is_not_null())
        .then(title.str.extract(_TITLE_YEAR, 1))
        .otherwise(title)
        .alias(TITLE),
        year.alias(RELEASE_YEAR),
    )


def _items(table: pl.DataFrame, path: Path) -> pl.DataFrame:
    ids = table.get_column("item")
    if ids.is_duplicated().any():
        row = table.filter(ids.is_duplicated()).row(1, named=True)
        raise DataFormatError(f"duplicate item id {row['item']}", path=path, line=row["line"])
    keep = [c for c in (TITLE, RELEASE_YEAR, CATEGORIES) if c in table.columns]
    return table.select(
        pl.col("item").cast(pl.Utf8).alias(ITEM_KEY),
        pl.col("item").cast(pl.Utf8).alias(SOURCE_ID),
        *keep,
    )


def _read_fields(
    path: Path, sep: str, names: list[str], dtypes: dict, encoding: str = "latin-1"
) -> pl.DataFrame:
    """A GroupLens file: one record a line, `sep`-separated fields (`names`)."""
    text = read_text(path, encoding=encoding)
    return split_fields(lines_frame(text), path, sep=sep, names=names, dtypes=dtypes)


def _grouplens(
    ratings: pl.DataFrame, ratings_path: Path, movies: pl.DataFrame, movies_path: Path
) -> SourceData:
    """A GroupLens release's ratings, and its movies with "Title (Year)" in `raw_title`."""
    return SourceData(
        domain=DOMAINS["movies"],
        interactions=_interactions(ratings, ratings_path),
        items=_items(_split_title_year(movies, "raw_title"), movies_path),
        files={"ratings": ratings_path, "items": movies_path},
        log_file=ratings_path,
    )


def read_grouplens_100k(directory: Path) -> SourceData:
    data_path, item_path = directory / "u.data", directory / "u.item"
    ratings = _read_fields(data_path, "\t", _INTER_NAMES, _INTER_DTYPES, encoding="utf-8")
    item_names = ["item", "raw_title", "release_date", "video_date", "url", *_GENRES_100K]
    items = _read_fields(item_path, "|", item_names, {"item": pl.Int64})
    genres = pl.concat_list(
        [pl.when(pl.col(g) == "1").then(pl.lit(g)).otherwise(None) for g in _GENRES_100K]
    ).list.drop_nulls()
    return _grouplens(ratings, data_path, items.with_columns(genres.alias(CATEGORIES)), item_path)


def read_grouplens_1m(directory: Path) -> SourceData:
    ratings_path, movies_path = directory / "ratings.dat", directory / "movies.dat"
    ratings = _read_fields(ratings_path, "::", _INTER_NAMES, _INTER_DTYPES)
    movies = _read_fields(movies_path, "::", ["item", "raw_title", "genres"], {"item": pl.Int64})
    movies = movies.with_columns(pl.col("genres").str.split("|").alias(CATEGORIES))
    return _grouplens(ratings, ratings_path, movies, movies_path)


def read_atomic(path: Path) -> pl.DataFrame:
    """A RecBole atomic file: tab-separated, header `name:type`; numbers cast by type."""
    frame = lines_frame(read_text(path))
    if not frame.height:
        raise DataFormatError("empty file (expected a `name:type` header)", path=path, line=1)
    header = frame.row(0, named=True)["text"].split("\t")
    names, dtypes = [], {}
    for position, spec in enumerate(header, start=1):
        name, _, kind = spec.partition(":")
        if not name or kind not in {"token", "token_seq", "float", "float_seq"}:
            raise DataFormatError(
                f"header field {position} {spec!r} is not `name:token|token_seq|float|float_seq`",
                path=path,
                line=1,
            )
        names.append(name)
        if kind == "float":
            dtypes[name] = pl.Float64
    return split_fields(frame.slice(1), path, sep="\t", names=names, dtypes=dtypes)


def read_recbole(directory: Path) -> SourceData:
    inter_path = find_file(directory, ["*.inter"], "RecBole .inter file")
    item_path = find_file(directory, ["*.item"], "RecBole .item file")
    inter = read_atomic(inter_path)
    require_columns(inter, ["user_id", "item_id"], inter_path)
    inter = inter.rename({"user_id": "user", "item_id": "item"})
    for name in ("rating", "timestamp"):
        if name not in inter.columns:
            inter = inter.with_columns(pl.lit(None, pl.Float64).alias(name))
    inter = inter.with_columns(pl.col("timestamp").cast(pl.Int64))
    interactions = _interactions(inter, inter_path)
    # Drop all-null optional columns so the prepared dataset says honestly what it has.
    interactions = interactions.select(
        [
            c
            for c in interactions.columns
            if interactions.get_column(c).null_count() < interactions.height
        ]
    )
    items = read_atomic(item_path)
    require_columns(items, ["item_id"], item_path)
    title_column = next((c for c in ("movie_title", "title") if c in items.columns), None)
    if title_column is None:
        require_columns(items, ["movie_title"], item_path)
    renames = {"item_id": "item", title_column: TITLE}
    items = items.rename(renames)
    if "class" in items.columns:
        items = items.with_columns(pl.col("class").str.split(" ").alias(CATEGORIES))
    return SourceData(
        domain=DOMAINS["movies"],
        interactions=interactions,
        items=_items(items, item_path),
        files={"interactions": inter_path, "items": item_path},
        log_file=inter_path,
    )


def read_movielens(directory: Path) -> SourceData:
    """Any of the three layouts, detected from the files present."""
    if (directory / "u.data").is_file():
        return read_grouplens_100k(directory)
    if (directory / "ratings.dat").is_file():
        return read_grouplens_1m(directory)
    if any(directory.glob("*.inter")):
        return read_recbole(directory)
    raise DataFormatError(
        "expected u.data + u.item, ratings.dat + movies.dat, or RecBole *.inter + *.item",
        path=directory,
    )
