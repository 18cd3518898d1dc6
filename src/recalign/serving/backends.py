"""What the `Recommender` needs from a model: three batched calls over item ids.

The HTTP layer and the CLI only ever talk to `Recommender`, which talks to a `Backend`;
a backend hides whether the scores come from a conventional baseline or a language
model. Everything here works on *resolved* item ids — text resolution, limits and
thread-safety live one level up, so a backend is a thin adapter.

Backends:
- `PopularityBackend`: training-interaction counts of a prepared dataset. Needs no
  model, so it is the always-available reference backend (tests, the bench, a sanity
  check of a deployment).
- `BaselineBackend`: any fitted baseline with the baseline contract
  (`recommend(histories, k, exclude=...) -> (ids, scores)`).
- `LLMBackend` (in `recalign.serving.llm_backend`): a fine-tuned LM through the
  inference stage's constrained retrieval and likelihood scoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from recalign.constants import ITEMS
from recalign.errors import RecalignError

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
    "the model's log-likelihood of the item's text after the history (the sum of its "
    "tokens' log-probabilities): at most 0, higher (closer to 0) is better"
)


def top_k_from_scores(scores: np.ndarray, k: int) -> TopK:
    """Top-k of one score row (index = item id; -inf = not allowed), best first.

    Ties break towards the lower item id, so results are deterministic across runs and
    machines (argpartition alone is not stable).
    """
    allowed = int(np.isfinite(scores).sum())
    k = min(k, allowed)
    if k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    # lexsort: last key is primary -> sort by -score, then by id.
    order = np.lexsort((np.arange(scores.size), -scores))[:k]
    return order.astype(np.int64), scores[order].astype(np.float64)


class PopularityBackend:
    """Most-interacted items in the training part of a prepared dataset.

    Counts use the leave-one-out *train* part only, like a popularity baseline fitted
    for evaluation, so the served lists equal the evaluated ones.
    """

    kind = "baseline"
    can_rate = False
    score_meaning = "the item's number of interactions in the training data; higher is more popular"

    def __init__(self, counts: np.ndarray, name: str = "pop") -> None:
        # counts[i] = interactions with item i; index 0 is padding and never recommended.
        self.counts = np.asarray(counts, dtype=np.float64)
        self.name = name

    @classmethod
    def from_dataset(cls, dataset: Any, name: str = "pop") -> PopularityBackend:
        ids = dataset.split.train.get_column(ITEMS).explode().drop_nulls().to_numpy()
        counts = np.bincount(ids, minlength=int(dataset.item_texts.shape[0])).astype(np.float64)
        return cls(counts, name=name)

    def _scores(self, history: Sequence[int], exclude_history: bool) -> np.ndarray:
        scores = self.counts.copy()
        scores[0] = -np.inf
        if exclude_history and len(history):
            scores[np.asarray(history, dtype=np.int64)] = -np.inf
        return scores

    def recommend(self, histories: Histories, k: int, exclude_history: bool) -> list[TopK]:
        return [top_k_from_scores(self._scores(h, exclude_history), k) for h in histories]

    def rank(self, histories: Histories, candidates: Sequence[Sequence[int]]) -> list[np.ndarray]:
        return [self.counts[np.asarray(c, dtype=np.int64)].copy() for c in candidates]

    def rate(self, histories, items, ratings) -> np.ndarray:
        raise UnsupportedOperationError(
            f"the {self.name!r} model ranks items but does not predict ratings; "
            "serve a run trained with the rating task"
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
        self.score_meaning = (
            f"the {name} model's score for the item (comparable within one list only); "
            "higher is better"
        )

    def recommend(self, histories: Histories, k: int, exclude_history: bool) -> list[TopK]:
        lists = [list(map(int, h)) for h in histories]
        ids, scores = self.model.recommend(lists, k, exclude_history=exclude_history)
        out: list[TopK] = []
        for row_ids, row_scores in zip(np.asarray(ids), np.asarray(scores), strict=True):
            # Rows are padded with id 0 / -inf when fewer than k items remain.
            keep = (row_ids > 0) & np.isfinite(row_scores)
            out.append((row_ids[keep].astype(np.int64), row_scores[keep].astype(np.float64)))
        return out

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
