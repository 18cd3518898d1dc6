"""The evaluation stage: per-user metrics, protocols, predictions and `metrics.json`.

The names below are imported on first use: `recalign.evaluation.options` (what the CLI
and the run config read their defaults from) must not pull numpy and polars in.
"""

from __future__ import annotations

from recalign.lazy import lazy_exports

# The names, by the module that defines them (imported on first use).
__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "recalign.ranking": ("PROTOCOLS",),
        "recalign.evaluation.options": ("EvalOptions",),
        "recalign.evaluation.outputs": (
            "merge_evaluations",
            "metrics_from_predictions",
            "read_metrics",
            "read_predictions",
            "write_evaluation",
        ),
        "recalign.evaluation.metrics": (
            "per_user_ranking_metrics",
            "per_user_rating_errors",
            "summarize",
            "target_ranks",
        ),
        "recalign.evaluation.protocols": ("sampled_candidates",),
    },
)
