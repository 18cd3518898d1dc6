"""Properties of the chronological leave-one-out split."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recalign.data.split import leave_one_out
from recalign.errors import DataFormatError

sequences_strategy = st.lists(
    st.lists(st.integers(1, 50), min_size=3, max_size=30), min_size=1, max_size=20
)


def _frame(seqs, ratings=False):
    data = {"user_id": list(range(1, len(seqs) + 1)), "items": seqs}
    if ratings:
        data["ratings"] = [[float(i % 5 + 1) for i in s] for s in seqs]
    return pl.DataFrame(data, schema_overrides={"items": pl.List(pl.Int64)})


@settings(max_examples=80, deadline=None)
@given(sequences_strategy, st.booleans())
def test_leave_one_out_properties(seqs, ratings):
    split = leave_one_out(_frame(seqs, ratings))
    assert split.train.height == split.valid.height == split.test.height == len(seqs)
    for seq, train, valid, test in zip(
        seqs,
        split.train.iter_rows(named=True),
        split.valid.iter_rows(named=True),
        split.test.iter_rows(named=True),
        strict=True,
    ):
        # test = last interaction, valid = second-last, train = the rest, in order
        assert test["target_item"] == seq[-1]
        assert valid["target_item"] == seq[-2]
        assert train["items"] == seq[:-2]
        # positions are disjoint and cover the whole sequence: nothing is dropped
        assert train["items"] + [valid["target_item"], test["target_item"]] == seq
        assert valid["history"] == train["items"]
        assert test["history"] == seq[:-1]
        if ratings:
            assert test["rating"] == float(seq[-1] % 5 + 1)
            assert len(train["ratings"]) == len(train["items"])


def test_short_sequences_are_refused_not_dropped():
    with pytest.raises(DataFormatError, match="1 user"):
        leave_one_out(_frame([[1, 2, 3], [4, 5]]))
