"""Leakage invariants, as properties over random datasets (checked by ids and by text)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recalign.samples import generate_samples

from .conftest import item_text, make_dataset

NUM_ITEMS = 60


@st.composite
def datasets(draw):
    users = draw(st.integers(1, 6))
    sequences = [
        draw(st.lists(st.integers(1, NUM_ITEMS), min_size=3, max_size=14, unique=True))
        for _ in range(users)
    ]
    ratings = [[draw(st.integers(1, 5)) for _ in s] for s in sequences]
    return sequences, ratings


def check_invariants(sequences, out: Path) -> None:
    train = pl.read_parquet(out / "train.parquet")
    valid = pl.read_parquet(out / "valid.parquet")
    test = pl.read_parquet(out / "test.parquet")
    for frame, forbidden in ((train, (-2, -1)), (valid, (-1,))):
        for row in frame.iter_rows(named=True):
            sequence = sequences[row["user_id"] - 1]
            for position in forbidden:
                item = sequence[position]
                # By id (what the sample was built from) ...
                assert item not in row["items_shown"], (row, item)
                assert row["target_item"] != item
                assert item not in (row["candidates"] or [])
                # ... and by text (unambiguous: no item text contains another).
                assert item_text(item) not in row["input"]
                assert item_text(item) not in row["target"]
    for frame in (train, valid, test):
        for row in frame.iter_rows(named=True):
            sequence = sequences[row["user_id"] - 1]
            if row["task"] == "ranking":
                assert row["candidates"].count(row["target_item"]) == 1
                negatives = [i for i in row["candidates"] if i != row["target_item"]]
                assert not set(negatives) & set(sequence)
            if row["task"] == "bpr":
                *_, a, b = row["items_shown"]
                negative = b if row["target_item"] == a else a
                assert negative not in sequence
    targets = test.filter(pl.col("task") == "retrieval")["target_item"].to_list()
    assert targets == [
        sequences[u - 1][-1] for u in test.filter(pl.col("task") == "retrieval")["user_id"]
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets(), seed=st.integers(0, 1000), history=st.integers(1, 6))
def test_no_leakage(data, seed, history):
    sequences, ratings = data
    with tempfile.TemporaryDirectory() as tmp:
        dataset = make_dataset(Path(tmp) / "d", sequences, NUM_ITEMS, ratings)
        config = {"max_history": history, "tasks": {"ranking": {"num_candidates": 10}}}
        generate_samples(dataset, Path(tmp) / "o", preset="paper", seed=seed, config=config)
        check_invariants(sequences, Path(tmp) / "o")
