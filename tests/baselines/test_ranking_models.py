"""Each ranking baseline on a dataset whose structure it should (or should not) find."""

from __future__ import annotations

import numpy as np
import pytest

from recalign.baselines.evaluate import evaluate_ranking, make_valid_fn, target_ranks
from recalign.baselines.registry import create_baseline, load_baseline

# One torch thread: the tests share a busy 2-core machine, where two threads contend.
TINY_SASREC = {
    "hidden": 32,
    "max_len": 10,
    "dropout": 0.1,
    "epochs": 30,
    "batch_size": 64,
    "num_threads": 1,
}
TINY = {
    "pop": {},
    "bprmf": {"dim": 16, "epochs": 40, "batch_size": 256, "lr": 0.02, "num_threads": 1},
    "sasrec": {**TINY_SASREC, "lr": 5e-3},
    "sasrec-ce": {**TINY_SASREC, "lr": 5e-3, "epochs": 20},
}


def _fit(name, dataset, **extra):
    model = create_baseline(name, {**TINY[name], **extra})
    model.fit(dataset)
    return model


@pytest.fixture(scope="module")
def fitted_sequential(sequential_dataset):
    return {name: _fit(name, sequential_dataset) for name in ("pop", "sasrec", "sasrec-ce")}


def test_pop_counts_the_train_part_only(sequential_dataset):
    model = _fit("pop", sequential_dataset)
    train_items = np.concatenate(
        [np.asarray(s[:-2]) for s in sequential_dataset.sequences["items"].to_list()]
    )
    assert model.counts[1:].tolist() == np.bincount(train_items, minlength=41)[1:].tolist()
    ids, _ = model.recommend([[]], 3, exclude_history=False)
    expected = sorted(range(1, 41), key=lambda i: (-model.counts[i], i))[:3]
    assert ids[0].tolist() == expected


@pytest.mark.parametrize("name", ["sasrec", "sasrec-ce"])
def test_sasrec_learns_the_next_item_rule(fitted_sequential, sequential_dataset, name):
    _, sas = evaluate_ranking(fitted_sequential[name], sequential_dataset, split="test")
    _, pop = evaluate_ranking(fitted_sequential["pop"], sequential_dataset, split="test")
    # The next item is last + 1: a sequential model nearly always ranks it first,
    # popularity is at chance (~10 of ~32 unseen items).
    assert sas["hit@1"] > 0.8
    assert sas["ndcg@10"] > 3 * pop["ndcg@10"]


def test_bprmf_finds_taste_groups(group_dataset):
    bpr = _fit("bprmf", group_dataset)
    pop = _fit("pop", group_dataset)
    _, bpr_metrics = evaluate_ranking(bpr, group_dataset, split="test", k=10)
    _, pop_metrics = evaluate_ranking(pop, group_dataset, split="test", k=10)
    # Only 1-4 unseen items of the user's group remain among the 30+ others.
    assert bpr_metrics["hit@5"] > 0.9
    assert bpr_metrics["hit@5"] > 2 * pop_metrics["hit@5"]


@pytest.mark.parametrize("name", ["pop", "sasrec", "sasrec-ce"])
def test_excluded_history_never_recommended(fitted_sequential, sequential_dataset, name):
    view = sequential_dataset.split.test
    histories = view["history"].to_list()
    ids, scores = fitted_sequential[name].recommend(histories, 20, user_ids=view["user_id"])
    for row, hist in zip(ids.tolist(), histories, strict=True):
        assert not set(row) & set(hist)
    assert np.all(np.diff(scores, axis=1) <= 0)
    included, _ = fitted_sequential[name].recommend(
        histories, 40, user_ids=view["user_id"], exclude_history=False
    )
    assert (included > 0).all()  # all 40 items come back when nothing is excluded


def test_ranks_agree_with_topk_lists(fitted_sequential, sequential_dataset):
    model = fitted_sequential["sasrec"]
    view = sequential_dataset.split.test
    histories, targets = view["history"].to_list(), view["target_item"].to_numpy()
    ids, _ = model.recommend(histories, 40)
    ranks = target_ranks(model, histories, targets)
    for row, target, rank in zip(ids.tolist(), targets, ranks, strict=True):
        assert rank == (row.index(target) if target in row else -1)


@pytest.mark.parametrize("name", ["sasrec", "sasrec-ce", "bprmf"])
def test_same_seed_same_scores(group_dataset, name):
    short = {"epochs": 2}
    a = _fit(name, group_dataset, seed=1, **short)
    b = _fit(name, group_dataset, seed=1, **short)
    c = _fit(name, group_dataset, seed=2, **short)
    hist, users = [[1, 2, 3], [11, 12]], [1, 2]
    np.testing.assert_array_equal(a.score_batch(hist, users), b.score_batch(hist, users))
    assert not np.allclose(a.score_batch(hist, users), c.score_batch(hist, users))


@pytest.mark.parametrize("name", ["pop", "bprmf", "sasrec", "sasrec-ce"])
def test_save_load_round_trip(group_dataset, tmp_path, name):
    model = _fit(name, group_dataset, **({} if name == "pop" else {"epochs": 2}))
    model.save(tmp_path / name)
    loaded = load_baseline(tmp_path / name)
    assert type(loaded) is type(model) and loaded.config == model.config
    hist, users = [[1, 2, 3], [11, 12], []], [1, 2, 999]
    np.testing.assert_allclose(
        loaded.score_batch(hist, users), model.score_batch(hist, users), rtol=1e-6, atol=1e-6
    )


def test_early_stopping_restores_the_best_epoch(sequential_dataset):
    model = create_baseline("sasrec-ce", {**TINY["sasrec-ce"], "epochs": 12, "eval_every": 2})
    report = model.fit(sequential_dataset, valid_fn=make_valid_fn(sequential_dataset))
    scores = [row["valid_ndcg@10"] for row in report.history if "valid_ndcg@10" in row]
    assert report.best_valid == max(scores)
    # the restored weights give the best epoch's valid score back
    assert make_valid_fn(sequential_dataset)(model) == pytest.approx(report.best_valid)


def test_pop_ranks_and_lists_by_hand(tmp_path):
    """Popularity on a hand-countable fixture: train counts 3 x4, 1 x3, 2 x2, 4 x1, 5 x1,
    the rest 0, ties to the lower id. Early stopping's ranks and the evaluated lists
    follow the same history rule and order."""
    from recalign.data import load_prepared
    from tests.serving.conftest import make_data_dir

    dataset = load_prepared(make_data_dir(tmp_path / "data"))
    model = _fit("pop", dataset)
    valid = dataset.split.valid
    histories, targets = valid["history"].to_list(), valid["target_item"].to_list()
    assert targets == [11, 9, 7, 6]
    # History banned: user 1 (history 1, 3, 2) sees 4, 5, 6, 7, 8, 9, 10, 11, ...
    assert target_ranks(model, histories, targets).tolist() == [7, 5, 3, 3]
    assert target_ranks(model, histories, targets, exclude_history=False).tolist() == [
        10,
        8,
        6,
        5,
    ]
    expected = np.mean([1 / np.log2(r + 2) for r in (7, 5, 3, 3)])
    assert make_valid_fn(dataset)(model) == pytest.approx(expected)
    predictions, metrics = evaluate_ranking(model, dataset, split="test", k=4)
    assert [p["ranked"] for p in predictions] == [
        [4, 5, 6, 7],  # history 1, 3, 2, 11
        [2, 5, 6, 7],  # history 3, 1, 4, 9
        [4, 5, 6, 8],  # history 3, 2, 1, 7
        [1, 2, 4, 7],  # history 3, 5, 6
    ]
    assert [p["scores"] for p in predictions][3] == [3.0, 2.0, 1.0, 0.0]
    # Targets 12, 10, 8, 7: users 3 and 4 find theirs at rank 4.
    assert metrics["hit@5"] == 0.5 and metrics["mrr"] == pytest.approx(0.5 / 4)
