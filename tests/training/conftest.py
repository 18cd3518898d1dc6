"""A small synthetic shop and a samples directory in the samples-stage contract.

Sequences follow a learnable rule (the next item is the previous id + 1, wrapping), so
a few dozen steps are enough for the loss to fall.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recalign.data.store import PreparedDataset
from tests.factories import write_dataset, write_retrieval_samples

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
    # source ids s0.. (0-based), as this fixture has always written them
    return write_dataset(out, sequences, texts, name="synthetic", source_prefix="s", source_start=0)


# Retrieval samples in the samples-stage contract, written without the generator.
make_samples = write_retrieval_samples


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
