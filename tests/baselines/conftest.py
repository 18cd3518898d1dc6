"""Tiny prepared datasets with known structure (written by `tests.factories`)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.factories import write_dataset


def write_sequences(path, sequences, num_items, ratings=None):
    texts = [f"item {i}" for i in range(1, num_items + 1)]
    return write_dataset(path, sequences, texts, ratings=ratings, source_prefix="s")


@pytest.fixture(scope="session")
def sequential_dataset(tmp_path_factory):
    """Each user walks the catalogue in steps of +1 (mod 40) from a random start: the next
    item is a function of the last one, which popularity cannot see (all items are
    about equally popular)."""
    rng = np.random.default_rng(7)
    n_items, sequences = 40, []
    for _ in range(400):
        start, length = int(rng.integers(0, n_items)), int(rng.integers(5, 12))
        sequences.append([(start + step) % n_items + 1 for step in range(length)])
    return write_sequences(tmp_path_factory.mktemp("seq"), sequences, n_items)


@pytest.fixture(scope="session")
def group_dataset(tmp_path_factory):
    """Four taste groups of 10 items; a user draws only from their group, in random order."""
    rng = np.random.default_rng(3)
    sequences = []
    for user in range(300):
        group = user % 4
        length = int(rng.integers(6, 10))
        sequences.append((group * 10 + 1 + rng.permutation(10)[:length]).tolist())
    return write_sequences(tmp_path_factory.mktemp("grp"), sequences, 40)


@pytest.fixture(scope="session")
def rating_dataset(tmp_path_factory):
    """Hand-checkable ratings: 3 users x 4 interactions (the last two are valid/test)."""
    sequences = [[1, 2, 3, 4], [2, 3, 1, 4], [1, 3, 2, 4]]
    ratings = [[5.0, 3.0, 4.0, 2.0], [1.0, 2.0, 5.0, 5.0], [4.0, 4.0, 3.0, 1.0]]
    return write_sequences(tmp_path_factory.mktemp("rate"), sequences, 5, ratings)
