"""The results of a run as groups of comparable rows, in the order a reader wants them.

One group per protocol (`recalign.ranking.PROTOCOLS`, in its order: full ranking,
ranking K candidates, sampled 1 + n, rating; every model reports full ranking under one
name, so the language model and the baselines share a group). Within a group: the language model first, then the baselines on the LLM's
users (`(same users)`), then the baselines on every user, each block best first on the
group's headline metric. The report and the terminal table both render these groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recalign.constants import MAE, RMSE, ndcg_at
from recalign.ranking import PROTOCOLS, protocol_order
from recalign.report.collect import BASELINE, LLM, SAME_USERS, Evaluation, RunEvaluations

KEY_ORDER = ("hit@1", "hit@5", "hit@10", "ndcg@5", "ndcg@10", "mrr", "rmse", "mae")
LOWER_IS_BETTER = frozenset({RMSE, MAE})
# The metric a verdict compares on. Rating uses MAE, not RMSE: the paired bootstrap
# needs a per-user quantity whose mean is the metric, and RMSE is not such a mean.
HEADLINE = {"rating": MAE}
DEFAULT_HEADLINE = ndcg_at(10)
_ROLE_ORDER = {LLM: 0, SAME_USERS: 1, BASELINE: 2}


def headline(protocol: str) -> str:
    return HEADLINE.get(protocol, DEFAULT_HEADLINE)


def protocol_title(protocol: str, evaluations: Sequence[Evaluation] = ()) -> str:
    """The section title; the candidate counts come from the LLM's recorded options."""
    options = next((e.raw.get("options") or {} for e in evaluations if e.role == LLM), {})
    if protocol == "ranking" and options.get("num_candidates"):
        return f"Ranking {options['num_candidates']} candidates in the prompt"
    if protocol == "sampled" and options.get("num_negatives"):
        return (
            f"Sampled 1 + {options['num_negatives']} candidates (not comparable with full ranking)"
        )
    known = PROTOCOLS.get(protocol)
    return known.title if known else protocol


def sort_key(metric: str, evaluation: Evaluation) -> tuple[int, float, str]:
    """Role block first, then best first on `metric` (missing values last), then name."""
    role = _ROLE_ORDER.get(evaluation.role, 3)
    value = evaluation.metrics.get(metric)
    if value is None:
        return role, float("inf"), evaluation.name
    return role, value if metric in LOWER_IS_BETTER else -value, evaluation.name


@dataclass(frozen=True)
class ResultGroup:
    protocol: str
    title: str
    rows: list[Evaluation]
    keys: list[str]  # the metric columns any row has, in KEY_ORDER

    @property
    def metric(self) -> str:
        return headline(self.protocol)

    @property
    def llm(self) -> list[Evaluation]:
        return [e for e in self.rows if e.role == LLM]

    @property
    def comparable_baselines(self) -> list[Evaluation]:
        """Baselines scored on the LLM's users: the same-users rows when there are any."""
        same = [e for e in self.rows if e.role == SAME_USERS]
        return same or [e for e in self.rows if e.role == BASELINE]


def result_groups(run: RunEvaluations) -> list[ResultGroup]:
    by_protocol: dict[str, list[Evaluation]] = {}
    for evaluation in run.all:
        by_protocol.setdefault(evaluation.protocol, []).append(evaluation)
    groups = []
    for protocol in sorted(by_protocol, key=protocol_order):
        rows = by_protocol[protocol]
        metric = headline(protocol)
        rows = sorted(rows, key=lambda e: sort_key(metric, e))
        keys = [k for k in KEY_ORDER if any(k in e.metrics for e in rows)]
        groups.append(ResultGroup(protocol, protocol_title(protocol, rows), rows, keys))
    return groups
