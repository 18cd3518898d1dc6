"""A small prepared dataset with hand-countable popularity, and recommenders over it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recalign.serving import ItemCatalog, Recommender
from tests.factories import fake_pipeline, write_dataset

TEXTS = [
    "Red Velvet Lipstick",
    "Blue Waterproof Mascara",
    "Green Nail Polish",
    "Yellow Citrus Shampoo",
    "Purple Liquid Eyeliner",
    "Rose Face Cream",
    "Mint Lip Balm",
    "Charcoal Face Mask",
    "Argan Hair Oil",
    "Vanilla Body Lotion",
    "Coconut Hair Conditioner",
    "Lavender Bath Salts",
]

# Train parts (all but the last two items) give counts: item 3 x4, item 1 x3, item 2 x2,
# items 4, 5 x1; everything else 0 — popularity order 3, 1, 2, 4, 5, then 6.. by id.
SEQUENCES = [
    [1, 3, 2, 11, 12],
    [3, 1, 4, 9, 10],
    [3, 2, 1, 7, 8],
    [3, 5, 6, 7],
]


def make_data_dir(out: Path) -> Path:
    """Write the fixture's prepared dataset to `out`."""
    write_dataset(out, SEQUENCES, TEXTS)
    return out


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return make_data_dir(tmp_path / "data")


@pytest.fixture
def rec(data_dir: Path) -> Recommender:
    """Popularity over the fixture dataset, loaded the way `recalign serve DATA` would."""
    return Recommender.load(data_dir)


class FakeLLMBackend:
    """A deterministic stand-in with ratings: score(item) = item id / 100, rating = 1 + id % 5."""

    kind = "llm"
    name = "fake-llm"
    can_rate = True

    def __init__(self, num_items: int) -> None:
        self.num_items = num_items
        self.calls: list[int] = []  # batch size of every call

    def recommend(self, histories, k, exclude_history):
        self.calls.append(len(histories))
        out = []
        for history in histories:
            ids = [
                i for i in range(self.num_items, 0, -1) if not (exclude_history and i in history)
            ]
            ids = np.asarray(ids[:k], dtype=np.int64)
            out.append((ids, ids / 100.0))
        return out

    def rank(self, histories, candidates):
        self.calls.append(len(histories))
        return [np.asarray(c, dtype=np.float64) / 100.0 for c in candidates]

    def rate(self, histories, items, ratings):
        self.calls.append(len(histories))
        return np.asarray([1 + i % 5 for i in items], dtype=np.float64)


@pytest.fixture
def fake_rec() -> Recommender:
    catalog = ItemCatalog(list(range(1, len(TEXTS) + 1)), TEXTS)
    return Recommender(FakeLLMBackend(len(TEXTS)), catalog)


def make_pipeline_dir(root: Path, baselines: tuple[str, ...] = ("pop",)) -> Path:
    """A `recalign run` directory without its LLM: data/, baselines/<name>/ and the manifest
    (plus a skipped baseline, which leaves a directory without a manifest)."""
    from recalign.baselines.run import run_baseline

    data = make_data_dir(root / "data")
    for name in baselines:
        overrides = {} if name == "pop" else {"epochs": 1}
        run_baseline(name, data, root / "baselines" / name, k=5, overrides=overrides)
    (root / "baselines" / "global-mean").mkdir(parents=True)
    return fake_pipeline(root, name="fixture")
