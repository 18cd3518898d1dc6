"""Each task on the fixture: hand-checked strings and structural properties."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recalign.samples import generate_samples
from recalign.samples.context import build_contexts, default_options
from recalign.samples.tasks.base import UserData, format_rating
from recalign.samples.tasks.mlm import mask_words
from recalign.samples.templates import load_templates

from .conftest import SEQUENCES, item_text


@pytest.fixture
def train_frame(tiny, tmp_path):
    generate_samples(tiny, tmp_path / "out", preset="paper", seed=3)
    return pl.read_parquet(tmp_path / "out" / "train.parquet")


def test_every_task_is_generated(train_frame):
    assert set(train_frame["task"].unique()) == {
        "retrieval",
        "ranking",
        "rating",
        "mim",
        "bpr",
        "mlm",
    }


def test_retrieval_one_sample_per_train_position(train_frame):
    rows = train_frame.filter(pl.col("task") == "retrieval")
    # Train parts have len - 2 items; positions t >= 1 give len - 3 samples per user.
    assert rows.height == sum(max(len(s) - 3, 0) for s in SEQUENCES)
    first = rows.filter(pl.col("user_id") == 1).row(0, named=True)
    assert first["target_item"] == 2
    assert first["target"] == item_text(2)
    assert item_text(1) in first["input"] and item_text(2) not in first["input"]
    assert first["items_shown"] == [1, 2]


def test_retrieval_exact_prompt_with_the_default_template(tiny):
    templates = load_templates()
    template = templates.resolve("retrieval", "default")
    ctx = build_contexts(tiny, {"retrieval": default_options("retrieval")}, templates)["retrieval"]
    ctx.templates = [template]
    from recalign.samples.buffer import SampleBuffer
    from recalign.samples.tasks import retrieval

    out = SampleBuffer()
    user = UserData(1, [1, 2, 3, 4], None, {1, 2, 3, 4, 5, 6})
    retrieval.train(user, np.random.default_rng(0), ctx, out)
    assert [row[3] for row in out.rows] == [
        f"A user has bought these items, in order: {item_text(1)}. Which item will the user buy next?",
        f"A user has bought these items, in order: {item_text(1)}; {item_text(2)}. Which item will the user buy next?",
        f"A user has bought these items, in order: {item_text(1)}; {item_text(2)}; {item_text(3)}. Which item will the user buy next?",
    ]
    assert [row[5] for row in out.rows] == [2, 3, 4]


def test_max_history_cuts_the_oldest_items(tiny, tmp_path):
    generate_samples(tiny, tmp_path / "o", preset="rec-only", config={"max_history": 2})
    rows = pl.read_parquet(tmp_path / "o" / "train.parquet").filter(
        (pl.col("task") == "retrieval") & (pl.col("user_id") == 5)
    )
    last = rows.row(-1, named=True)  # train part of user 5: items 2, 17..23; target 23
    assert last["target_item"] == 23
    assert last["items_shown"] == [21, 22, 23]
    assert item_text(20) not in last["input"]


def test_ranking_candidates(train_frame):
    rows = train_frame.filter(pl.col("task") == "ranking")
    for row in rows.iter_rows(named=True):
        candidates = row["candidates"]
        assert len(candidates) == 20 == len(set(candidates))
        assert candidates.count(row["target_item"]) == 1
        assert row["input"].count(item_text(row["target_item"])) == 1
    # The positive's slot is random, not always first or last.
    slots = {row["candidates"].index(row["target_item"]) for row in rows.iter_rows(named=True)}
    assert len(slots) > 3


def test_rating_targets_are_the_ratings(train_frame, tiny):
    rows = train_frame.filter(pl.col("task") == "rating").filter(pl.col("user_id") == 1)
    # User 1 rated items 1..6 with (0 + i) % 5 + 1: item 2 -> 2, item 3 -> 3, item 4 -> 4.
    assert rows["target"].to_list() == ["2", "3", "4"]
    assert rows["target_item"].null_count() == rows.height
    assert "(rated 1)" in rows["input"][0]


def test_mim_masks_items_of_the_window(train_frame):
    rows = train_frame.filter(pl.col("task") == "mim")
    templates = load_templates()
    assert rows.height > 0
    for row in rows.iter_rows(named=True):
        hidden = row["target"].split("; ")
        assert 1 <= len(hidden) < len(row["items_shown"])
        in_template = templates.resolve("mim", row["template"]).input.count("{{ mask }}")
        assert row["input"].count("[MASK]") == len(hidden) + in_template
        for text in hidden:
            assert text not in row["input"]
            assert text in {item_text(i) for i in row["items_shown"]}
        if len(hidden) == 1:
            assert item_text(row["target_item"]) == row["target"]


def test_bpr_pairs(train_frame):
    rows = train_frame.filter(pl.col("task") == "bpr")
    firsts = []
    for row in rows.iter_rows(named=True):
        *_, a, b = row["items_shown"]
        assert row["target_item"] in (a, b)
        negative = b if row["target_item"] == a else a
        assert negative not in SEQUENCES[row["user_id"] - 1]
        firsts.append(row["target_item"] == a)
    assert any(firsts) and not all(firsts)  # order is random


def test_mlm_seq2seq_targets_use_t5_sentinels(train_frame):
    rows = train_frame.filter(pl.col("task") == "mlm")
    assert rows.height > 0
    for row in rows.iter_rows(named=True):
        n = row["input"].count("<extra_id_")
        assert n >= 1
        assert row["target"].startswith("<extra_id_0>")
        assert row["target"].endswith(f"<extra_id_{n}>")


def test_mask_words_hand_computed():
    words = [["a", "b", "c"], ["d", "e"]]
    masked = [1, 2, 3]  # b c d: the span b c stops at the item boundary
    texts, target = mask_words(words, masked, "seq2seq", "[MASK]", "; ")
    assert texts == ["a <extra_id_0>", "<extra_id_1> e"]
    assert target == "<extra_id_0> b c <extra_id_1> d <extra_id_2>"
    texts, target = mask_words(words, masked, "causal", "[MASK]", "; ")
    assert texts == ["a [MASK]", "[MASK] e"]
    assert target == "b c; d"
    texts, target = mask_words(words, [0, 4], "seq2seq", "[MASK]", "; ")
    assert texts == ["<extra_id_0> b c", "d <extra_id_1>"]
    assert target == "<extra_id_0> a <extra_id_1> e <extra_id_2>"
    texts, target = mask_words(words, [], "seq2seq", "[MASK]", "; ")
    assert texts == ["a b c", "d e"] and target == "<extra_id_0>"


def test_mask_words_runs_out_of_sentinels():
    words = [[f"w{i}" for i in range(300)]]
    texts, target = mask_words(words, list(range(0, 300, 2)), "seq2seq", "[MASK]", "; ")
    assert texts[0].count("<extra_id_") == 99
    assert target.endswith("<extra_id_99>") and "<extra_id_100>" not in target
    assert "w198" in texts[0] and "w197" in texts[0]


def test_mlm_causal_family(tiny, tmp_path):
    generate_samples(tiny, tmp_path / "c", preset="rec+mlm", family="causal")
    rows = pl.read_parquet(tmp_path / "c" / "train.parquet").filter(pl.col("task") == "mlm")
    assert rows.height > 0
    assert not rows["input"].str.contains("extra_id").any()
    assert rows["input"].str.contains(r"\[MASK\]", literal=False).all()


@pytest.mark.parametrize(("value", "text"), [(4.0, "4"), (3.5, "3.5"), (1, "1")])
def test_format_rating(value, text):
    assert format_rating(value) == text


def test_id_representation_is_a_random_permutation(tiny, tmp_path):
    generate_samples(tiny, tmp_path / "id", preset="rec-only", item_repr="id")
    texts = pl.read_parquet(tmp_path / "id" / "item_texts.parquet")
    numbers = texts["text"].str.extract(r"<item_(\d+)>").cast(pl.Int64).to_list()
    assert sorted(numbers) == list(range(1, 41))
    assert numbers != list(range(1, 41))  # never the sequential ids
    rows = pl.read_parquet(tmp_path / "id" / "train.parquet").filter(pl.col("task") == "retrieval")
    row = rows.row(0, named=True)
    assert row["target"] == texts["text"][row["target_item"] - 1]
    assert "Product" not in row["input"]


def test_id_plus_title(tiny, tmp_path):
    generate_samples(tiny, tmp_path / "it", preset="rec-only", item_repr="id+title")
    texts = pl.read_parquet(tmp_path / "it" / "item_texts.parquet")["text"].to_list()
    assert texts[0].startswith("<item_") and texts[0].endswith(item_text(1))
