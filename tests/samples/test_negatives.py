from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recalign.errors import ConfigError
from recalign.samples.draws import user_keys
from recalign.samples.negatives import NegativeSampler, make_sampler


def excluded_by(sets):
    """A `seen(rows, items)` over one excluded set per row."""

    def seen(rows, items):
        rows, items = np.broadcast_arrays(rows, items)
        return np.array(
            [
                i in sets[r]
                for r, i in zip(rows.ravel().tolist(), items.ravel().tolist(), strict=True)
            ],
            dtype=bool,
        ).reshape(items.shape)

    return seen


@settings(max_examples=60, deadline=None)
@given(num_items=st.integers(2, 60), data=st.data(), seed=st.integers(0, 2**32))
def test_distinct_rows_avoid_the_user_and_repeat_nothing(num_items, data, seed):
    n = data.draw(st.integers(0, 8))
    sets = [
        set(data.draw(st.lists(st.integers(1, num_items), max_size=num_items - 1)))
        for _ in range(n)
    ]
    k = data.draw(st.integers(1, num_items - max((len(s) for s in sets), default=0)))
    keys = user_keys(seed, 1, "train", np.arange(n))
    t = np.arange(n, dtype=np.int64) + 1
    rows = NegativeSampler(num_items).sample(keys, t, excluded_by(sets), k)
    assert rows.shape == (n, k)
    for row, exclude in zip(rows.tolist(), sets, strict=True):
        assert len(set(row)) == k
        assert not set(row) & exclude
        assert all(1 <= i <= num_items for i in row)
    # A row depends on its own key and position only: drawn alone, it is the same.
    for i in range(n):
        alone = NegativeSampler(num_items).sample(
            keys[i : i + 1], t[i : i + 1], excluded_by(sets[i : i + 1]), k
        )
        assert alone.tolist() == rows[i : i + 1].tolist()


@settings(max_examples=60, deadline=None)
@given(num_items=st.integers(2, 60), data=st.data(), seed=st.integers(0, 2**32))
def test_one_each_avoids_the_user(num_items, data, seed):
    exclude = set(data.draw(st.lists(st.integers(1, num_items), max_size=num_items - 1)))
    n = data.draw(st.integers(0, 20))
    keys = user_keys(seed, 4, "train", np.zeros(n, dtype=np.int64))
    for kind in ("uniform", "popularity"):
        sampler = make_sampler(kind, num_items, [[1, 1, 2]])
        out = sampler.sample(keys, np.arange(n), excluded_by([exclude] * n), 1, distinct=False)
        assert out.shape == (n, 1) and not set(out[:, 0].tolist()) & exclude


def test_uniform_is_uniform_over_unseen_items():
    n = 80_000
    keys = user_keys(0, 4, "train", np.arange(n))
    draws = NegativeSampler(10).sample(keys, np.ones(n, np.int64), excluded_by([{1, 2}] * n), 1)
    counts = np.bincount(draws[:, 0], minlength=11)[1:]
    assert counts[:2].sum() == 0
    np.testing.assert_allclose(counts[2:] / n, 1 / 8, atol=0.01)


def test_popularity_follows_train_counts_plus_one():
    # Train counts: item 1 x5, item 2 x1, items 3-4 x0 -> weights 6, 2, 1, 1; item 4 excluded.
    sampler = make_sampler("popularity", 4, [[1, 1, 1, 2], [1, 1]])
    n = 90_000
    keys = user_keys(1, 4, "train", np.arange(n))
    draws = sampler.sample(keys, np.ones(n, np.int64), excluded_by([{4}] * n), 1, distinct=False)
    share = np.bincount(draws[:, 0], minlength=5)[1:] / n
    np.testing.assert_allclose(share, [6 / 9, 2 / 9, 1 / 9, 0], atol=0.01)


def test_not_enough_unseen_items():
    with pytest.raises(ConfigError, match="cannot sample 3 distinct"):
        NegativeSampler(5).check(np.array([2, 3]), 3)
    NegativeSampler(5).check(np.array([2, 2]), 3)  # enough for everyone


def test_same_key_and_position_same_rows():
    sampler = NegativeSampler(1000)
    keys = user_keys(9, 1, "train", np.arange(5))
    a = sampler.sample(keys, np.arange(5), excluded_by([{1}] * 5), 19)
    b = sampler.sample(keys, np.arange(5), excluded_by([{1}] * 5), 19)
    c = sampler.sample(keys, np.arange(5) + 1, excluded_by([{1}] * 5), 19)
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


def test_a_nearly_seen_catalogue_falls_back_to_exact_sampling():
    # The user has every heavy item: rejection would need ~10^6 draws per negative.
    sampler = NegativeSampler(30, np.array([2e5] * 25 + [1.0] * 5))
    keys = user_keys(0, 1, "train", np.array([7, 8]))
    seen = excluded_by([set(range(1, 26))] * 2)
    rows = sampler.sample(keys, np.array([3, 3]), seen, 5)
    assert [sorted(r) for r in rows.tolist()] == [[26, 27, 28, 29, 30]] * 2
    assert rows.tolist() == sampler.sample(keys, np.array([3, 3]), seen, 5).tolist()
    assert rows[0].tolist() != rows[1].tolist()  # each row its own stream
    one = sampler.sample(keys, np.array([3, 3]), seen, 1, distinct=False)
    assert set(one[:, 0].tolist()) <= {26, 27, 28, 29, 30}
