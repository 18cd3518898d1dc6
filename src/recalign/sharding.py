"""Users split into shards: contiguous blocks of the sorted users, the same for every stage.

Sample generation and evaluation both shard by users (`--shard I --num-shards N`), and
their shards must be the same blocks for merged outputs to equal unsharded ones.
"""

from __future__ import annotations

import numpy as np

from recalign.errors import ConfigError


def shard_users(user_ids: np.ndarray, shard: int | None, num_shards: int | None) -> np.ndarray:
    """Row indices of the users in `shard` (contiguous blocks of the sorted users)."""
    if shard is None and num_shards is None:
        return np.arange(len(user_ids))
    if shard is None or num_shards is None:
        raise ConfigError("give both --shard and --num-shards")
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ConfigError(f"shard {shard} is out of range for {num_shards} shard(s)")
    return np.array_split(np.arange(len(user_ids)), num_shards)[shard]
