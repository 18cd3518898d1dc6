"""Negative samplers: items a user never interacted with.

Both samplers turn counter-based draws (`samples.draws`, purpose NEGATIVE) into item ids
and reject the user's own items (every item of the sequence, valid and test included, so
a negative is never a true positive of any split). A block of samples is drawn as one
matrix; the rare row that rejects too many draws continues its own stream alone.
"""

from __future__ import annotations

import numpy as np

from recalign.errors import ConfigError
from recalign.samples.draws import STRIDE, Purpose, uniform

NEGATIVE_SAMPLERS = ("uniform", "popularity")
EXACT_AFTER = 1 << 14  # rejected draws of one row before it samples the allowed items exactly


class NegativeSampler:
    """Uniform over the catalogue (`weights=None`) or proportional to `weights`.

    `weights[i]` is the weight of item `i + 1`. Rejection sampling is exact for both:
    the accepted draws follow the sampling distribution restricted to unseen items.
    """

    def __init__(
        self,
        num_items: int,
        weights: np.ndarray | None = None,
        excluded: np.ndarray | None = None,
    ) -> None:
        if num_items < 1:
            raise ConfigError("the catalogue is empty: no negatives to sample")
        self.num_items = num_items
        # Items never drawn for anyone (cold-start items in training samples).
        self._excluded = None
        if excluded is not None and len(excluded):
            self._excluded = np.zeros(num_items + 1, dtype=bool)
            self._excluded[np.asarray(excluded, dtype=np.int64)] = True
        self._cdf = None
        self._weights = None
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (num_items,) or (weights <= 0).any():
                raise ValueError("weights must be positive, one per item")
            self._weights = weights
            cdf = np.cumsum(weights)
            self._cdf = cdf / cdf[-1]

    def items(self, u: np.ndarray) -> np.ndarray:
        """Uniform draws in [0, 1) -> item ids 1..num_items."""
        if self._cdf is None:
            return (u * self.num_items).astype(np.int64) + 1
        idx = np.searchsorted(self._cdf, u, side="right")
        return np.minimum(idx, self.num_items - 1) + 1

    def check(self, distinct_seen: np.ndarray, k: int) -> None:
        """Every user must leave at least `k` unseen items."""
        if len(distinct_seen) and self.num_items - int(distinct_seen.max()) < k:
            raise ConfigError(
                f"cannot sample {k} distinct negative(s): the catalogue has "
                f"{self.num_items} items and a user has {int(distinct_seen.max())}; "
                "lower num_candidates"
            )

    def sample(
        self,
        keys: np.ndarray,
        t: np.ndarray,
        seen,
        k: int,
        *,
        distinct: bool = True,
    ) -> np.ndarray:
        """A `(len(keys), k)` matrix of negatives, row i from stream (keys[i], t[i]).

        `seen(rows, items) -> bool` tells a row's excluded items. A row keeps its
        acceptable draws in draw order: not seen and (with `distinct`) not an earlier
        draw of the row.
        """
        n = len(keys)
        if n == 0 or k == 0:
            return np.zeros((n, k), dtype=np.int64)
        if self._excluded is not None:
            excluded, own = self._excluded, seen

            def seen(rows, items, own=own):
                return own(rows, items) | excluded[items]

        width = k + 4 + k // 2  # most rows of a large catalogue reject nothing
        counters = t[:, None] * STRIDE + np.arange(width)
        draws = self.items(uniform(keys[:, None], Purpose.NEGATIVE, counters))
        ok = ~seen(np.arange(n)[:, None], draws)
        if distinct:
            ok &= ~_repeats(draws)
        taken = np.cumsum(ok, axis=1)
        full = taken[:, -1] >= k
        out = np.empty((n, k), dtype=np.int64)
        out[full] = draws[full][(ok & (taken <= k))[full]].reshape(-1, k)
        for i in np.flatnonzero(~full).tolist():
            out[i] = self._slow_row(
                keys[i], int(t[i]), lambda items, i=i, seen=seen: seen(i, items), k, distinct
            )
        return out

    def _slow_row(self, key, t: int, seen, k: int, distinct: bool) -> np.ndarray:
        """One row from its stream, drawing until k are accepted (same rule as `sample`).

        A user who has seen nearly all the likely items could reject draws for a long
        time (popularity weights): past a budget the rest is drawn exactly from the
        sampling distribution restricted to the items still allowed.
        """
        row: list[int] = []
        taken: set[int] = set()
        j, block = 0, 4 * k + 16
        while len(row) < k:
            if j >= EXACT_AFTER:
                return np.asarray(row + self._exact(key, t, j, seen, k - len(row), taken, distinct))
            counters = t * STRIDE + np.arange(j, j + block)
            draws = self.items(uniform(np.asarray(key), Purpose.NEGATIVE, counters))
            bad = seen(draws).tolist()
            for item, rejected in zip(draws.tolist(), bad, strict=True):
                if rejected or (distinct and item in taken):
                    continue
                taken.add(item)
                row.append(item)
                if len(row) == k:
                    break
            j += block
        return np.asarray(row, dtype=np.int64)

    def _exact(
        self, key, t: int, j: int, seen, k: int, taken: set[int], distinct: bool
    ) -> list[int]:
        items = np.arange(1, self.num_items + 1)
        allowed = items[~seen(items) & ~np.isin(items, list(taken))]
        weights = np.ones(len(allowed)) if self._cdf is None else self._weights[allowed - 1]
        out: list[int] = []
        for n in range(j, j + k):
            u = float(uniform(np.asarray(key), Purpose.NEGATIVE, np.asarray(t * STRIDE + n)))
            cdf = np.cumsum(weights)
            pick = min(int(np.searchsorted(cdf / cdf[-1], u, side="right")), len(allowed) - 1)
            out.append(int(allowed[pick]))
            if distinct:
                allowed, weights = np.delete(allowed, pick), np.delete(weights, pick)
        return out


def _repeats(draws: np.ndarray) -> np.ndarray:
    """Per row, whether each draw repeats an earlier draw of the row."""
    order = np.argsort(draws, axis=1, kind="stable")
    ordered = np.take_along_axis(draws, order, axis=1)
    repeated = np.zeros(draws.shape, dtype=bool)
    np.put_along_axis(repeated, order[:, 1:], ordered[:, 1:] == ordered[:, :-1], axis=1)
    return repeated


def make_sampler(
    kind: str,
    num_items: int,
    train_items: list[list[int]] | None = None,
    *,
    counts: np.ndarray | None = None,
    excluded: np.ndarray | None = None,
):
    """`uniform`, or `popularity` weighted by train-part counts (+1, so every item can appear).

    The counts come either as `counts` (indexed by item id, index 0 unused) or are taken
    from the train parts `train_items`.
    """
    if kind == "uniform":
        return NegativeSampler(num_items, excluded=excluded)
    if kind == "popularity":
        weights = np.ones(num_items, dtype=np.float64)
        if counts is not None:
            weights += np.asarray(counts, dtype=np.float64)[1 : num_items + 1]
        elif train_items:
            flat = np.fromiter((i for seq in train_items for i in seq), dtype=np.int64)
            weights += np.bincount(flat, minlength=num_items + 1)[1 : num_items + 1]
        return NegativeSampler(num_items, weights, excluded=excluded)
    raise ConfigError(f"unknown negative sampler {kind!r}; choose from {NEGATIVE_SAMPLERS}")
