from __future__ import annotations

import math

import numpy as np
import pytest

from recalign.evaluation.outputs import write_evaluation
from recalign.report.collect import BASELINE, LLM, read_evaluation
from recalign.report.labels import collect_run
from recalign.report.results import result_groups
from recalign.report.verdict import chance_level, compare, comparison_sentence, group_verdicts

from .fixture import LLM_LABEL, USERS, make_run


def _groups(run_dir):
    return {g.protocol: g for g in result_groups(collect_run(run_dir))}


def test_full_ranking_verdict_from_known_numbers(tmp_path):
    groups = _groups(make_run(tmp_path / "run"))
    [line] = group_verdicts(groups["retrieval"])
    # Per user: the LLM hits users 1..10 at rank 1 and misses 11..20; SASRec hits all 20.
    diff = np.array([0.0] * 10 + [1.0] * 10)
    draws = diff[np.random.default_rng(0).integers(0, 20, size=(1000, 20))].mean(axis=1)
    low, high = np.percentile(draws, [2.5, 97.5])
    assert line == (
        f"SASRec (BCE loss) beats {LLM_LABEL} on ndcg@10: 1.0000 vs 0.5000 over the same "
        f"20 users, 0.5000 higher; 95% paired interval [{low:+.4f}, {high:+.4f}] excludes "
        "zero: not resampling noise."
    )


def test_rating_verdict_compares_errors_lower_is_better(tmp_path):
    groups = _groups(make_run(tmp_path / "run"))
    [line] = group_verdicts(groups["rating"])
    assert line == (
        f"biased MF beats {LLM_LABEL} on mae: 0.5000 vs 1.0000 over the same 20 users, "
        "0.5000 lower (better); 95% paired interval [+0.5000, +0.5000] excludes zero: "
        "not resampling noise."
    )


def test_ranking_verdict_compares_with_chance(tmp_path):
    groups = _groups(make_run(tmp_path / "run"))
    [line] = group_verdicts(groups["ranking"])
    chance = sum(1 / math.log2(r + 1) for r in range(1, 11)) / 20  # rank uniform on 1..20
    assert f"a random order of the 20 candidates scores {chance:.4f} on average" in line
    assert line.startswith(f"{LLM_LABEL} scores ndcg@10 0.6934") and "above chance" in line


@pytest.mark.parametrize(("n", "key", "expected"), [(20, "hit@10", 0.5), (100, "hit@1", 0.01)])
def test_chance_level(tmp_path, n, key, expected):
    evaluation = read_evaluation(make_run(tmp_path / "run") / "eval" / "ranking", LLM)
    evaluation.raw["options"]["num_candidates"] = n
    assert chance_level(evaluation, key) == (n, pytest.approx(expected))


def test_a_small_difference_is_called_noise(tmp_path):
    run = make_run(tmp_path / "run")
    llm = read_evaluation(run / "eval" / "retrieval", LLM)
    # A rival that differs from the LLM on one user out of twenty.
    records = [{"user_id": u, "target": 1, "ranked": [1] if u <= 11 else [2]} for u in range(1, 21)]
    write_evaluation(
        tmp_path / "rival",
        records,
        protocol="retrieval",
        split="test",
        model="r",
        exclude_history=True,
    )
    rival = read_evaluation(tmp_path / "rival", BASELINE)
    comparison = compare(llm, rival, "ndcg@10")
    assert comparison.winner is rival and comparison.margin == pytest.approx(0.05)
    assert not comparison.significant
    sentence = comparison_sentence(comparison)
    assert "includes zero: the data cannot tell them apart" in sentence
    assert " is ahead of " in sentence and " beats " not in sentence  # no win within noise
    # The same predictions tie.
    tie = compare(llm, llm, "ndcg@10")
    assert comparison_sentence(tie).endswith("tie on ndcg@10 (0.5000) over the same 20 users.")


def test_without_a_user_sample_the_baselines_are_compared_directly(tmp_path):
    run = collect_run(make_run(tmp_path / "run", llm_users=USERS))
    assert run.same_users == []  # the LLM saw every user: nothing to re-score
    groups = {g.protocol: g for g in result_groups(run)}
    [line] = group_verdicts(groups["retrieval"])
    # Users 1..10 hit, 11..40 miss: the LLM's ndcg@10 is 0.25 over all 40 users.
    assert line.startswith(
        f"SASRec (BCE loss) beats {LLM_LABEL} on ndcg@10: 1.0000 vs 0.2500 over the same "
        "40 users, 0.7500 higher;"
    )
