from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recalign.errors import ConfigError
from recalign.samples.negatives import NegativeSampler, make_sampler


@settings(max_examples=60, deadline=None)
@given(
    num_items=st.integers(2, 60),
    data=st.data(),
    seed=st.integers(0, 2**32),
)
def test_distinct_rows_avoid_the_user_and_repeat_nothing(num_items, data, seed):
    exclude = set(data.draw(st.lists(st.integers(1, num_items), max_size=num_items - 1)))
    k = data.draw(st.integers(1, num_items - len(exclude)))
    n = data.draw(st.integers(0, 8))
    rows = NegativeSampler(num_items).distinct_rows(np.random.default_rng(seed), exclude, n, k)
    assert len(rows) == n
    for row in rows:
        assert len(row) == k == len(set(row))
        assert not set(row) & exclude
        assert all(1 <= i <= num_items for i in row)


@settings(max_examples=60, deadline=None)
@given(num_items=st.integers(2, 60), data=st.data(), seed=st.integers(0, 2**32))
def test_one_each_avoids_the_user(num_items, data, seed):
    exclude = set(data.draw(st.lists(st.integers(1, num_items), max_size=num_items - 1)))
    n = data.draw(st.integers(0, 20))
    for kind in ("uniform", "popularity"):
        sampler = make_sampler(kind, num_items, [[1, 1, 2]])
        out = sampler.one_each(np.random.default_rng(seed), exclude, n)
        assert len(out) == n and not set(out) & exclude


def test_uniform_is_uniform_over_unseen_items():
    sampler = NegativeSampler(10)
    draws = sampler.one_each(np.random.default_rng(0), {1, 2}, 80_000)
    counts = np.bincount(draws, minlength=11)[1:]
    assert counts[:2].sum() == 0
    np.testing.assert_allclose(counts[2:] / 80_000, 1 / 8, atol=0.01)


def test_popularity_follows_train_counts_plus_one():
    # Train counts: item 1 x5, item 2 x1, items 3-4 x0 -> weights 6, 2, 1, 1; item 4 excluded.
    sampler = make_sampler("popularity", 4, [[1, 1, 1, 2], [1, 1]])
    draws = sampler.one_each(np.random.default_rng(1), {4}, 90_000)
    share = np.bincount(draws, minlength=5)[1:] / 90_000
    np.testing.assert_allclose(share, [6 / 9, 2 / 9, 1 / 9, 0], atol=0.01)


def test_not_enough_unseen_items():
    with pytest.raises(ConfigError, match="cannot sample 3 distinct"):
        NegativeSampler(5).distinct_rows(np.random.default_rng(0), {1, 2, 3}, 1, 3)


def test_same_generator_state_same_rows():
    sampler = NegativeSampler(1000)
    a = sampler.distinct_rows(np.random.default_rng(9), {1}, 5, 19)
    b = sampler.distinct_rows(np.random.default_rng(9), {1}, 5, 19)
    assert a == b
