"""Per-user metrics and their bootstrap summary: small pure functions over numpy arrays.

Every protocol here has exactly one relevant item per user (leave-one-out), so the
ranking metrics reduce to functions of the target's 1-based rank (0 = not in the list):

    hit@k  = 1 if 0 < rank <= k
    ndcg@k = 1 / log2(rank + 1) if 0 < rank <= k   (the ideal DCG is 1)
    mrr    = 1 / rank, 0 when absent               (truncated at the list length)

`ndcg@1` equals `hit@1` and is not reported. Rating errors are kept per user as squared
and absolute errors under the keys `rmse` and `mae`; `summarize` knows that `rmse` is the
square root of the mean of its per-user values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from recalign.constants import MAE, MRR, RANKING_CUTOFFS, RMSE, hit_at, ndcg_at
from recalign.errors import RecalignError

# Per-user values under these keys are squared errors: the summary is sqrt(mean).
ROOT_MEAN_KEYS = frozenset({RMSE})

# Bootstrap resamples are drawn in blocks of about this many indices, so memory stays
# bounded for a million users while the draws stay a function of (seed, n) only.
_BOOTSTRAP_BLOCK = 1 << 22


def target_ranks(ranked: Sequence[Sequence[int]], targets: Sequence[int]) -> np.ndarray:
    """1-based rank of each target in its ranked list (best first), 0 where absent."""
    if len(ranked) != len(targets):
        raise RecalignError(
            f"{len(ranked)} ranked lists but {len(targets)} targets: one list per target expected"
        )
    if len(targets) and len({len(items) for items in ranked}) == 1:
        # Equal-length lists (the usual top-K): one vectorised comparison.
        matrix = np.asarray(ranked, dtype=np.int64)
        if matrix.ndim == 2 and matrix.shape[1]:
            hit = matrix == np.asarray(targets, dtype=np.int64)[:, None]
            return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 0).astype(np.int64)
    ranks = np.zeros(len(targets), dtype=np.int64)
    for i, (items, target) in enumerate(zip(ranked, targets, strict=True)):
        hits = np.flatnonzero(np.asarray(items, dtype=np.int64) == int(target))
        if hits.size:
            ranks[i] = hits[0] + 1  # the first occurrence counts if a list repeats an item
    return ranks


def per_user_ranking_metrics(
    ranks: np.ndarray, cutoffs: Sequence[int] = RANKING_CUTOFFS
) -> dict[str, np.ndarray]:
    """hit@k for every cutoff, ndcg@k for cutoffs above 1, and mrr, one value per user."""
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or (ranks.size and (ranks.min() < 0)):
        raise RecalignError("ranks must be a 1-d array of 1-based ranks (0 = not ranked)")
    if any(int(k) < 1 for k in cutoffs):
        raise RecalignError(f"cutoffs must be positive integers, got {list(cutoffs)}")
    found = ranks > 0
    safe = np.where(found, ranks, 1).astype(np.float64)
    gain = np.where(found, 1.0 / np.log2(safe + 1.0), 0.0)
    ks = sorted({int(k) for k in cutoffs})
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[hit_at(k)] = (found & (ranks <= k)).astype(np.float64)
    for k in ks:
        if k > 1:
            out[ndcg_at(k)] = np.where(found & (ranks <= k), gain, 0.0)
    out[MRR] = np.where(found, 1.0 / safe, 0.0)
    return out


def per_user_rating_errors(
    targets: Sequence[float], predictions: Sequence[float]
) -> dict[str, np.ndarray]:
    """Per-user squared (key `rmse`) and absolute (key `mae`) errors."""
    y = np.asarray(targets, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise RecalignError(
            f"ratings and predictions must be 1-d and of equal length, got {y.shape} and {p.shape}"
        )
    if not (np.isfinite(y).all() and np.isfinite(p).all()):
        raise RecalignError("ratings and predictions must be finite numbers (found NaN or inf)")
    diff = p - y
    return {RMSE: diff * diff, MAE: np.abs(diff)}


def _aggregate(values: np.ndarray, key: str, axis: int | None = None) -> np.ndarray | float:
    mean = values.mean(axis=axis)
    return np.sqrt(mean) if key in ROOT_MEAN_KEYS else mean


def summarize(
    per_user: Mapping[str, np.ndarray],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Means over users and percentile-bootstrap intervals.

    Every metric is resampled with the *same* user indices, so the intervals of
    related metrics (hit@10 and ndcg@10) describe the same resampled populations.
    For `rmse` the square root is taken per resample. `n_boot=0` gives no intervals.
    """
    if not per_user:
        return {}, {}
    arrays = {key: np.asarray(values, dtype=np.float64) for key, values in per_user.items()}
    sizes = {values.shape for values in arrays.values()}
    if len(sizes) != 1 or len(next(iter(sizes))) != 1:
        raise RecalignError(f"per-user metrics must be 1-d arrays of one length, got {sizes}")
    n = next(iter(arrays.values())).size
    if n == 0:
        raise RecalignError("no users to evaluate: every metric is empty")
    if not 0.0 < ci < 1.0:
        raise RecalignError(f"confidence level must be in (0, 1), got {ci}")
    if n_boot < 0:
        raise RecalignError(f"the number of bootstrap resamples must be >= 0, got {n_boot}")
    means = {key: float(_aggregate(values, key)) for key, values in arrays.items()}
    if n_boot == 0:
        return means, {}

    rng = np.random.default_rng(seed)
    block = max(1, _BOOTSTRAP_BLOCK // n)
    resampled: dict[str, list[np.ndarray]] = {key: [] for key in arrays}
    for start in range(0, n_boot, block):
        idx = rng.integers(0, n, size=(min(block, n_boot - start), n))
        for key, values in arrays.items():
            resampled[key].append(_aggregate(values[idx], key, axis=1))
    alpha = (1.0 - ci) / 2.0
    intervals = {}
    for key, parts in resampled.items():
        low, high = np.quantile(np.concatenate(parts), [alpha, 1.0 - alpha])
        intervals[key] = [float(low), float(high)]
    return means, intervals


def paired_difference(
    variant: dict[int, dict[str, float]],
    reference: dict[int, dict[str, float]],
    key: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean difference over shared users and its 95% paired bootstrap interval."""
    users = sorted(set(variant) & set(reference))
    if not users:
        return float("nan"), float("nan"), float("nan")
    diff = np.array([variant[u][key] - reference[u][key] for u in users])
    rng = np.random.default_rng(seed)
    samples = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)
