"""Candidate log-likelihoods against a direct forward pass; rating from answer probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recalign.inference.scoring import (
    expected_rating,
    predict_ratings,
    rank_by_score,
    score_candidates,
)
from tests.inference.conftest import prompts_for

torch = pytest.importorskip("torch")


def direct_loglik(model, family, prompt, answer) -> float:
    """log p(answer | prompt) from one plain forward pass with the full sequence."""
    with torch.no_grad():
        if family == "seq2seq":
            logits = model(input_ids=torch.tensor([prompt]), labels=torch.tensor([answer])).logits[
                0
            ]
            logp = torch.log_softmax(logits, -1)
            return float(sum(logp[j, t] for j, t in enumerate(answer)))
        ids = torch.tensor([prompt + answer])
        logp = torch.log_softmax(model(input_ids=ids).logits[0], -1)
        start = len(prompt)
        return float(sum(logp[start + j - 1, t] for j, t in enumerate(answer)))


def test_scores_equal_a_direct_forward_pass(lm, texts):
    from recalign.models.tokenization import encode_answer

    model, tokenizer, family = lm
    prompts, _ = prompts_for(tokenizer, family, texts, 2)
    answers = [encode_answer(tokenizer, family, t) for t in texts[:12]]
    lengths = np.array([len(a) for a in answers])
    for prompt in prompts:
        want = np.array([direct_loglik(model, family, prompt, a) for a in answers])
        got = score_candidates(model, tokenizer, family, prompt, answers)
        assert got.tolist() == pytest.approx(want.tolist(), abs=1e-9)
        mean = score_candidates(model, tokenizer, family, prompt, answers, length_normalize=True)
        assert mean.tolist() == pytest.approx((want / lengths).tolist(), abs=1e-9)


def test_rank_by_score_is_stable_best_first():
    assert rank_by_score([7, 8, 9, 10], np.array([0.1, 0.5, 0.1, -1.0])) == (
        [8, 7, 9, 10],
        [0.5, 0.1, 0.1, -1.0],
    )


def test_expected_rating_on_a_hand_made_distribution():
    probs = np.array([0.1, 0.2, 0.3, 0.4, 0.0])
    loglik = np.log(np.maximum(probs, 1e-300))
    assert expected_rating(loglik) == pytest.approx(0.1 + 0.4 + 0.9 + 1.6)
    assert expected_rating(loglik, greedy=True) == 4.0
    # Unnormalised log-likelihoods are renormalised over the scale.
    assert expected_rating(loglik + math.log(0.01)) == pytest.approx(3.0)
    # One certain answer.
    assert expected_rating(np.array([-1e9, -1e9, 0.0, -1e9, -1e9])) == pytest.approx(3.0)
    # Clamped to the scale, e.g. on a half-star scale.
    assert 0.5 <= expected_rating(np.zeros(3), values=(0.5, 1.0, 5.0)) <= 5.0


def test_predict_ratings_uses_the_answer_likelihoods(t5, texts):
    from recalign.models.tokenization import encode_answer

    model, tokenizer, family = t5
    prompts, _ = prompts_for(tokenizer, family, texts, 2)
    answers = [encode_answer(tokenizer, family, str(r)) for r in range(1, 6)]
    got = predict_ratings(model, tokenizer, family, prompts)
    for prompt, value in zip(prompts, got, strict=True):
        loglik = np.array([direct_loglik(model, family, prompt, a) for a in answers])
        p = np.exp(loglik - loglik.max())
        assert value == pytest.approx(float((p * np.arange(1, 6)).sum() / p.sum()), abs=1e-9)
        assert 1.0 <= value <= 5.0
