"""How close two float32 model outputs must be when they were computed differently.

A score computed for one user alone and the same score computed in a batch of users go
through the same arithmetic in a different order: BLAS and oneDNN choose their kernels
and blocking from the matrix shapes (batch size, padded length) and the thread count,
so every reduction (a dot product over the hidden size, an attention sum over the
positions) may round differently. float32 keeps 24 bits (unit roundoff u = 6e-8); a
reduction of length n can be off by up to ~n*u relative (4e-6 for the 64-wide hidden
layers of the test models), and layer after layer these add up: 1.5e-5 was observed for
SASRec (2 blocks) between the evaluator's batches and a served single history. So:

- `BATCH_RTOL` / `BATCH_ATOL` bound the difference of one score computed in two
  batchings (about 7x the largest difference seen);
- rankings built from such scores may swap two items whose scores are closer than
  that: `assert_same_ranking` allows exactly those swaps and nothing else.

Where the two sides run the identical computation (same batch, same shapes, same
threads), tests compare exactly instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

BATCH_RTOL = 1e-4
BATCH_ATOL = 1e-5


def _close(a: float, b: float, rel: float, abs_: float) -> bool:
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


def assert_same_ranking(
    got_ids: Sequence[int],
    got_scores: Sequence[float],
    want_ids: Sequence[int],
    want_scores: Sequence[float],
    *,
    rel: float = BATCH_RTOL,
    abs_: float = BATCH_ATOL,
) -> None:
    """The same top-K up to float32 batching noise.

    Position by position the scores agree within the tolerance; an item may stand at
    another position than expected only if the score expected there is within the
    tolerance of that item's expected score (a near-tie), or — at the end of the list —
    of the last expected score (a near-tie across the cut-off).
    """
    got_ids, want_ids = list(got_ids), list(want_ids)
    assert len(got_ids) == len(want_ids), (got_ids, want_ids)
    assert list(got_scores) == pytest.approx(list(want_scores), rel=rel, abs=abs_)
    expected_score = dict(zip(want_ids, want_scores, strict=True))
    for position, (got, want) in enumerate(zip(got_ids, want_ids, strict=True)):
        if got == want:
            continue
        here = want_scores[position]
        if got in expected_score:
            assert _close(expected_score[got], here, rel, abs_), (
                f"position {position + 1}: item {got} (expected score "
                f"{expected_score[got]}) instead of {want} ({here}): not a near-tie"
            )
        else:
            assert _close(here, want_scores[-1], rel, abs_), (
                f"position {position + 1}: item {got} is not in the expected list and "
                f"{want} ({here}) is not a near-tie with the cut-off ({want_scores[-1]})"
            )
    assert len(set(got_ids)) == len(got_ids), f"duplicate items in {got_ids}"
