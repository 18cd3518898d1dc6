"""Views of the train part that the baselines train on (pure functions, no I/O)."""

from __future__ import annotations

import numpy as np
import polars as pl

from recalign.constants import ITEMS, RATING, RATINGS, USER_ID
from recalign.data.store import PreparedDataset


def train_sequences(dataset: PreparedDataset) -> tuple[np.ndarray, list[list[int]]]:
    """User ids and their train items (all but the last two), chronological."""
    train = dataset.split.train
    return train.get_column(USER_ID).to_numpy(), train.get_column(ITEMS).to_list()


def train_pairs(dataset: PreparedDataset) -> tuple[np.ndarray, np.ndarray]:
    """(user_id, item_id) for every train interaction, flattened."""
    train = dataset.split.train.select(USER_ID, ITEMS).explode(ITEMS)
    return train.get_column(USER_ID).to_numpy(), train.get_column(ITEMS).to_numpy()


def train_ratings(dataset: PreparedDataset) -> pl.DataFrame:
    """Columns user_id, item_id, rating for every train interaction."""
    train = dataset.split.train.select(USER_ID, ITEMS, RATINGS).explode([ITEMS, RATINGS])
    return train.rename({ITEMS: "item_id", RATINGS: RATING}).with_columns(
        pl.col(RATING).cast(pl.Float64)
    )


def split_view(dataset: PreparedDataset, split: str) -> pl.DataFrame:
    """The valid or test view: user_id, history, target_item (and rating)."""
    from recalign.errors import ConfigError

    if split == "valid":
        return dataset.split.valid
    if split == "test":
        return dataset.split.test
    raise ConfigError(f"split must be 'valid' or 'test', got {split!r}")
