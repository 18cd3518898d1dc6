"""What the `Recommender` needs from a model: three batched calls over item ids.

The HTTP layer and the CLI only ever talk to `Recommender`, which talks to a `Backend`;
a backend hides whether the scores come from a conventional baseline or a language
model. Everything here works on *resolved* item ids — text resolution, limits and
thread-safety live one level up, so a backend is a thin adapter.

Backends:
- `BaselineBackend`: any fitted baseline with the baseline contract
  (`recommend(histories, k, exclude=...) -> (ids, scores)`), which ranks by the ranking
  core (`recalign.ranking`) exactly as the baseline's evaluation does.
  `popularity_backend(dataset)` fits the popularity baseline on a prepared dataset: it
  needs no saved model, so it is the always-available reference backend (tests, the
  bench, a sanity check of a deployment).
- `LLMBackend` (in `recalign.serving.llm_backend`): a fine-tuned LM through the
  inference stage's constrained retrieval and likelihood scoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from recalign.errors import RecalignError
from recalign.ranking import unpad

Histories = Sequence[Sequence[int]]
TopK = tuple[np.ndarray, np.ndarray]  # (item ids best first, their scores)


class UnsupportedOperationError(RecalignError):
    """The run's model cannot do what was asked (e.g. ratings from a ranking-only model)."""


@runtime_checkable
class Backend(Protocol):
    """The batched model calls behind a `Recommender`.

    A backend may also say what its scores mean, in words, as `score_meaning` (shown
    beside every list); without it `describe_score` words one from `kind`.
    """

    kind: str  # "baseline" or "llm"
    name: str  # the model's name, e.g. "pop", "sasrec", "tiny-t5"
    can_rate: bool

    def recommend(self, histories: Histories, k: int, exclude_history: bool) -> list[TopK]:
        """Top-`k` items per history, best first (fewer only when the catalogue runs out)."""
        ...

    def rank(self, histories: Histories, candidates: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """One score per candidate (higher is better), in the candidates' order."""
        ...

    def rate(
        self,
        histories: Histories,
        items: Sequence[int],
        ratings: Sequence[Sequence[float] | None],
    ) -> np.ndarray:
        """A predicted rating per (history, item)."""
        ...


def describe_score(backend: Any) -> str:
    """What `backend`'s scores mean, in words: its `score_meaning`, else one by its kind."""
    meaning = getattr(backend, "score_meaning", None)
    if isinstance(meaning, str) and meaning:
        return meaning
    if getattr(backend, "kind", None) == "llm":
        return LLM_SCORE_MEANING
    return "the model's score for the item; higher is better"


LLM_SCORE_MEANING = (
    "the model's log-likelihood of the item's answer (its text, or its id or semantic id, "
    "as the run shows items) after the history (the sum of its "
    "tokens' log-probabilities): at most 0, higher (closer to 0) is better"
)


class BaselineBackend:
    """Adapter for a fitted ranking baseline (`recalign.baselines.Recommender`).

    Baselines score new histories directly (`score_batch(histories, user_ids=None)`);
    ranking given candidates reads those full-catalogue scores per candidate. Rating
    baselines predict per *known user id*, not per history, so they are not servable
    here: `rate` says so.
    """

    kind = "baseline"
    can_rate = False

    def __init__(self, model: Any, name: str) -> None:
        self.model = model
        self.name = name
        # A baseline may say what its scores mean (popularity: counts); else in general.
        self.score_meaning = getattr(model, "score_meaning", None) or (
            f"the {name} model's score for the item (comparable within one list only); "
            "higher is better"
        )

    def recommend(self, histories: Histories, k: int, exclude_history: bool) -> list[TopK]:
        lists = [list(map(int, h)) for h in histories]
        ids, scores = self.model.recommend(lists, k, exclude_history=exclude_history)
        return [
            (row_ids.astype(np.int64), row_scores.astype(np.float64))
            for row_ids, row_scores in map(unpad, ids, scores)
        ]

    def rank(self, histories: Histories, candidates: Sequence[Sequence[int]]) -> list[np.ndarray]:
        lists = [list(map(int, h)) for h in histories]
        matrix = np.asarray(self.model.score_batch(lists, None), dtype=np.float64)
        return [
            matrix[row, np.asarray(c, dtype=np.int64)].copy() for row, c in enumerate(candidates)
        ]

    def rate(self, histories, items, ratings) -> np.ndarray:
        raise UnsupportedOperationError(
            f"the {self.name!r} baseline ranks items but does not predict ratings from a "
            "history; serve an LLM run trained with the rating task"
        )


def popularity_backend(dataset: Any) -> BaselineBackend:
    """The popularity baseline fitted on `dataset`'s train part, the one its evaluation
    ranks with, so the served lists equal the evaluated ones."""
    from recalign.baselines.pop import Popularity

    model = Popularity()
    model.fit(dataset)
    return BaselineBackend(model, model.name)
