"""How to read the results: what each metric, column and interval means, and the models."""

from __future__ import annotations

from collections.abc import Sequence

from recalign.report.collect import BASELINE, LLM, Evaluation
from recalign.report.results import ResultGroup

_METRICS = {
    "hit@K": (
        "hit@K — the share of users whose held-out item is in the model's top K "
        "(hit@10 = 0.25: for a quarter of the users the item they actually chose next is "
        "among the 10 recommended). Higher is better."
    ),
    "ndcg@K": (
        "ndcg@K — like hit@K, but a hit counts more the higher it is ranked: 1 at rank 1, "
        "0.63 at rank 2, 0.5 at rank 3, 1/log2(rank + 1) in general, 0 outside the top K. "
        "Higher is better."
    ),
    "mrr": (
        "mrr — the mean of 1/rank of the held-out item (1 at rank 1, 0.5 at rank 2), 0 when "
        "it is not in the returned list (top 20 for full ranking). Higher is better."
    ),
    "rmse": ("rmse — root mean squared error of the predicted star rating. Lower is better."),
    "mae": "mae — mean absolute error of the predicted star rating. Lower is better.",
}


# The terminal's legend: one line each, the report has the long form.
SHORT_LEGEND = (
    "hit@K: share of users whose held-out item is in the top K; ndcg@K: the same, a hit "
    "counting more the higher it is ranked; mrr: mean 1/rank; rmse, mae: rating errors "
    "(lower is better).",
    "users: how many test users a row averages over; 'same users': a baseline re-scored on "
    "exactly the LLM's users, the fair comparison.",
    "verdict: the 95% paired bootstrap interval of the difference over the same users; if "
    "it excludes zero the gap is not resampling noise. report.md has every metric with its "
    "95% interval.",
)


def llm_description(e: Evaluation) -> str:
    """What an LLM row is: the model before fine-tuning reads only its pretraining."""
    info = e.raw.get("model_info") or {}
    if info.get("adaptation") == "zero-shot":
        if info.get("random_init"):
            return "the language model (LLM) before any training: random weights, a floor"
        return "the language model (LLM) as it was pretrained, before any recommendation task"
    return "the language model (LLM) trained on the recommendation tasks"


def _family(key: str) -> str:
    return key.split("@")[0] + "@K" if "@" in key else key


def metric_legend(groups: Sequence[ResultGroup]) -> list[str]:
    """One line per metric shown, then what the columns and intervals mean."""
    shown = dict.fromkeys(_family(k) for group in groups for k in group.keys)
    lines = [_METRICS[k] for k in shown if k in _METRICS]
    lines += [
        "users — how many test users the row averages over; each user has one held-out item "
        "(their last interaction), so a row is a mean over that many people.",
        "same users — a baseline re-scored on exactly the users the LLM was evaluated on "
        "(the LLM is evaluated on a seeded sample because decoding is slow): compare the LLM "
        "with these rows, not with the rows over every user.",
        "[low, high] — the 95% bootstrap interval: the users are resampled with replacement "
        "1,000 times and the metric falls in this range for 95% of the resamples. It shows "
        "how much the number depends on which users happened to be tested.",
        "Verdicts compare two models user by user on the same users: the 95% paired "
        "bootstrap interval of the difference. If it excludes zero the gap is not "
        "resampling noise (overlapping row intervals do not mean there is no difference).",
        "– — the metric does not apply to this protocol.",
    ]
    return lines


def models_legend(evaluations: Sequence[Evaluation], *, short: bool = False) -> list[str]:
    """One line per model: its readable name, its raw id, and (unless `short`) what it is."""
    from recalign.report.labels import baseline_description

    lines = []
    seen: set[str] = set()
    for e in evaluations:
        if e.role not in (LLM, BASELINE) or e.model in seen:
            continue
        seen.add(e.model)
        if short:
            lines.append(f"{e.base_name} = {e.model}")
            continue
        what = llm_description(e) if e.role == LLM else baseline_description(e)
        fit = e.raw.get("fit") or {}
        if int(fit.get("epochs") or 0) > 1:
            what += f"; trained {fit['epochs']} epochs, kept epoch {fit.get('best_epoch')} (best on validation)"
        lines.append(f"{e.base_name} — id `{e.model}`" + (f": {what}" if what else ""))
    return lines
