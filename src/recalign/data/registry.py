"""The datasets recalign knows: an explicit table, name -> where it comes from and how
to read it. Adding a dataset is one entry here (and a reader if the format is new)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from recalign.data.readers import SourceData, read_amazon, read_movielens
from recalign.errors import ConfigError

_MCAULEY = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles"
_GROUPLENS = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class RemoteFile:
    """One file to download. `sha256=None` means the checksum could not be computed
    offline when the registry was written: the first download records and logs the hash
    it saw (in the manifest), and later runs can pin it here."""

    url: str
    sha256: str | None = None
    unzip: bool = False

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    origin: str  # a URL, "built-in" or "your files"
    # The folder layouts the reader accepts, one per entry (messages join them with "or").
    expected_files: tuple[str, ...] = ()
    reader: Callable[[Path], SourceData] | None = None
    downloads: tuple[RemoteFile, ...] = ()
    # Sub-folder of the download folder the reader gets (e.g. what a zip unpacks to).
    download_subdir: str = ""
    published: dict[str, int] = field(default_factory=dict)


def _amazon(key: str, category: str, label: str, published: dict[str, int]) -> DatasetSpec:
    return DatasetSpec(
        name=f"amazon2014-{key}",
        description=f"Amazon 2014 {label} 5-core reviews (McAuley et al.)",
        origin=f"{_MCAULEY}/reviews_{category}_5.json.gz",
        expected_files=(
            "sequences.txt + items.tsv (S3-Rec layout)",
            f"reviews_{category}_5.json.gz + meta_{category}.json.gz",
        ),
        reader=read_amazon,
        downloads=(
            RemoteFile(f"{_MCAULEY}/reviews_{category}_5.json.gz"),
            RemoteFile(f"{_MCAULEY}/meta_{category}.json.gz"),
        ),
        published=published,
    )


def _movielens(size: str, files: str, published: dict[str, int]) -> DatasetSpec:
    """A GroupLens release: one zip, read in its own layout (`files`) or RecBole's."""
    url = f"{_GROUPLENS}/ml-{size}.zip"
    return DatasetSpec(
        name=f"movielens-{size}",
        description=f"MovieLens {size.upper()} ratings with timestamps (GroupLens)",
        origin=url,
        expected_files=(files, "RecBole *.inter + *.item"),
        reader=read_movielens,
        downloads=(RemoteFile(url, unzip=True),),
        download_subdir=f"ml-{size}",
        published=published,
    )


DATASETS: dict[str, DatasetSpec] = {
    "synthetic": DatasetSpec(
        name="synthetic",
        description="the built-in demo shop: seeded synthetic users, items, ratings",
        origin="built-in",
    ),
    "amazon2014-beauty": _amazon(
        "beauty", "Beauty", "Beauty", {"users": 22363, "items": 12101, "interactions": 198502}
    ),
    "amazon2014-toys": _amazon(
        "toys",
        "Toys_and_Games",
        "Toys & Games",
        {"users": 19412, "items": 11924, "interactions": 167597},
    ),
    "amazon2014-sports": _amazon(
        "sports",
        "Sports_and_Outdoors",
        "Sports & Outdoors",
        {"users": 35598, "items": 18357, "interactions": 296337},
    ),
    "movielens-100k": _movielens(
        "100k", "u.data + u.item", {"users": 943, "items": 1682, "interactions": 100000}
    ),
    "movielens-1m": _movielens(
        "1m", "ratings.dat + movies.dat", {"users": 6040, "items": 3706, "interactions": 1000209}
    ),
    "custom": DatasetSpec(
        name="custom",
        description="your own CSV/Parquet interactions (+ optional items file)",
        origin="your files",
        expected_files=("--interactions FILE", "--items FILE"),
    ),
}


def get_spec(name: str) -> DatasetSpec:
    """The spec for `name`; an unknown name lists the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(DATASETS)
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {known}") from None
