"""The 1 + n sampled-candidates helper."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recalign.errors import ConfigError
from recalign.evaluation.protocols import sampled_candidates


@given(
    num_items=st.integers(2, 400),
    seen=st.sets(st.integers(1, 400), max_size=60),
    n=st.integers(0, 120),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=200, deadline=None)
def test_candidates_are_target_plus_unseen_distinct_negatives(num_items, seen, n, seed):
    seen = {i for i in seen if i <= num_items}
    target = num_items  # the last item, possibly also in the history
    available = num_items - len(seen | {target})
    if available < n:
        with pytest.raises(ConfigError, match="cannot sample"):
            sampled_candidates(seen, target, num_items, n, np.random.default_rng(seed))
        return
    out = sampled_candidates(seen, target, num_items, n, np.random.default_rng(seed), shuffle=False)
    assert out[0] == target
    negatives = out[1:]
    assert len(negatives) == n == len(set(negatives))
    assert not set(negatives) & (seen | {target})
    assert all(1 <= i <= num_items for i in negatives)


@pytest.mark.parametrize("num_items", [120, 5000])  # dense and sparse sampling paths
def test_candidates_are_seeded(num_items):
    seen = set(range(1, 20))
    a = sampled_candidates(seen, 30, num_items, 99, np.random.default_rng(3))
    b = sampled_candidates(seen, 30, num_items, 99, np.random.default_rng(3))
    c = sampled_candidates(seen, 30, num_items, 99, np.random.default_rng(4))
    assert a == b != c


def test_negatives_are_roughly_uniform():
    rng = np.random.default_rng(0)
    counts = np.zeros(1001)
    for _ in range(400):
        counts[sampled_candidates({1, 2}, 3, 1000, 50, rng, shuffle=False)[1:]] += 1
    unseen = counts[4:]
    # 20,000 draws over 997 items: ~20 each; no item is starved or favoured.
    assert unseen.min() > 3 and unseen.max() < 45 and counts[1:4].sum() == 0


def test_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="outside the catalogue"):
        sampled_candidates(set(), 11, 10, 3, rng)
    with pytest.raises(ConfigError, match=">= 0"):
        sampled_candidates(set(), 1, 10, -1, rng)


def test_shuffled_candidates_hide_the_target_position():
    rng = np.random.default_rng(0)
    positions = []
    for _ in range(2000):
        out = sampled_candidates({5, 6}, 7, 200, 9, rng)
        assert sorted(out) == sorted(set(out)) and 7 in out and len(out) == 10
        positions.append(out.index(7))
    # Uniform over 10 positions: each ~200 times; a constant scorer that keeps the
    # candidate order now gets hit@1 ~ 0.1, not 1.
    counts = np.bincount(positions, minlength=10)
    assert counts.min() > 140 and counts.max() < 260
