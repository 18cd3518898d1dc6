"""Test data, written the way the stages write it: one place for every test package.

- prepared datasets (`write_dataset`): sequences and item texts through `write_prepared`;
- source files in the exact formats the readers accept (`write_s3rec`, `write_raw_amazon`,
  `write_ml100k`, `write_ml1m`, `write_recbole`).

The conftests keep what is particular to their tests (the sequences, the texts, the
sizes); how such data becomes files is here. Samples, run and pipeline directories with
their manifests are made by `tests/artifacts/helpers.py` (`fake_samples`, `fake_run`,
`fake_pipeline`).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from recalign.data.store import PreparedDataset, write_prepared


# --- prepared datasets -------------------------------------------------------------------
def write_dataset(
    out: Path,
    sequences: Sequence[Sequence[int]],
    texts: Sequence[str],
    *,
    ratings: Sequence[Sequence[float]] | None = None,
    name: str = "fixture",
    source_prefix: str = "S",
    source_start: int = 1,
    item_columns: dict[str, list] | None = None,
    **options: Any,
) -> PreparedDataset:
    """A prepared dataset: user i + 1 has `sequences[i]` (and `ratings[i]`), item j + 1 the
    text `texts[j]` and the source id `f"{source_prefix}{j + source_start}"`, plus any
    `item_columns`. `options` go to `write_prepared` (e.g. `domain`)."""
    frame: dict[str, Any] = {
        "user_id": list(range(1, len(sequences) + 1)),
        "items": [list(s) for s in sequences],
    }
    schema: dict[str, Any] = {"user_id": pl.Int64, "items": pl.List(pl.Int64)}
    if ratings is not None:
        frame["ratings"] = [[float(r) for r in row] for row in ratings]
        schema["ratings"] = pl.List(pl.Float64)
    items = pl.DataFrame(
        {
            "item_id": list(range(1, len(texts) + 1)),
            "source_id": [f"{source_prefix}{j + source_start}" for j in range(len(texts))],
            "text": list(texts),
            **(item_columns or {}),
        }
    )
    return write_prepared(out, name, pl.DataFrame(frame, schema=schema), items, **options)


# --- source files, in the formats the readers accept -------------------------------------
def write_s3rec(directory: Path, sequences: dict[int, list[int]], items: list[tuple]) -> Path:
    """`sequences.txt` (`user item ...`) and `items.tsv` (item_id asin title short_text attributes)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [" ".join(str(v) for v in [user, *seq]) for user, seq in sequences.items()]
    (directory / "sequences.txt").write_text("\n".join(lines) + "\n")
    rows = ["item_id\tasin\ttitle\tshort_text\tattributes"]
    rows += ["\t".join(str(v) for v in row) for row in items]
    (directory / "items.tsv").write_text("\n".join(rows) + "\n")
    return directory


def write_raw_amazon(
    directory: Path, reviews: list[dict], meta: list[dict], category: str = "Beauty"
) -> Path:
    """McAuley raw files: gzip JSON lines (reviews), gzip Python-literal dicts (meta)."""
    directory.mkdir(parents=True, exist_ok=True)
    with gzip.open(directory / f"reviews_{category}_5.json.gz", "wt") as handle:
        for record in reviews:
            handle.write(json.dumps(record) + "\n")
    with gzip.open(directory / f"meta_{category}.json.gz", "wt") as handle:
        for record in meta:
            handle.write(repr(record) + "\n")  # Python literal, single quotes: not JSON
    return directory


def review(user: str, asin: str, time: int, rating: float = 5.0) -> dict:
    return {
        "reviewerID": user,
        "asin": asin,
        "reviewerName": "someone",
        "helpful": [0, 0],
        "reviewText": "fine",
        "overall": rating,
        "summary": "ok",
        "unixReviewTime": time,
        "reviewTime": "01 1, 2014",
    }


def write_ml100k(directory: Path, ratings: list[tuple], movies: list[tuple[int, str]]) -> Path:
    """`u.data` (tab) and `u.item` (`|`, latin-1, 24 fields)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "u.data").write_text("\n".join("\t".join(map(str, r)) for r in ratings) + "\n")
    rows = []
    for movie_id, title in movies:
        flags = ["0"] * 19
        flags[8] = "1"  # Drama
        rows.append("|".join([str(movie_id), title, "01-Jan-1995", "", "http://x", *flags]))
    (directory / "u.item").write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    return directory


def write_ml1m(directory: Path, ratings: list[tuple], movies: list[tuple[int, str, str]]) -> Path:
    """`ratings.dat` and `movies.dat`, `::`-separated, latin-1."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ratings.dat").write_text(
        "\n".join("::".join(map(str, r)) for r in ratings) + "\n"
    )
    text = "\n".join("::".join(map(str, m)) for m in movies) + "\n"
    (directory / "movies.dat").write_bytes(text.encode("latin-1"))
    return directory


def write_recbole(
    directory: Path, ratings: list[tuple], movies: list[tuple[int, str, str, str]], name="ml"
) -> Path:
    """RecBole atomic files with typed headers."""
    directory.mkdir(parents=True, exist_ok=True)
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    inter += ["\t".join(map(str, r)) for r in ratings]
    (directory / f"{name}.inter").write_text("\n".join(inter) + "\n")
    item = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    item += ["\t".join(map(str, m)) for m in movies]
    (directory / f"{name}.item").write_text("\n".join(item) + "\n")
    return directory
