"""The evaluation stage: per-user metrics, protocols, predictions and `metrics.json`."""

from recalign.evaluation.metrics import (
    per_user_ranking_metrics,
    per_user_rating_errors,
    summarize,
    target_ranks,
)
from recalign.evaluation.outputs import (
    merge_evaluations,
    metrics_from_predictions,
    read_metrics,
    read_predictions,
    write_evaluation,
)
from recalign.evaluation.protocols import sampled_candidates
from recalign.ranking import PROTOCOLS

__all__ = [
    "PROTOCOLS",
    "merge_evaluations",
    "metrics_from_predictions",
    "per_user_ranking_metrics",
    "per_user_rating_errors",
    "read_metrics",
    "read_predictions",
    "sampled_candidates",
    "summarize",
    "target_ranks",
    "write_evaluation",
]
