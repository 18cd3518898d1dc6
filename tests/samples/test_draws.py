"""The counter-based draws: keyed, reproducible, uniform, and independent across keys."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recalign.samples.draws import Purpose, below, bits, uniform, user_keys


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**63 - 1),
    users=st.lists(st.integers(0, 2**40), min_size=1, max_size=20),
)
def test_a_users_key_does_not_depend_on_the_others(seed, users):
    together = user_keys(seed, 2, "train", np.array(users))
    alone = [user_keys(seed, 2, "train", np.array([u]))[0] for u in users]
    assert together.tolist() == [int(k) for k in alone]


def test_keys_differ_by_seed_task_split_and_user():
    users = np.arange(1000)
    base = user_keys(0, 0, "train", users)
    for other in (
        user_keys(1, 0, "train", users),
        user_keys(0, 1, "train", users),
        user_keys(0, 0, "valid", users),
        user_keys(0, 0, "train", users + len(users)),
    ):
        assert not np.intersect1d(base, other).size
    assert len(np.unique(base)) == len(users) and 0 not in base


def test_uniform_moments_and_independence():
    keys = user_keys(3, 0, "train", np.arange(200_000))
    t = np.ones(len(keys), dtype=np.int64)
    u = uniform(keys, Purpose.TEMPLATE, t)
    v = uniform(keys, Purpose.SLOT, t)  # another purpose of the same keys
    w = uniform(keys, Purpose.TEMPLATE, t + 1)  # the next position
    for x in (u, v, w):
        assert x.min() >= 0.0 and x.max() < 1.0
        assert abs(x.mean() - 0.5) < 0.005 and abs(x.var() - 1 / 12) < 0.002
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.01 and abs(np.corrcoef(u, w)[0, 1]) < 0.01
    counts = np.bincount(below(keys, Purpose.SWAP, t, 7), minlength=7) / len(keys)
    np.testing.assert_allclose(counts, 1 / 7, atol=0.004)


MASK = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15


def splitmix_finaliser(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def reference_bits(seed: int, task: int, split: int, user: int, purpose: int, n: int) -> int:
    """The documented scheme with Python integers: key, stream seed, then SplitMix64 draw n."""
    key = GOLDEN_GAMMA
    for word in (seed, task, split):
        key = splitmix_finaliser((key + word * GOLDEN_GAMMA) & MASK)
    key = splitmix_finaliser((key + user * GOLDEN_GAMMA) & MASK)
    stream = splitmix_finaliser(key ^ ((purpose * 0x94D049BB133111EB) & MASK))
    return splitmix_finaliser((stream + (n + 1) * GOLDEN_GAMMA) & MASK)


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**63 - 1),
    user=st.integers(0, 2**62),
    n=st.integers(0, 2**50),
    purpose=st.sampled_from(list(Purpose)),
)
def test_draws_follow_the_documented_splitmix_scheme(seed, user, n, purpose):
    keys = user_keys(seed, 3, "valid", np.array([user]))
    value = bits(keys, purpose, np.array([n]))
    assert value.dtype == np.uint64
    assert int(value[0]) == reference_bits(seed, 3, 1, user, int(purpose), n)
