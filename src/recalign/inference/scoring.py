"""Candidate scoring by log-likelihood, and rating prediction from answer probabilities.

A candidate's score is the log-probability the model gives to its answer ids (those of
`encode_answer`, ending with EOS) after the prompt: the prompt is encoded (or prefilled)
once, its state fanned out to every candidate, and all candidates run in one decoder
pass. Optional length normalisation divides by the number of answer tokens.

Ratings: the answers "1".."5" are scored the same way; their probabilities, renormalised
over the scale, give the expected rating (or the most likely one, "greedy").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from recalign.errors import ConfigError
from recalign.inference.session import open_session
from recalign.inference.tensors import logsumexp, pad_rows

RATING_SCALE = (1, 2, 3, 4, 5)


def score_candidates(
    model: Any,
    tokenizer: Any,
    family: str,
    prompt: Sequence[int],
    candidates: Sequence[Sequence[int]],
    *,
    length_normalize: bool = False,
) -> np.ndarray:
    """Log-likelihood of each candidate's answer ids after `prompt` (float64, one per candidate)."""
    import torch

    if not candidates:
        return np.empty(0, dtype=np.float64)
    if any(len(c) == 0 for c in candidates):
        raise ConfigError("a candidate answer has no tokens")
    session = open_session(model, family, tokenizer)
    lengths = torch.as_tensor([len(c) for c in candidates])
    targets, mask = pad_rows(candidates, session.pad_token_id, left=False, device=session.device)
    with torch.inference_mode():
        first = _log_softmax(session.start([list(prompt)]))[0]  # (V,)
        total = first[targets[:, 0]].double()
        if targets.shape[1] > 1:
            # Teacher forcing: every candidate row continues the prompt's row; position j
            # of the output scores answer token j + 1.
            parents = torch.zeros(len(candidates), dtype=torch.long, device=session.device)
            rest = _log_softmax(session.advance(targets[:, :-1], parents))
            picked = rest.gather(-1, targets[:, 1:, None])[..., 0].double()
            total = total + (picked * mask[:, 1:]).sum(-1)
    scores = total.cpu().numpy()
    return scores / lengths.numpy() if length_normalize else scores


def _log_softmax(logits: Any) -> Any:
    return logits - logsumexp(logits)[..., None]


def score_many(
    model: Any,
    tokenizer: Any,
    family: str,
    prompts: Sequence[Sequence[int]],
    candidates: Sequence[Sequence[Sequence[int]]],
    *,
    length_normalize: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """`score_candidates` for each user (one user per pass: fastest on CPU, see MACHINE.md)."""
    out = []
    for prompt, cands in zip(prompts, candidates, strict=True):
        out.append(
            score_candidates(
                model, tokenizer, family, prompt, cands, length_normalize=length_normalize
            )
        )
        if progress is not None:
            progress(1)
    return out


def rank_by_score(items: Sequence[int], scores: np.ndarray) -> tuple[list[int], list[float]]:
    """Items best first. Ties keep the given order, so callers shuffle candidates first."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return [int(items[i]) for i in order], [float(scores[i]) for i in order]


def expected_rating(
    loglik: np.ndarray, values: Sequence[float] = RATING_SCALE, *, greedy: bool = False
) -> float:
    """The rating from the log-likelihoods of the answers `values` (renormalised over them).

    Expected value by default, the most likely value with `greedy`; clamped to the scale.
    """
    loglik = np.asarray(loglik, dtype=np.float64)
    values_arr = np.asarray(values, dtype=np.float64)
    if loglik.shape != values_arr.shape or loglik.size == 0:
        raise ConfigError(f"{loglik.size} log-likelihoods for {values_arr.size} rating values")
    if greedy:
        prediction = float(values_arr[int(np.argmax(loglik))])
    else:
        weights = np.exp(loglik - loglik.max())
        prediction = float((weights * values_arr).sum() / weights.sum())
    return float(np.clip(prediction, values_arr.min(), values_arr.max()))


def predict_ratings(
    model: Any,
    tokenizer: Any,
    family: str,
    prompts: Sequence[Sequence[int]],
    *,
    values: Sequence[float] = RATING_SCALE,
    greedy: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[float]:
    """A predicted rating per prompt (see `expected_rating`)."""
    from recalign.models.tokenization import encode_answer
    from recalign.samples.tasks.base import format_rating

    answers = [encode_answer(tokenizer, family, format_rating(v)) for v in values]
    out = []
    for prompt in prompts:
        loglik = score_candidates(model, tokenizer, family, prompt, answers)
        out.append(expected_rating(loglik, values, greedy=greedy))
        if progress is not None:
            progress(1)
    return out
