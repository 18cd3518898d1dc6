"""The one contract every baseline follows.

A ranking baseline only has to say how it scores the whole catalogue for a batch of
users (`score_batch`); `Recommender.recommend` batches the users and ranks the scores by
the ranking core (`recalign.ranking`: the history rule, top-K with ties to the lower
item id, column 0 as padding), so every model — language models included — is ranked by
exactly the same rule.

A rating baseline implements `predict(user_ids, item_ids)`.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from recalign.data.store import PreparedDataset
from recalign.errors import IncompatibleArtifactError, RecalignError
from recalign.ranking import banned_items, top_k

logger = logging.getLogger(__name__)

MODEL_FILE = "model.json"

# `valid_fn(model) -> valid NDCG@10`: what early stopping watches.
ValidFn = Callable[["Recommender"], float]


@dataclass
class FitReport:
    """What a fit did: epochs run, the best epoch and its valid score, timings, curve."""

    epochs: int = 0
    best_epoch: int | None = None
    best_valid: float | None = None
    train_seconds: float = 0.0  # optimisation only
    eval_seconds: float = 0.0  # the valid evaluations of early stopping
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_valid": self.best_valid,
            "train_seconds": round(self.train_seconds, 3),
            "eval_seconds": round(self.eval_seconds, 3),
            "seconds_per_epoch": round(self.train_seconds / self.epochs, 3)
            if self.epochs
            else None,
            "history": self.history,
        }


class Baseline(ABC):
    """Common parts: a name, a typed config, save/load of the config next to the weights."""

    name: ClassVar[str]
    kind: ClassVar[str]  # "ranking" or "rating"
    config_class: ClassVar[type[BaseModel]]  # its options (`recalign.baselines.config`)

    def __init__(self, config: Any = None) -> None:
        self.config = config or self.config_class()
        self.fitted = False

    @abstractmethod
    def fit(self, dataset: PreparedDataset, valid_fn: ValidFn | None = None) -> FitReport:
        """Train on the train part of `dataset` (never its valid/test targets)."""

    def save(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"name": self.name, "kind": self.kind, "config": self.config.model_dump()}
        meta.update(self._save_state(out))
        (out / MODEL_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return out

    @classmethod
    def load(cls, model_dir: str | Path) -> Baseline:
        path = Path(model_dir)
        meta = read_model_meta(path)
        if meta.get("name") != cls.name:
            raise IncompatibleArtifactError(
                f"{path} holds a {meta.get('name')!r} model, not {cls.name!r}"
            )
        model = cls(cls.config_class(**meta["config"]))
        model._load_state(path, meta)
        model.fitted = True
        return model

    @abstractmethod
    def _save_state(self, out: Path) -> dict[str, Any]:
        """Write weights/statistics into `out`; return extra JSON metadata."""

    @abstractmethod
    def _load_state(self, path: Path, meta: dict[str, Any]) -> None: ...

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise RecalignError(f"the {self.name} baseline must be fitted (or loaded) first")


class Recommender(Baseline):
    """A ranking baseline over the whole catalogue."""

    kind = "ranking"
    num_items: int = 0

    @abstractmethod
    def score_batch(
        self, histories: Sequence[Sequence[int]], user_ids: Sequence[int] | None
    ) -> np.ndarray:
        """Scores of shape (batch, num_items + 1); column 0 is padding."""

    def recommend(
        self,
        histories: Sequence[Sequence[int]],
        k: int,
        *,
        user_ids: Sequence[int] | None = None,
        exclude_history: bool = True,
        exclude: Sequence[Sequence[int]] | None = None,
        batch_size: int = 1024,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-K item ids and their scores, best first, for each history.

        `exclude` adds per-user item ids to drop (on top of the history when
        `exclude_history`). Returns two (n_users, k) arrays; where fewer than k items
        remain, ids are 0 and scores -inf.
        """
        self._require_fitted()
        if k < 1:
            raise RecalignError(f"k must be at least 1, got {k}")
        n = len(histories)
        k_eff = min(k, self.num_items)
        ids = np.zeros((n, k), dtype=np.int64)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            batch_hist = histories[start:stop]
            batch_users = None if user_ids is None else user_ids[start:stop]
            matrix = self.score_batch(batch_hist, batch_users)
            also = None if exclude is None else exclude[start:stop]
            top_ids, top_scores = top_k(
                matrix, k_eff, banned_items(batch_hist, exclude_history, also)
            )
            ids[start:stop, :k_eff] = top_ids
            scores[start:stop, :k_eff] = top_scores
        return ids, scores


class RatingPredictor(Baseline):
    """A rating-prediction baseline."""

    kind = "rating"

    @abstractmethod
    def predict(self, user_ids: Sequence[int], item_ids: Sequence[int]) -> np.ndarray:
        """Predicted ratings, one per (user, item) pair."""


def read_model_meta(path: Path) -> dict[str, Any]:
    meta_path = Path(path) / MODEL_FILE
    if not meta_path.is_file():
        raise RecalignError(f"{path} has no {MODEL_FILE}: not a saved baseline model")
    from recalign.fileio import read_json_object

    return read_json_object(meta_path)
