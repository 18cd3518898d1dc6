"""Writers for small source files in the exact formats the readers accept."""

from __future__ import annotations

import gzip
import json
from pathlib import Path


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
        for review in reviews:
            handle.write(json.dumps(review) + "\n")
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
