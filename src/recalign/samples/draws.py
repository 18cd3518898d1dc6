"""Counter-based random draws: every number is a hash of (seed, task, split, user, purpose, n).

Generation makes several draws per sample for hundreds of thousands of samples. A
stateful generator per (seed, task, split, user) forces a Python loop over users (and
its re-keying cost per user); a counter-based generator is evaluated for a whole block
of users in a few numpy operations, and a draw still depends on nothing but its key:
which shard, process or chunk handles a user, and which other tasks run, never change
it. The streams are SplitMix64 (Steele et al., 2014): the key is hashed into a stream
seed and draw `n` of the stream is `mix(seed + (n + 1) * GAMMA)`, with `mix` the
SplitMix64 finaliser (a bijection of 64-bit words that passes BigCrush in this use).

A draw is named by its purpose (one stream per purpose and key) and a counter. Tasks
use the sample's position `t` as the counter, or `t * STRIDE + j` for the j-th of
several draws at one position.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))
STRIDE = 1 << 20  # draws available at one position (counter = t * STRIDE + j)
SPLIT_INDEX = {"train": 0, "valid": 1, "test": 2}


class Purpose(IntEnum):
    """What a stream is for: one independent stream per purpose and key."""

    KEEP = 1  # ratio thinning of train positions
    CAP = 2  # max_per_user: which kept positions survive
    TEMPLATE = 3
    NEGATIVE = 4  # negative item draws (ranking, bpr)
    SLOT = 5  # the positive's slot among ranking candidates
    SWAP = 6  # bpr: which item comes first
    MASK = 7  # mim: keys that pick the masked slots; mlm: one draw per word
    FALLBACK = 8  # mlm: the word masked when the draws masked none


def mix(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser on uint64 arrays (wrap-around arithmetic)."""
    with np.errstate(over="ignore"):  # 0-d arrays compute as scalars, which would warn
        x = (x ^ (x >> _S30)) * _M1
        x = (x ^ (x >> _S27)) * _M2
        return x ^ (x >> _S31)


def _u64(values) -> np.ndarray:
    return np.asarray(values).astype(np.int64, copy=False).view(np.uint64)


def user_keys(seed: int, task_index: int, split: str, user_ids: np.ndarray) -> np.ndarray:
    """One 64-bit key per user for (seed, task, split): the root of all its streams."""
    head = np.array([seed, task_index, SPLIT_INDEX[split]], dtype=np.uint64)
    key = GAMMA  # not 0: the finaliser maps 0 to 0
    with np.errstate(over="ignore"):
        for word in head:
            key = mix(np.asarray(key + word * GAMMA))
        return mix(key + _u64(user_ids) * GAMMA)


def _salt(purpose: Purpose) -> np.uint64:
    return np.uint64((int(purpose) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF)


def bits(keys: np.ndarray, purpose: Purpose, counters: np.ndarray) -> np.ndarray:
    """Draw `counters` of each key's `purpose` stream as uint64 (arrays broadcast)."""
    stream = mix(np.asarray(keys) ^ _salt(purpose))
    with np.errstate(over="ignore"):
        return mix(stream + (_u64(counters) + np.uint64(1)) * GAMMA)


def uniform(keys: np.ndarray, purpose: Purpose, counters: np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1) with 53 random bits."""
    return (bits(keys, purpose, counters) >> _S11).astype(np.float64) * (1.0 / (1 << 53))


def below(keys: np.ndarray, purpose: Purpose, counters: np.ndarray, high) -> np.ndarray:
    """Integers in [0, high): floor(u * high) of 53-bit uniforms.

    Each value's probability is off 1 / high by less than one part in 2**53 / high (for
    the small `high` of templates, slots and windows: negligible).
    """
    return (uniform(keys, purpose, counters) * high).astype(np.int64)
