"""The candidate set of the sampled (1 + n) protocol.

The protocols themselves (names, prompts, history rule) are in `recalign.ranking`.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from recalign.errors import ConfigError


def sampled_candidates(
    user_items: Collection[int],
    target: int,
    num_items: int,
    n: int,
    rng: np.random.Generator,
    *,
    shuffle: bool = True,
) -> list[int]:
    """The target and `n` distinct seeded negatives the user never interacted with.

    Item ids are 1..num_items (the prepared-dataset contract). This is the candidate set
    of the 1 + 99 ("sampled") protocol. By default the list is shuffled with `rng`, so a
    scorer that breaks score ties by position cannot favour the target (a constant
    scorer then gets the chance-level hit@1 of 1 / (n + 1), not 1); with
    `shuffle=False` the target comes first.
    """
    if n < 0:
        raise ConfigError(f"the number of negatives must be >= 0, got {n}")
    if not 1 <= int(target) <= num_items:
        raise ConfigError(f"target item {target} is outside the catalogue 1..{num_items}")
    excluded = {int(i) for i in user_items if 1 <= int(i) <= num_items}
    excluded.add(int(target))
    available = num_items - len(excluded)
    if available < n:
        raise ConfigError(
            f"cannot sample {n} negatives: only {available} of {num_items} items are unseen "
            "by this user; lower the number of candidates"
        )
    if available <= 2 * n:
        # Dense case: sampling without replacement from the complement is cheaper than
        # rejection, which would keep hitting seen items.
        pool = np.setdiff1d(np.arange(1, num_items + 1), np.fromiter(excluded, dtype=np.int64))
        negatives = rng.choice(pool, size=n, replace=False).tolist()
    else:
        # Sparse case (a catalogue of thousands, a history of tens): rejection sampling
        # touches O(n) ids instead of materialising the whole catalogue per user.
        negatives: list[int] = []
        chosen: set[int] = set()
        while len(negatives) < n:
            for item in rng.integers(1, num_items + 1, size=2 * (n - len(negatives)) + 8).tolist():
                if item not in excluded and item not in chosen:
                    chosen.add(item)
                    negatives.append(item)
                    if len(negatives) == n:
                        break
    candidates = [int(target), *(int(i) for i in negatives)]
    if shuffle:
        order = rng.permutation(len(candidates))
        candidates = [candidates[i] for i in order]
    return candidates
