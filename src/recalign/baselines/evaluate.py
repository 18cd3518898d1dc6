"""Full-ranking (and rating) evaluation of any baseline on the leave-one-out split.

Protocol (the same for every model, recorded in `metrics.json` as `exclude_history`):
- valid split: history = the train part, target = the valid item;
- test split: history = train + valid, target = the test item;
- every item of the catalogue is ranked under `recalign.ranking`'s rules: by default the
  user's history items are banned (a target that is also in the history then counts as
  a miss); with `exclude_history=False` nothing is, as RecBole's sequential full-sort.

Metrics come from `recalign.evaluation.metrics`; files are written by the shared
`recalign.evaluation.outputs.write_evaluation`, under the protocol names of
`recalign.ranking` (`retrieval` for full ranking, as for the language models).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recalign.baselines._data import split_view
from recalign.baselines.base import RatingPredictor, Recommender, ValidFn
from recalign.constants import HISTORY, MAE, RANKED, RATING, RMSE, TARGET_ITEM, USER_ID
from recalign.data.store import PreparedDataset
from recalign.errors import RecalignError
from recalign.evaluation.metrics import per_user_ranking_metrics
from recalign.evaluation.metrics import target_ranks as ranks_in_lists
from recalign.ranking import TOP_K, banned_items, prediction_record, target_positions, unpad

logger = logging.getLogger(__name__)

DEFAULT_K = TOP_K


def target_ranks(
    model: Recommender,
    histories: Sequence[Sequence[int]],
    targets: Sequence[int],
    *,
    user_ids: Sequence[int] | None = None,
    exclude_history: bool = True,
    batch_size: int = 1024,
) -> np.ndarray:
    """0-based rank of each target over the whole catalogue (-1: banned, a miss), in the
    order `recommend` returns (`recalign.ranking.target_positions`). Cheaper than a top-K
    when only metrics are needed (early stopping).
    """
    n = len(histories)
    ranks = np.empty(n, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        hist = histories[start:stop]
        scores = model.score_batch(hist, None if user_ids is None else user_ids[start:stop])
        ranks[start:stop] = target_positions(
            scores, targets[start:stop], banned_items(hist, exclude_history)
        )
    return ranks


def metrics_from_ranks(ranks: np.ndarray, k_max: int | None = None) -> dict[str, float]:
    """Mean hit@k / ndcg@k / mrr from 0-based ranks (-1 = miss), via the shared metrics.

    With `k_max`, ranks at or beyond it count as misses (what a top-`k_max` list sees).
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    one_based = np.where(ranks >= 0, ranks + 1, 0)
    if k_max is not None:
        one_based[one_based > k_max] = 0
    per_user = per_user_ranking_metrics(one_based)
    return {key: float(values.mean()) if len(values) else 0.0 for key, values in per_user.items()}


def make_valid_fn(
    dataset: PreparedDataset,
    *,
    exclude_history: bool = True,
    metric: str = "ndcg@10",
    max_users: int | None = None,
    seed: int = 0,
) -> ValidFn:
    """The early-stopping score: `metric` on the valid split (optionally a user sample)."""
    view = split_view(dataset, "valid")
    if max_users is not None and view.height > max_users:
        rng = np.random.default_rng(seed)
        view = view[np.sort(rng.choice(view.height, size=max_users, replace=False))]
    histories = view.get_column(HISTORY).to_list()
    targets = view.get_column(TARGET_ITEM).to_numpy()
    users = view.get_column(USER_ID).to_list()

    def valid_fn(model: Recommender) -> float:
        ranks = target_ranks(
            model, histories, targets, user_ids=users, exclude_history=exclude_history
        )
        return metrics_from_ranks(ranks)[metric]

    return valid_fn


def evaluate_ranking(
    model: Recommender,
    dataset: PreparedDataset,
    *,
    split: str = "test",
    k: int = DEFAULT_K,
    exclude_history: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Per-user predictions (top-K, best first) and the metrics over all users."""
    view = split_view(dataset, split)
    histories = view.get_column(HISTORY).to_list()
    targets = view.get_column(TARGET_ITEM).to_numpy()
    users = view.get_column(USER_ID).to_list()
    ids, scores = model.recommend(histories, k, user_ids=users, exclude_history=exclude_history)
    predictions = [
        prediction_record(user, target, ranked=ranked, scores=ranked_scores)
        for user, target, (ranked, ranked_scores) in zip(
            users, targets, map(unpad, ids, scores), strict=True
        )
    ]
    # 1-based positions in the returned lists (0 = absent) -> 0-based ranks (-1 = a miss).
    ranks = ranks_in_lists([p[RANKED] for p in predictions], targets) - 1
    return predictions, metrics_from_ranks(ranks)


def evaluate_rating(
    model: RatingPredictor, dataset: PreparedDataset, *, split: str = "test"
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Predicted vs true rating of each user's target item; RMSE and MAE."""
    if not dataset.has_ratings:
        raise RecalignError(f"dataset {dataset.name!r} has no ratings: rating baselines need them")
    view = split_view(dataset, split)
    users = view.get_column(USER_ID).to_numpy()
    items = view.get_column(TARGET_ITEM).to_numpy()
    truth = view.get_column(RATING).to_numpy().astype(np.float64)
    pred = np.asarray(model.predict(users, items), dtype=np.float64)
    predictions = [
        prediction_record(u, i, rating=r, prediction=p)
        for u, i, r, p in zip(users, items, truth, pred, strict=True)
    ]
    errors = pred - truth
    metrics = {
        RMSE: float(np.sqrt(np.mean(errors**2))) if len(errors) else 0.0,
        MAE: float(np.mean(np.abs(errors))) if len(errors) else 0.0,
    }
    return predictions, metrics


def write_results(
    out_dir: str | Path,
    predictions: list[dict[str, Any]],
    *,
    protocol: str,
    split: str,
    model: str,
    exclude_history: bool | None,
    extra: dict[str, Any] | None = None,
    cold_items: Any = None,
) -> dict[str, Any]:
    """Write `predictions.jsonl` and `metrics.json` (with bootstrap intervals) into the
    baseline's directory (being written: it commits it) through the shared evaluation
    writer, so baselines and language models share one format. `cold_items`: metrics
    by warm / cold held-out item as well."""
    from recalign.evaluation.outputs import compute_metrics, write_evaluation_files

    metrics = compute_metrics(
        predictions,
        protocol=protocol,
        split=split,
        model=model,
        exclude_history=exclude_history,
        extra=extra,
        cold_items=cold_items,
    )
    return write_evaluation_files(out_dir, predictions, metrics)
