from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from recalign.data.store import PreparedDataset
from tests.factories import write_dataset

WORDS = ["red", "matte", "gentle", "daily", "travel", "organic", "silk", "fresh"]


def item_text(item_id: int) -> str:
    # Fixed-width codes: no item text is a substring of another, so text checks are exact.
    return f"Product P{item_id:04d} {WORDS[item_id % len(WORDS)]} lotion"


def make_dataset(
    out: Path,
    sequences: Sequence[Sequence[int]],
    num_items: int,
    ratings: Sequence[Sequence[float]] | None = None,
    name: str = "fixture",
) -> PreparedDataset:
    texts = [item_text(i) for i in range(1, num_items + 1)]
    return write_dataset(out, sequences, texts, ratings=ratings, name=name)


SEQUENCES = [
    [1, 2, 3, 4, 5, 6],
    [3, 4, 7, 8],
    [9, 1, 2, 10, 11, 12, 13],
    [14, 15, 16],
    [2, 17, 18, 19, 20, 21, 22, 23, 24, 25],
    [26, 27, 28, 29, 30],
]
RATINGS = [[(u + i) % 5 + 1 for i in range(len(s))] for u, s in enumerate(SEQUENCES)]


@pytest.fixture
def tiny(tmp_path: Path) -> PreparedDataset:
    """Six users, 40 items, with ratings."""
    return make_dataset(tmp_path / "tiny", SEQUENCES, 40, RATINGS)


@pytest.fixture
def tiny_no_ratings(tmp_path: Path) -> PreparedDataset:
    return make_dataset(tmp_path / "tiny-nr", SEQUENCES, 40)
