"""A small synthetic shop and a samples directory in the samples-stage contract.

Sequences follow a learnable rule (the next item is the previous id + 1, wrapping), so
a few dozen steps are enough for the loss to fall.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recalign.data.store import PreparedDataset
from tests.factories import fake_samples, write_dataset

COLOURS = ["red", "blue", "green", "black", "white", "pink"]
NOUNS = ["lipstick", "shampoo", "nail polish", "face cream", "hair gel"]

# The tiniest models that still train: hidden 32, 2 layers, no dropout (so resumed and
# uninterrupted runs can be compared step by step).
TINY_T5 = {"d_model": 32, "d_ff": 64, "d_kv": 8, "num_heads": 4, "dropout_rate": 0.0}
TINY_CAUSAL = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
}


def make_dataset(out: Path, *, users: int = 40, items: int = 24, seed: int = 0) -> PreparedDataset:
    rng = np.random.default_rng(seed)
    texts = [f"{COLOURS[i % len(COLOURS)]} {NOUNS[i % len(NOUNS)]} {i}" for i in range(items)]
    sequences = []
    for _ in range(users):
        start = int(rng.integers(items))
        length = int(rng.integers(5, 9))
        sequences.append([(start + k) % items + 1 for k in range(length)])
    return write_dataset(out, sequences, texts, name="synthetic", source_prefix="s", source_start=0)


def _retrieval_rows(dataset: PreparedDataset, split: str) -> list[dict]:
    texts = dataset.item_texts
    rows = []
    for user, items in dataset.sequences.select("user_id", "items").iter_rows():
        if split == "train":
            ends = range(1, len(items) - 2)
        else:
            ends = [len(items) - 2] if split == "valid" else [len(items) - 1]
        for end in ends:
            shown = [texts[i] for i in items[max(0, end - 5) : end]]
            prefix = "The user bought: "
            # history_bounds as the generator writes them: item starts, end, resume point
            starts, at = [], len(prefix)
            for text in shown:
                starts.append(at)
                at += len(text.encode("utf-8")) + len(", ")
            end_of_history = at - len(", ")
            rows.append(
                {
                    "task": "retrieval",
                    "template": "retrieval-1",
                    "user_id": user,
                    "input": f"{prefix}{', '.join(shown)}. What will the user buy next?",
                    "target": texts[items[end]],
                    "target_item": items[end],
                    "candidates": None,
                    "history_bounds": [*starts, end_of_history, end_of_history],
                }
            )
    return rows


def make_samples(
    dataset: PreparedDataset, out: Path, family: str = "seq2seq", data_hash: str | None = None
) -> Path:
    """A samples directory of retrieval samples (its manifest says it was made from
    `dataset`, or from the dataset of content hash `data_hash`)."""
    schema = {
        "task": pl.String,
        "template": pl.String,
        "user_id": pl.Int64,
        "input": pl.String,
        "target": pl.String,
        "target_item": pl.Int64,
        "candidates": pl.List(pl.Int64),
        "history_bounds": pl.List(pl.Int32),
    }
    splits = {
        split: pl.DataFrame(_retrieval_rows(dataset, split), schema=schema)
        for split in ("train", "valid", "test")
    }
    return fake_samples(
        dataset.path,
        out,
        max_history=5,
        separator=", ",
        tasks=("retrieval",),
        family=family,
        splits=splits,
        data_hash=data_hash,
    )


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data dir, samples dir) of the synthetic shop."""
    root = tmp_path_factory.mktemp("shop")
    dataset = make_dataset(root / "data")
    return root / "data", make_samples(dataset, root / "samples")


@pytest.fixture(scope="session")
def generated_shop(tmp_path_factory: pytest.TempPathFactory):
    """family -> (data dir, samples dir) made by the samples stage (`paper` mixture)."""
    from recalign.samples import generate_samples

    root = tmp_path_factory.mktemp("generated")
    dataset = make_dataset(root / "data", users=60, items=60)
    made = {}
    for family in ("seq2seq", "causal"):
        generate_samples(dataset, root / family, preset="paper", family=family)
        made[family] = (root / "data", root / family)
    return made
