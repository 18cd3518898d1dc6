"""Real datasets (marked `data`): Beauty with the paper preset, MovieLens-100K with ratings."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import polars as pl
import pytest

from recalign.samples import build_eval_samples, generate_samples

pytestmark = pytest.mark.data

USERS = 400  # a user subset keeps the test fast; the bench runs the whole set


def prepared(name: str, source: Path, out: Path, users: int = USERS):
    from recalign.data.prepare import prepare_dataset

    dataset = prepare_dataset(name, out, source=source)
    # A subset of users, same items; data_hash stays the full dataset's (only a test).
    return dataclasses.replace(dataset, frame=dataset.sequences.head(users))


@pytest.fixture(scope="module")
def beauty(real_data_dir, tmp_path_factory):
    source = real_data_dir / "amazon2014" / "beauty"
    if not source.is_dir():
        pytest.skip(f"{source} not found")
    return prepared("amazon2014-beauty", source, tmp_path_factory.mktemp("beauty"))


@pytest.fixture(scope="module")
def movielens(real_data_dir, tmp_path_factory):
    source = real_data_dir / "movielens-100k"
    if not source.is_dir():
        pytest.skip(f"{source} not found")
    return prepared("movielens-100k", source, tmp_path_factory.mktemp("ml"), users=100)


def test_beauty_paper_preset(beauty, tmp_path):
    manifest = generate_samples(beauty, tmp_path / "o", preset="paper")
    assert set(manifest.counts["train"]) == {"retrieval", "ranking", "mim", "bpr", "mlm"}
    assert "rating" in manifest.skipped
    assert manifest.totals["valid"] == manifest.totals["test"] == 2 * USERS
    train = pl.read_parquet(tmp_path / "o" / "train.parquet")
    sequences = dict(
        zip(beauty.sequences["user_id"], beauty.sequences["items"].to_list(), strict=True)
    )
    texts = beauty.item_texts
    for row in train.sample(3000, seed=0).iter_rows(named=True):
        sequence = sequences[row["user_id"]]
        held_out = set(sequence[-2:]) - set(sequence[:-2])  # repeat purchases are history
        assert not held_out & set(row["items_shown"])
        assert row["target_item"] not in held_out
        for item in held_out:
            text = texts[item]
            others = [texts[i] for i in row["items_shown"]]
            if not any(text in other for other in others):  # unambiguous by text
                assert text not in row["input"] and text not in row["target"]
    assert train["input"].str.len_chars().max() < 20_000


def test_beauty_eval_samples(beauty):
    frame = build_eval_samples(beauty, "ranking", "test", max_users=50)
    assert frame.height == 50
    for row in frame.iter_rows(named=True):
        assert row["candidates"].count(row["target_item"]) == 1


def test_movielens_has_rating(movielens, tmp_path):
    manifest = generate_samples(movielens, tmp_path / "o", preset="rec-only")
    assert manifest.counts["train"]["rating"] > 0
    assert manifest.counts["test"]["rating"] == 100
    test = pl.read_parquet(tmp_path / "o" / "test.parquet").filter(pl.col("task") == "rating")
    assert set(test["target"]) <= {"1", "2", "3", "4", "5"}
    ratings = (
        movielens.sequences.sort("user_id")["ratings"].list.last().cast(pl.Int64).cast(pl.String)
    )
    assert test["target"].to_list() == ratings.to_list()


SHOP_WORDS = re.compile(r"purchase|bought|buy|shop|product", re.IGNORECASE)


@pytest.fixture(scope="module")
def movielens_all(real_data_dir, tmp_path_factory):
    from recalign.data.prepare import prepare_dataset

    source = real_data_dir / "movielens-100k"
    if not source.is_dir():
        pytest.skip(f"{source} not found")
    return prepare_dataset("movielens-100k", tmp_path_factory.mktemp("ml-all"), source=source)


def test_movielens_prompts_never_speak_of_shopping(movielens_all, tmp_path):
    """All 943 users; every task, split and template (held-out ones included)."""
    from recalign.data.domain import DOMAINS
    from recalign.samples import load_templates

    movielens = movielens_all
    assert movielens.domain == DOMAINS["movies"]
    templates = load_templates()
    every = {t: {"templates": [x.id for x in templates.for_task(t, None)]} for t in templates.tasks}
    inputs: list[str] = []
    # Only MLM depends on the family: the causal run makes MLM alone.
    causal_mlm = {t: ({"ratio": 0} if t != "mlm" else every[t]) for t in templates.tasks}
    for family, tasks in (("seq2seq", every), ("causal", causal_mlm)):
        out = tmp_path / family
        generate_samples(movielens, out, preset="paper", family=family, config={"tasks": tasks})
        for split in ("train", "valid", "test"):
            inputs += pl.read_parquet(out / f"{split}.parquet").get_column("input").to_list()
    for task in ("retrieval", "ranking", "rating"):
        frame = build_eval_samples(movielens, task, "test", template="unseen")
        inputs += frame.get_column("input").to_list()
    assert len(inputs) > 600_000
    # Only movie titles may hold such words ("Shopping" is a 1994 film): take the title
    # words that match out of the prompts; what remains is the templates' own text.
    title_words = {
        word
        for text in movielens.items.get_column("text").to_list()
        for word in text.split()
        if SHOP_WORDS.search(word)
    }
    assert title_words <= {"Shopping"}, title_words
    pattern = re.compile("|".join(rf"\b{re.escape(w)}\b" for w in title_words) or "(?!)")
    found = SHOP_WORDS.search(pattern.sub("", "\n".join(inputs)))
    assert found is None, found
    assert sum("movie" in t or "watched" in t for t in inputs) > 0.5 * len(inputs)
