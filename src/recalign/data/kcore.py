"""k-core filtering: keep users and items with at least k interactions each.

Dropping a sparse item can push a user below k and vice versa, so the filter repeats
until nothing changes (the standard "5-core" of the Amazon benchmarks).
"""

from __future__ import annotations

import logging

import polars as pl

logger = logging.getLogger(__name__)


def kcore_filter(
    interactions: pl.DataFrame, k: int, *, user_col: str, item_col: str
) -> tuple[pl.DataFrame, int]:
    """Return the k-core of `interactions` (row order kept) and how many passes it took."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    current = interactions
    passes = 0
    while True:
        passes += 1
        kept = current.filter((pl.len().over(user_col) >= k) & (pl.len().over(item_col) >= k))
        if kept.height == current.height:
            break
        current = kept
    logger.info(
        "%d-core: %d -> %d interactions in %d pass(es)",
        k,
        interactions.height,
        current.height,
        passes,
    )
    return current, passes
