from __future__ import annotations

import polars as pl
import pytest

from recalign.errors import ConfigError
from recalign.samples import build_eval_samples, generate_samples, render_prompt
from recalign.samples.tasks import load_templates

from .conftest import SEQUENCES, item_text


def test_retrieval_test_split(tiny):
    frame = build_eval_samples(tiny, "retrieval", "test")
    assert frame.columns == [
        "user_id",
        "template",
        "input",
        "target",
        "target_item",
        "history",
        "full_history",
        "history_bounds",
    ]
    assert frame["user_id"].to_list() == list(range(1, 7))
    assert frame["target_item"].to_list() == [s[-1] for s in SEQUENCES]
    assert frame["full_history"].to_list() == [s[:-1] for s in SEQUENCES]
    assert set(frame["template"]) == {"retrieval-1"}
    row = frame.row(1, named=True)  # user 2: 3 4 7 | 8
    prefix = "A user has interacted with these items, in order: "
    assert row["input"] == (
        f"{prefix}{item_text(3)}; {item_text(4)}; "
        f"{item_text(7)}. Which item will the user interact with next?"
    )
    assert row["target"] == item_text(8)
    # Item starts, the end of the newest item, where the text resumes (all ASCII here).
    starts = [row["input"].index(item_text(i)) for i in (3, 4, 7)]
    end = starts[-1] + len(item_text(7))
    assert starts[0] == len(prefix) and row["history_bounds"] == [*starts, end, end]


def test_valid_split_history_is_the_train_part(tiny):
    frame = build_eval_samples(tiny, "retrieval", "valid", max_history=2)
    assert frame["target_item"].to_list() == [s[-2] for s in SEQUENCES]
    assert frame["full_history"].to_list() == [s[:-2] for s in SEQUENCES]
    assert frame["history"].to_list() == [s[:-2][-2:] for s in SEQUENCES]
    for row in frame.iter_rows(named=True):
        test_item = SEQUENCES[row["user_id"] - 1][-1]
        assert item_text(test_item) not in row["input"]


def test_ranking_candidates_match_generation(tiny, tmp_path):
    generate_samples(tiny, tmp_path / "o", preset="rec-only", seed=4)
    generated = pl.read_parquet(tmp_path / "o" / "test.parquet").filter(pl.col("task") == "ranking")
    frame = build_eval_samples(tiny, "ranking", "test", seed=4)
    assert frame["candidates"].to_list() == generated["candidates"].to_list()
    for row in frame.iter_rows(named=True):
        assert row["candidates"].count(row["target_item"]) == 1
        assert not set(row["candidates"]) & set(row["full_history"])


def test_rating_rows(tiny):
    frame = build_eval_samples(tiny, "rating", "test", template="unseen")
    assert set(frame["template"]) == {"rating-unseen-1"}
    assert frame["target_item"].null_count() == frame.height
    assert frame["item"].to_list() == [s[-1] for s in SEQUENCES]
    # User 1's ratings are (0 + i) % 5 + 1 -> the test item (i = 5) is rated 1.
    assert frame["target"][0] == "1"


def test_users_and_max_users(tiny):
    assert build_eval_samples(tiny, "retrieval", users=[5, 2])["user_id"].to_list() == [2, 5]
    picked = build_eval_samples(tiny, "retrieval", max_users=3, seed=1)["user_id"].to_list()
    assert len(picked) == 3 and picked == sorted(picked)
    assert picked == build_eval_samples(tiny, "retrieval", max_users=3, seed=1)["user_id"].to_list()
    with pytest.raises(ConfigError, match="unknown user id"):
        build_eval_samples(tiny, "retrieval", users=[99])


def test_bad_requests(tiny, tiny_no_ratings):
    with pytest.raises(ConfigError, match="evaluation task"):
        build_eval_samples(tiny, "mim")
    with pytest.raises(ConfigError, match="needs ratings"):
        build_eval_samples(tiny_no_ratings, "rating")
    with pytest.raises(ConfigError, match="larger than the catalogue"):
        build_eval_samples(tiny, "ranking", num_candidates=100)


def test_render_prompt_matches_the_samples(tiny):
    frame = build_eval_samples(tiny, "retrieval", "test", template="retrieval-3")
    row = frame.row(0, named=True)
    texts = [item_text(i) for i in row["history"]]
    assert render_prompt("retrieval", texts, template="retrieval-3") == row["input"]
    ranking = build_eval_samples(tiny, "ranking", "test").row(0, named=True)
    prompt = render_prompt(
        "ranking",
        [item_text(i) for i in ranking["history"]],
        candidates=[item_text(i) for i in ranking["candidates"]],
    )
    assert prompt == ranking["input"]


def test_render_prompt_rating_and_errors():
    prompt = render_prompt("rating", ["A", "B"], item="C", ratings=[4.0, 2.5])
    assert (
        prompt
        == "A user rated these items (1 to 5): A (rated 4); B (rated 2.5). How would the user rate C?"
    )
    with pytest.raises(ConfigError, match="needs candidates"):
        render_prompt("ranking", ["A"])
    with pytest.raises(ConfigError, match="one rating per history item"):
        render_prompt("rating", ["A"], item="B")
    unseen = render_prompt("retrieval", ["A"], template="unseen", templates=load_templates())
    assert unseen.startswith("Someone recently interacted with A.")


def test_too_short_sequences_are_refused(tmp_path):
    from recalign.errors import DataFormatError

    from .conftest import make_dataset

    dataset = make_dataset(tmp_path / "d", [[1, 2, 3, 4], [5, 6]], 10)
    with pytest.raises(DataFormatError, match="fewer than 3 interactions"):
        build_eval_samples(dataset, "retrieval", "valid")
