import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recalign.baselines.base import top_k


def test_top_k_hand_computed_with_ties_and_padding():
    scores = np.array([[9.0, 1.0, 3.0, 3.0, 2.0], [9.0, 0.0, 0.0, 5.0, 0.0]])
    ids, values = top_k(scores, 3)
    # column 0 (padding) never comes back; the 3.0 tie goes to the lower id
    assert ids.tolist() == [[2, 3, 4], [3, 1, 2]]
    assert values.tolist() == [[3.0, 3.0, 2.0], [5.0, 0.0, 0.0]]


def test_top_k_excludes_and_pads_when_too_few_items_remain():
    scores = np.array([[0.0, 1.0, 2.0, 3.0]])
    ids, values = top_k(scores, 3, exclude=[[3, 2]])
    assert ids.tolist() == [[1, 0, 0]]
    assert values[0, 0] == 1.0 and np.isneginf(values[0, 1:]).all()


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=2, max_value=30).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=n + 1, max_size=n + 1),
            st.lists(st.integers(1, n), max_size=n),
            st.integers(1, n),
        )
    )
)
def test_top_k_matches_a_full_sort(case):
    n, row, excluded, k = case
    scores = np.array([row], dtype=np.float32)
    ids, values = top_k(scores, k, exclude=[excluded])
    allowed = [i for i in range(1, n + 1) if i not in set(excluded)]
    expected = sorted(allowed, key=lambda i: (-scores[0, i], i))[:k]
    got = [i for i in ids[0].tolist() if i != 0]
    assert got == expected
    assert not set(got) & set(excluded)
    assert np.all(np.diff(values[0][: len(got)]) <= 0)
