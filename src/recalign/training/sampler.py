"""Samplers over a length array, with O(1) Python objects per sample.

torch's `RandomSampler` and transformers' `LengthGroupedSampler` build Python lists of
every index (36 bytes a sample, hundreds of MB for millions of samples). These keep one
int32 array, yield indices a block at a time, and draw their order from (seed, epoch)
alone, so every process of a multi-process run and every resumed run sees the same
order without depending on the global RNG state.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

BLOCK = 65_536  # indices turned into Python ints at a time
MEGABATCH_BATCHES = 50  # transformers' mega_batch_mult


def _yield_blocks(order: np.ndarray) -> Iterator[int]:
    for start in range(0, len(order), BLOCK):
        yield from order[start : start + BLOCK].tolist()


class _SeededSampler(Sampler[int]):
    def __init__(self, lengths: np.ndarray, seed: int) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int32)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def _shuffled(self) -> np.ndarray:
        order = np.arange(len(self.lengths), dtype=np.int32)
        np.random.default_rng([self.seed, self.epoch]).shuffle(order)
        return order


class ShuffleSampler(_SeededSampler):
    """Plain shuffling: `batching: random`."""

    def __iter__(self) -> Iterator[int]:
        return _yield_blocks(self._shuffled())


class LengthGroupedSampler(_SeededSampler):
    """transformers' length grouping, on arrays.

    Shuffle, cut into megabatches of 50 batches, sort each megabatch by length (longest
    first), and put the longest sample of all in the first batch, so a batch that does
    not fit in memory fails at step 1 rather than hours in.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int) -> None:
        super().__init__(lengths, seed)
        n = len(self.lengths)
        multiple = min(n // (batch_size * 4), MEGABATCH_BATCHES) or 1
        self.megabatch = multiple * batch_size

    def _sorted(self, order: np.ndarray, start: int) -> np.ndarray:
        block = order[start : start + self.megabatch]
        return block[np.argsort(-self.lengths[block], kind="stable")]

    def __iter__(self) -> Iterator[int]:
        order = self._shuffled()
        if len(order) == 0:
            return
        longest = self.lengths[order] == self.lengths.max()
        holder = int(np.flatnonzero(longest)[0]) // self.megabatch * self.megabatch
        first, other = self._sorted(order, 0), self._sorted(order, holder)
        first[0], other[0] = other[0], first[0]
        for start in range(0, len(order), self.megabatch):
            block = first if start == 0 else other if start == holder else None
            yield from (block if block is not None else self._sorted(order, start)).tolist()


class LongestFirstSampler(_SeededSampler):
    """Validation: samples by decreasing length, so each batch pads little (deterministic)."""

    def __init__(self, lengths: np.ndarray) -> None:
        super().__init__(lengths, seed=0)

    def __iter__(self) -> Iterator[int]:
        return _yield_blocks(np.argsort(-self.lengths, kind="stable"))
