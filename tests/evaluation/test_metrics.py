"""Metrics: hand-computed cases, library oracles (ranx, scikit-learn), bootstrap properties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recalign.constants import MAE, MRR, RANKING_METRICS, RMSE, hit_at, ndcg_at
from recalign.errors import RecalignError
from recalign.evaluation.metrics import (
    per_user_ranking_metrics,
    per_user_rating_errors,
    summarize,
    target_ranks,
)


def test_target_ranks_hand_computed():
    ranked = [[5, 4, 3], [1, 2], [9], [], [7, 7, 8]]
    targets = [3, 7, 9, 1, 8]
    np.testing.assert_array_equal(target_ranks(ranked, targets), [3, 0, 1, 0, 3])


def test_target_ranks_length_mismatch_is_an_error():
    with pytest.raises(RecalignError, match="2 ranked lists but 1 targets"):
        target_ranks([[1], [2]], [1])


def test_rank_three_hit_hand_computed():
    m = per_user_ranking_metrics(np.array([3]))
    assert list(m) == list(RANKING_METRICS[:3]) + list(RANKING_METRICS[3:])
    assert m[hit_at(1)][0] == 0.0
    assert m[hit_at(5)][0] == 1.0
    assert m[hit_at(10)][0] == 1.0
    assert m[ndcg_at(5)][0] == pytest.approx(0.5)  # 1 / log2(4)
    assert m[ndcg_at(10)][0] == pytest.approx(0.5)
    assert m[MRR][0] == pytest.approx(1 / 3)
    assert ndcg_at(1) not in m


@pytest.mark.parametrize(
    ("rank", "hit5", "ndcg10", "mrr"),
    [
        (1, 1.0, 1.0, 1.0),
        (2, 1.0, 1 / math.log2(3), 0.5),
        (6, 0.0, 1 / math.log2(7), 1 / 6),
        (10, 0.0, 1 / math.log2(11), 0.1),
        (11, 0.0, 0.0, 1 / 11),
        (0, 0.0, 0.0, 0.0),
    ],
)
def test_ranking_metrics_table(rank, hit5, ndcg10, mrr):
    m = per_user_ranking_metrics(np.array([rank]))
    assert m[hit_at(5)][0] == hit5
    assert m[ndcg_at(10)][0] == pytest.approx(ndcg10)
    assert m[MRR][0] == pytest.approx(mrr)


def test_negative_ranks_rejected():
    with pytest.raises(RecalignError):
        per_user_ranking_metrics(np.array([1, -1]))


@pytest.fixture(scope="module")
def random_case():
    rng = np.random.default_rng(7)
    ranked, targets = [], []
    for _ in range(200):
        length = int(rng.integers(1, 25))
        items = rng.choice(np.arange(1, 60), size=length, replace=False).tolist()
        ranked.append(items)
        # About half the targets are in the list, the rest are not.
        targets.append(int(rng.choice(items)) if rng.random() < 0.5 else int(rng.integers(60, 80)))
    return ranked, targets


def test_agrees_with_ranx(random_case):
    ranx = pytest.importorskip("ranx")
    ranked, targets = random_case
    # Zero-padded ids: ranx returns per-query scores in sorted id order.
    qrels = ranx.Qrels({f"u{i:04d}": {str(t): 1} for i, t in enumerate(targets)})
    run = ranx.Run(
        {
            f"u{i:04d}": {str(item): float(len(items) - j) for j, item in enumerate(items)}
            for i, items in enumerate(ranked)
        }
    )
    names = ["hit_rate@1", "hit_rate@5", "hit_rate@10", "ndcg@5", "ndcg@10", "mrr"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's type-safety warnings inside ranx
        oracle = ranx.evaluate(qrels, run, names, return_mean=False)
    ours = per_user_ranking_metrics(target_ranks(ranked, targets))
    for name, key in zip(names, RANKING_METRICS, strict=True):
        np.testing.assert_allclose(ours[key], oracle[name], rtol=1e-9, err_msg=key)


@given(
    st.lists(st.floats(1, 5), min_size=1, max_size=50).flatmap(
        lambda y: st.tuples(
            st.just(y), st.lists(st.floats(-2, 8), min_size=len(y), max_size=len(y))
        )
    )
)
@settings(max_examples=50, deadline=None)
def test_rating_errors_match_sklearn(case):
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    y, p = case
    means, _ = summarize(per_user_rating_errors(y, p), n_boot=0)
    assert means[RMSE] == pytest.approx(math.sqrt(mean_squared_error(y, p)), rel=1e-9, abs=1e-12)
    assert means[MAE] == pytest.approx(mean_absolute_error(y, p), rel=1e-9, abs=1e-12)


def test_rating_errors_reject_bad_input():
    with pytest.raises(RecalignError, match="equal length"):
        per_user_rating_errors([1, 2], [1])
    with pytest.raises(RecalignError, match="finite"):
        per_user_rating_errors([1, 2], [1, float("nan")])


def test_summarize_means_and_interval_contains_mean():
    rng = np.random.default_rng(1)
    per_user = per_user_ranking_metrics(rng.integers(0, 30, size=500))
    means, intervals = summarize(per_user, n_boot=500, seed=3)
    for key, values in per_user.items():
        assert means[key] == pytest.approx(values.mean())
        low, high = intervals[key]
        assert low <= means[key] <= high
        assert low < high


def test_interval_narrows_with_more_users():
    rng = np.random.default_rng(2)
    widths = []
    for n in (100, 10_000):
        per_user = {hit_at(10): (rng.random(n) < 0.3).astype(float)}
        _, intervals = summarize(per_user, n_boot=400, seed=0)
        widths.append(intervals[hit_at(10)][1] - intervals[hit_at(10)][0])
    # The width shrinks like 1/sqrt(n): 10x here, allow generous slack.
    assert widths[1] < widths[0] / 5


def test_interval_matches_normal_approximation():
    # For a Bernoulli(0.3) mean over 4,000 users the 95% interval is ~ +-1.96 * sd/sqrt(n).
    rng = np.random.default_rng(4)
    values = (rng.random(4000) < 0.3).astype(float)
    _, intervals = summarize({"hit@10": values}, n_boot=2000, seed=0)
    half = 1.96 * values.std() / math.sqrt(values.size)
    low, high = intervals["hit@10"]
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)


def test_rmse_interval_uses_sqrt_per_resample():
    errors = per_user_rating_errors([1, 2, 3, 4, 5] * 40, [2, 2, 2, 2, 2] * 40)
    means, intervals = summarize(errors, n_boot=300, seed=0)
    assert means[RMSE] == pytest.approx(math.sqrt(np.mean(errors[RMSE])))
    low, high = intervals[RMSE]
    # Intervals of the root lie on the root's scale, not the squared scale.
    assert 0 < low <= means[RMSE] <= high < 3


def test_summarize_same_resamples_for_every_metric():
    values = np.random.default_rng(5).random(300)
    _, intervals = summarize({"a": values, "b": values.copy()}, n_boot=200, seed=9)
    assert intervals["a"] == intervals["b"]


def test_summarize_is_deterministic_and_seeded():
    per_user = per_user_ranking_metrics(np.random.default_rng(6).integers(0, 20, size=300))
    assert summarize(per_user, seed=1) == summarize(per_user, seed=1)
    assert summarize(per_user, seed=1)[1] != summarize(per_user, seed=2)[1]


def test_summarize_blocks_do_not_change_results(monkeypatch):
    import recalign.evaluation.metrics as metrics

    per_user = {"x": np.random.default_rng(8).random(1000)}
    reference = summarize(per_user, n_boot=100, seed=0)
    # The block size is a function of n only; shrinking it must still give valid intervals
    # around the same mean (the draws differ only in how they are chunked).
    monkeypatch.setattr(metrics, "_BOOTSTRAP_BLOCK", 5000)
    chunked = summarize(per_user, n_boot=100, seed=0)
    assert chunked[0] == reference[0]
    assert chunked[1]["x"] == pytest.approx(reference[1]["x"], abs=0.02)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"ci": 1.0}, "confidence"), ({"n_boot": -1}, "resamples")],
)
def test_summarize_rejects_bad_options(kwargs, message):
    with pytest.raises(RecalignError, match=message):
        summarize({"x": np.ones(3)}, **kwargs)


def test_summarize_rejects_empty_and_ragged():
    with pytest.raises(RecalignError, match="no users"):
        summarize({"x": np.array([])})
    with pytest.raises(RecalignError, match="one length"):
        summarize({"x": np.ones(3), "y": np.ones(4)})


@given(
    st.lists(
        st.lists(st.integers(1, 30), min_size=0, max_size=12, unique=True), min_size=1, max_size=20
    ),
    st.data(),
)
@settings(max_examples=100, deadline=None)
def test_target_ranks_matches_list_index(ranked, data):
    targets = [data.draw(st.integers(1, 30)) for _ in ranked]
    expected = [
        items.index(t) + 1 if t in items else 0 for items, t in zip(ranked, targets, strict=True)
    ]
    np.testing.assert_array_equal(target_ranks(ranked, targets), expected)
    # The vectorised path (equal lengths) agrees with the loop.
    padded = [items + [-1] * (12 - len(items)) for items in ranked]
    np.testing.assert_array_equal(target_ranks(padded, targets), expected)


@given(st.lists(st.integers(0, 50), min_size=1, max_size=100))
@settings(max_examples=100, deadline=None)
def test_metric_orderings(ranks):
    m = per_user_ranking_metrics(np.array(ranks))
    assert (m[hit_at(1)] <= m[hit_at(5)]).all() and (m[hit_at(5)] <= m[hit_at(10)]).all()
    assert (m[ndcg_at(5)] <= m[ndcg_at(10)]).all()
    assert (m[ndcg_at(10)] <= m[hit_at(10)]).all()
    assert (m[MRR] <= m[ndcg_at(10)] + (np.array(ranks) > 10)).all()
    assert ((m[MRR] > 0) == (np.array(ranks) > 0)).all()
