from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from recalign.data.kcore import kcore_filter


def _frame(pairs):
    return pl.DataFrame(
        {"user": [p[0] for p in pairs], "item": [p[1] for p in pairs]},
        schema={"user": pl.Utf8, "item": pl.Utf8},
    )


def test_kcore_needs_several_passes():
    # u1..u2 x i1..i2 is a 2-core; u3 reaches 2 only through i3, which only u3 has,
    # so dropping i3 (1 user) drops u3 to 1 interaction in the second pass.
    pairs = [("u1", "i1"), ("u1", "i2"), ("u2", "i1"), ("u2", "i2"), ("u3", "i1"), ("u3", "i3")]
    kept, passes = kcore_filter(_frame(pairs), 2, user_col="user", item_col="item")
    assert sorted(kept.rows()) == sorted(pairs[:4])
    assert passes == 3  # two passes that remove something, one that confirms


def test_kcore_keeps_row_order():
    pairs = [("b", "y"), ("a", "x"), ("b", "x"), ("a", "y")]
    kept, _ = kcore_filter(_frame(pairs), 2, user_col="user", item_col="item")
    assert kept.rows() == pairs


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from("uvwxyz")), max_size=40),
    st.integers(1, 4),
)
def test_kcore_property(pairs, k):
    frame = _frame(pairs)
    kept, _ = kcore_filter(frame, k, user_col="user", item_col="item")
    if kept.height:
        assert kept.group_by("user").len()["len"].min() >= k
        assert kept.group_by("item").len()["len"].min() >= k
    again, passes = kcore_filter(kept, k, user_col="user", item_col="item")
    assert again.equals(kept) and passes == 1
    # Maximal: naive peeling (one node at a time) gives the same set.
    rows = list(pairs)
    changed = True
    while changed:
        changed = False
        for side in (0, 1):
            counts = {}
            for row in rows:
                counts[row[side]] = counts.get(row[side], 0) + 1
            low = {key for key, n in counts.items() if n < k}
            if low:
                rows = [r for r in rows if r[side] not in low]
                changed = True
    assert sorted(kept.rows()) == sorted(rows)
