"""Chronological leave-one-out: last item = test, second-last = valid, the rest = train.

Sequences are already in chronological order (readers sort them with a stable sort,
so timestamp ties keep the source order); the split only slices them.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from recalign.constants import (
    HISTORY,
    ITEMS,
    MIN_SEQUENCE_LENGTH,
    RATING,
    RATINGS,
    TARGET_ITEM,
    TIMESTAMPS,
    USER_ID,
)
from recalign.errors import DataFormatError


@dataclass(frozen=True)
class LeaveOneOut:
    """The three views of a prepared dataset.

    - `train`: `user_id`, `items` (all but the last two) and the aligned `ratings` /
      `timestamps` when present;
    - `valid`: `user_id`, `history` (= the train items), `target_item` (second-last),
      and `rating` of the target when ratings exist;
    - `test`: `user_id`, `history` (= train + valid items), `target_item` (last), `rating`.
    """

    train: pl.DataFrame
    valid: pl.DataFrame
    test: pl.DataFrame


def _target_view(sequences: pl.DataFrame, drop_last: int, has_ratings: bool) -> pl.DataFrame:
    length = pl.col(ITEMS).list.len()
    columns = [
        pl.col(USER_ID),
        pl.col(ITEMS).list.slice(0, length - (drop_last + 1)).alias(HISTORY),
        pl.col(ITEMS).list.get(-(drop_last + 1)).alias(TARGET_ITEM),
    ]
    if has_ratings:
        columns.append(pl.col(RATINGS).list.get(-(drop_last + 1)).alias(RATING))
    return sequences.select(columns)


def leave_one_out(sequences: pl.DataFrame) -> LeaveOneOut:
    """Split every user's sequence; raises if a sequence is too short to split."""
    lengths = sequences.get_column(ITEMS).list.len()
    short = sequences.filter(lengths < MIN_SEQUENCE_LENGTH)
    if short.height:
        users = short.get_column(USER_ID).head(5).to_list()
        raise DataFormatError(
            f"{short.height} user(s) have fewer than {MIN_SEQUENCE_LENGTH} interactions and "
            f"cannot be split (e.g. users {users}); prepare the dataset with recalign, which "
            "reports and excludes them"
        )
    has_ratings = RATINGS in sequences.columns
    length = pl.col(ITEMS).list.len()
    train_cols = [pl.col(USER_ID), pl.col(ITEMS).list.slice(0, length - 2)]
    for name in (RATINGS, TIMESTAMPS):
        if name in sequences.columns:
            train_cols.append(pl.col(name).list.slice(0, pl.col(name).list.len() - 2))
    return LeaveOneOut(
        train=sequences.select(train_cols),
        valid=_target_view(sequences, drop_last=1, has_ratings=has_ratings),
        test=_target_view(sequences, drop_last=0, has_ratings=has_ratings),
    )


def split_sequence(items: list[int]) -> tuple[list[int], int, int]:
    """One sequence -> (train items, valid item, test item)."""
    if len(items) < MIN_SEQUENCE_LENGTH:
        raise ValueError(f"a sequence needs {MIN_SEQUENCE_LENGTH} items to split, got {len(items)}")
    return list(items[:-2]), items[-2], items[-1]
