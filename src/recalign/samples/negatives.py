"""Negative samplers: items a user never interacted with.

Both samplers draw candidate ids in vectorised batches from the user's seeded generator
and reject the user's own items (every item of the sequence, valid and test included,
so a negative is never a true positive of any split).
"""

from __future__ import annotations

from collections.abc import Set

import numpy as np

from recalign.errors import ConfigError

NEGATIVE_SAMPLERS = ("uniform", "popularity")


class NegativeSampler:
    """Uniform over the catalogue (`weights=None`) or proportional to `weights`.

    `weights[i]` is the weight of item `i + 1`. Rejection sampling is exact for both:
    the accepted draws follow the sampling distribution restricted to unseen items.
    """

    def __init__(self, num_items: int, weights: np.ndarray | None = None) -> None:
        if num_items < 1:
            raise ConfigError("the catalogue is empty: no negatives to sample")
        self.num_items = num_items
        self._cdf = None
        self._accept = 1.0
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (num_items,) or (weights <= 0).any():
                raise ValueError("weights must be positive, one per item")
            cdf = np.cumsum(weights)
            self._cdf = cdf / cdf[-1]

    def _draw(self, rng: np.random.Generator, size: int) -> list[int]:
        if self._cdf is None:
            # floor(u * N) + 1 rather than `integers`: see `tasks.base.randint_list`.
            return ((rng.random(size) * self.num_items).astype(np.int64) + 1).tolist()
        idx = np.searchsorted(self._cdf, rng.random(size), side="right")
        return (np.minimum(idx, self.num_items - 1) + 1).tolist()

    def _check(self, exclude: Set[int], distinct: int) -> int:
        available = self.num_items - len(exclude)
        if available < distinct:
            raise ConfigError(
                f"cannot sample {distinct} distinct negative(s): the catalogue has "
                f"{self.num_items} items and the user has {len(exclude)}; "
                "lower num_candidates"
            )
        return available

    def one_each(self, rng: np.random.Generator, exclude: Set[int], n: int) -> list[int]:
        """`n` independent negatives (repeats allowed across rows)."""
        if n == 0:
            return []
        available = self._check(exclude, 1)
        out: list[int] = []
        # Oversample by the expected rejection rate (exact for uniform) plus a margin.
        factor = self.num_items / available
        while len(out) < n:
            need = n - len(out)
            for item in self._draw(rng, int(need * factor * 1.2) + 8):
                if item not in exclude:
                    out.append(item)
                    if len(out) == n:
                        break
        return out

    def distinct_rows(
        self, rng: np.random.Generator, exclude: Set[int], n: int, k: int
    ) -> list[list[int]]:
        """`n` rows of `k` distinct negatives each (ranking candidates).

        Rows take consecutive draws from one pooled batch; a row keeps the acceptable
        draws (not excluded, not repeated) in draw order. Most rows of a large catalogue
        need no rejection at all, so that case is checked with C-level set operations
        first (a vectorised numpy version was slower at ~6 rows per user).
        """
        if n == 0 or k == 0:
            return [[] for _ in range(n)]
        available = self._check(exclude, k)
        factor = self.num_items / available
        pool = self._draw(rng, int(n * k * factor * 1.1) + 16)
        cursor = 0
        rows: list[list[int]] = []
        for _ in range(n):
            row = pool[cursor : cursor + k]
            if len(row) == k and len(set(row)) == k and exclude.isdisjoint(row):
                cursor += k
                rows.append(row)
                continue
            row = []
            taken: set[int] = set()
            while len(row) < k:
                if cursor == len(pool):
                    pool = self._draw(rng, int(k * factor * 2) + 16)
                    cursor = 0
                item = pool[cursor]
                cursor += 1
                if item not in exclude and item not in taken:
                    taken.add(item)
                    row.append(item)
            rows.append(row)
        return rows


def make_sampler(
    kind: str,
    num_items: int,
    train_items: list[list[int]] | None = None,
    *,
    counts: np.ndarray | None = None,
):
    """`uniform`, or `popularity` weighted by train-part counts (+1, so every item can appear).

    The counts come either as `counts` (indexed by item id, index 0 unused) or are taken
    from the train parts `train_items`.
    """
    if kind == "uniform":
        return NegativeSampler(num_items)
    if kind == "popularity":
        weights = np.ones(num_items, dtype=np.float64)
        if counts is not None:
            weights += np.asarray(counts, dtype=np.float64)[1 : num_items + 1]
        elif train_items:
            flat = np.fromiter((i for seq in train_items for i in seq), dtype=np.int64)
            weights += np.bincount(flat, minlength=num_items + 1)[1 : num_items + 1]
        return NegativeSampler(num_items, weights)
    raise ConfigError(f"unknown negative sampler {kind!r}; choose from {NEGATIVE_SAMPLERS}")
