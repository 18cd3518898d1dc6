"""One sentence per protocol: which model wins, by how much, and whether it is noise.

Two models are compared user by user on the users both ranked: the difference of
their per-user metric, and its 95% paired bootstrap interval
(`recalign.evaluation.metrics.paired_difference`, as in the ablation table). An interval that excludes zero means the difference is not
resampling noise. Where no baseline shares the protocol (ranking K candidates, sampled
1 + n), the LLM is compared with chance: a random order of the candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recalign.ranking import PROTOCOLS
from recalign.report.collect import Evaluation
from recalign.report.results import LOWER_IS_BETTER, ResultGroup


@dataclass(frozen=True)
class Comparison:
    """`winner` beats `loser` on `metric` by `margin` (>= 0 unless a tie) over `users`."""

    metric: str
    winner: Evaluation
    loser: Evaluation
    winner_value: float
    loser_value: float
    margin: float
    low: float
    high: float
    users: int

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def per_user(evaluation: Evaluation, metric: str) -> dict[int, dict[str, float]]:
    """{user: {metric: value}} from the evaluation's predictions (the shape of
    `paired_difference`)."""
    from recalign.evaluation.outputs import per_user_metrics, read_predictions

    records = read_predictions(evaluation.directory)
    values = per_user_metrics(records, evaluation.protocol, where=str(evaluation.predictions_path))
    users = sorted(int(r["user_id"]) for r in records)  # per_user_metrics' order
    return {user: {metric: float(v)} for user, v in zip(users, values[metric], strict=True)}


def compare(a: Evaluation, b: Evaluation, metric: str) -> Comparison | None:
    """`a` against `b` on the users both predicted; None when they share no user."""
    from recalign.evaluation.metrics import paired_difference

    bootstrap = a.raw.get("bootstrap") or {}
    values_a, values_b = per_user(a, metric), per_user(b, metric)
    shared = sorted(set(values_a) & set(values_b))
    if not shared:
        return None
    mean_a = float(np.mean([values_a[u][metric] for u in shared]))
    mean_b = float(np.mean([values_b[u][metric] for u in shared]))
    a_wins = mean_a < mean_b if metric in LOWER_IS_BETTER else mean_a >= mean_b
    winner, loser = (a, b) if a_wins else (b, a)
    # The margin is positive in the winner's favour: for errors, loser minus winner.
    first, second = (values_a, values_b) if a_wins else (values_b, values_a)
    if metric in LOWER_IS_BETTER:
        first, second = second, first
    margin, low, high = paired_difference(
        first,
        second,
        metric,
        n_boot=int(bootstrap.get("resamples", 1000)),
        seed=int(bootstrap.get("seed", 0)),
    )
    return Comparison(
        metric=metric,
        winner=winner,
        loser=loser,
        winner_value=mean_a if a_wins else mean_b,
        loser_value=mean_b if a_wins else mean_a,
        margin=margin,
        low=low,
        high=high,
        users=len(shared),
    )


def _noise(c: Comparison) -> str:
    interval = f"95% paired interval [{c.low:+.4f}, {c.high:+.4f}]"
    if c.significant:
        return f"{interval} excludes zero: not resampling noise"
    return f"{interval} includes zero: the data cannot tell them apart"


def comparison_sentence(c: Comparison) -> str:
    if c.margin == 0 and c.winner_value == c.loser_value:
        return (
            f"{c.winner.base_name} and {c.loser.base_name} tie on {c.metric} "
            f"({c.winner_value:.4f}) over the same {c.users:,} users."
        )
    direction = "lower (better)" if c.metric in LOWER_IS_BETTER else "higher"
    # "beats" only when the gap is not resampling noise; otherwise it is only ahead.
    verb = "beats" if c.significant else "is ahead of"
    return (
        f"{c.winner.base_name} {verb} {c.loser.base_name} on {c.metric}: {c.winner_value:.4f} vs "
        f"{c.loser_value:.4f} over the same {c.users:,} users, {c.margin:.4f} {direction}; "
        f"{_noise(c)}."
    )


def chance_level(evaluation: Evaluation, metric: str) -> tuple[int, float] | None:
    """(candidates, expected metric) for a uniformly random order of the candidates."""
    from recalign.evaluation.metrics import per_user_ranking_metrics

    options = evaluation.raw.get("options") or {}
    if evaluation.protocol == "ranking":
        n = options.get("num_candidates")
    elif evaluation.protocol == "sampled":
        n = options.get("num_negatives") and options["num_negatives"] + 1
    else:
        return None
    if not n:
        return None
    # Every rank 1..n is equally likely; the expectation is the mean over them.
    values = per_user_ranking_metrics(np.arange(1, int(n) + 1)).get(metric)
    return (int(n), float(values.mean())) if values is not None else None


def chance_sentence(evaluation: Evaluation, metric: str) -> str | None:
    chance = chance_level(evaluation, metric)
    value = evaluation.metrics.get(metric)
    if chance is None or value is None:
        return None
    n, expected = chance
    low, high = evaluation.intervals.get(metric, [value, value])
    if low > expected:
        where = "above chance"
    elif high < expected:
        where = "below chance"
    else:
        where = "not distinguishable from chance"
    return (
        f"{evaluation.base_name} scores {metric} {value:.4f} (95% interval [{low:.4f}, {high:.4f}]); "
        f"a random order of the {n} candidates scores {expected:.4f} on average: {where}. "
        "No baseline is evaluated under this protocol."
    )


def best(rows: Sequence[Evaluation], metric: str) -> Evaluation | None:
    scored = [e for e in rows if metric in e.metrics]
    if not scored:
        return None
    sign = 1 if metric in LOWER_IS_BETTER else -1
    return min(scored, key=lambda e: (sign * e.metrics[metric], e.name))


def group_verdicts(group: ResultGroup) -> list[str]:
    """The verdict lines of one protocol: each LLM row against the best baseline (or
    chance), the main LLM against each compared variant; baselines alone: best vs next."""
    metric = group.metric
    baselines = group.comparable_baselines
    pairs: list[tuple[Evaluation, Evaluation]] = []
    lines: list[str] = []
    for llm in group.llm:
        rival = best(baselines, metric)
        if rival is not None:
            pairs.append((llm, rival))
        elif sentence := chance_sentence(llm, metric):
            lines.append(sentence)
    # A pipeline's `compare` variants (RUN/eval/<preset>/<protocol>) against its main
    # model (RUN/eval/<protocol>): what the main mixture adds over each variant.
    main = [e for e in group.llm if e.directory.parent.name == "eval"]
    if len(main) == 1:
        pairs.extend((main[0], other) for other in group.llm if other is not main[0])
    if not group.llm and (first := best(baselines, metric)) is not None:
        second = best([e for e in baselines if e is not first], metric)
        if second is not None:
            pairs.append((first, second))
    for a, b in pairs:
        if not (a.predictions_path.is_file() and b.predictions_path.is_file()):
            continue
        comparison = compare(a, b, metric)
        if comparison is not None:
            lines.append(comparison_sentence(comparison))
    return lines


def summary_lines(groups: Sequence[ResultGroup]) -> list[str]:
    """Every protocol's verdicts, each line opened by the protocol's short name."""
    return [
        f"{_short_title(group.protocol)}: {line}"
        for group in groups
        for line in group_verdicts(group)
    ]


def _short_title(protocol: str) -> str:
    known = PROTOCOLS.get(protocol)
    return known.short_title if known else protocol
