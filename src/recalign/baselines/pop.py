"""Popularity: every user gets the items most often interacted with in the train part."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recalign.baselines._data import train_pairs
from recalign.baselines.base import FitReport, Recommender, ValidFn
from recalign.baselines.config import PopConfig
from recalign.data.store import PreparedDataset

STATE_FILE = "counts.npy"


class Popularity(Recommender):
    name = "pop"
    config_class = PopConfig
    score_meaning = "the item's number of interactions in the training data; higher is more popular"

    def __init__(self, config: PopConfig | None = None) -> None:
        super().__init__(config)
        self.counts = np.zeros(1, dtype=np.float32)

    def fit(self, dataset: PreparedDataset, valid_fn: ValidFn | None = None) -> FitReport:
        _, items = train_pairs(dataset)
        self.num_items = dataset.num_items
        self.counts = np.bincount(items, minlength=self.num_items + 1).astype(np.float32)
        self.fitted = True
        report = FitReport(epochs=1, best_epoch=1)
        if valid_fn is not None:
            report.best_valid = valid_fn(self)
        return report

    def score_batch(
        self, histories: Sequence[Sequence[int]], user_ids: Sequence[int] | None
    ) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(histories), self.counts.shape[0]))

    def _save_state(self, out: Path) -> dict[str, Any]:
        np.save(out / STATE_FILE, self.counts, allow_pickle=False)
        return {"num_items": self.num_items}

    def _load_state(self, path: Path, meta: dict[str, Any]) -> None:
        self.counts = np.load(path / STATE_FILE, allow_pickle=False)
        self.num_items = int(meta["num_items"])
