from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recalign.data.prepare import assemble, dense_ids, prepare_dataset
from recalign.data.readers.base import SourceData
from recalign.errors import ConfigError, DataFormatError


def _source(rows, with_time=True):
    data = {
        "user": [r[0] for r in rows],
        "item": [r[1] for r in rows],
        "order": list(range(len(rows))),
    }
    if with_time:
        data["timestamp"] = [r[2] for r in rows]
    interactions = pl.DataFrame(data, schema_overrides={"order": pl.Int64, "timestamp": pl.Int64})
    keys = sorted({r[1] for r in rows})
    items = pl.DataFrame({"key": keys, "source_id": keys, "title": [f"t{k}" for k in keys]})
    return SourceData(interactions=interactions, items=items)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abcdefg"), st.sampled_from("pqrstu"), st.integers(0, 4)),
        min_size=1,
        max_size=60,
    )
)
def test_nothing_is_dropped_silently(rows):
    # Exact duplicates (same user, item, timestamp) go first; the first copy stays.
    unique = list(dict.fromkeys(rows))
    users = {r[0] for r in unique}
    counts = {u: sum(r[0] == u for r in unique) for u in users}
    long_users = sorted(u for u, n in counts.items() if n >= 3)
    if not long_users:
        with pytest.raises(DataFormatError, match="no user has at least 3"):
            assemble(_source(rows))
        return
    prepared = assemble(_source(rows))
    report = prepared.report
    lengths = prepared.sequences["items"].list.len()
    # kept + reported-as-dropped == everything read, for users and interactions
    assert report["interactions_read"] == len(rows)
    assert report["duplicates"]["dropped"] == len(rows) - len(unique)
    assert prepared.sequences.height + report["users_excluded_short"] == len(users)
    dropped = report["interactions_excluded_short"] + report["duplicates"]["dropped"]
    assert int(lengths.sum()) + dropped == len(rows)
    # each kept sequence is the user's log sorted by time, ties in file order
    key_of = dict(zip(prepared.items["item_id"], prepared.items["source_id"], strict=True))
    for user_id, user in enumerate(long_users, start=1):
        expected = [r[1] for r in sorted((r for r in unique if r[0] == user), key=lambda r: r[2])]
        got = prepared.sequences.filter(pl.col("user_id") == user_id)["items"][0].to_list()
        assert [key_of[i] for i in got] == expected
    ids = prepared.items["item_id"].to_list()
    assert ids == list(range(1, len(ids) + 1))


def test_dense_ids_numeric_then_text():
    numeric = dense_ids(pl.Series(["10", "9", "100", "9"]))
    assert numeric.sort("id")["key"].to_list() == ["9", "10", "100"]
    text = dense_ids(pl.Series(["b", "a10", "a9"]))
    assert text.sort("id")["key"].to_list() == ["a10", "a9", "b"]


def test_unknown_dataset_lists_known():
    with pytest.raises(ConfigError, match="known datasets: synthetic, amazon2014-beauty"):
        prepare_dataset("beauty", "/nonexistent")


def test_unknown_option_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown option"):
        prepare_dataset("movielens-100k", tmp_path / "o", tmp_path, colour="red")


def test_source_must_be_a_directory(tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        prepare_dataset("movielens-100k", tmp_path / "o", tmp_path / "missing")
