"""Rating-prediction baselines: global, user and item means, and biased MF.

All train on the train part's ratings only. Means fall back to the global mean for a
user or item with no train rating; biased MF predicts mu + b_u + b_i + p_u . q_i,
clipped to the rating range seen in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from recalign.baselines._data import train_ratings
from recalign.baselines.base import FitReport, RatingPredictor, ValidFn
from recalign.baselines.config import MeanConfig, RatingMFConfig
from recalign.constants import RATING, USER_ID
from recalign.data.store import PreparedDataset
from recalign.errors import RecalignError

STATE_FILE = "rating.npz"


def _require_ratings(dataset: PreparedDataset, name: str) -> pl.DataFrame:
    if not dataset.has_ratings:
        raise RecalignError(
            f"the {name} baseline needs ratings, and dataset {dataset.name!r} has none "
            "(its sequences.parquet has no 'ratings' column)"
        )
    return train_ratings(dataset)


class _MeanRating(RatingPredictor):
    """Mean rating per key (user, item or nothing), global mean as the fallback."""

    key: ClassVar[str | None] = None
    config_class = MeanConfig

    def __init__(self, config: MeanConfig | None = None) -> None:
        super().__init__(config)
        self.global_mean = 0.0
        self.means: dict[int, float] = {}

    def fit(self, dataset: PreparedDataset, valid_fn: ValidFn | None = None) -> FitReport:
        ratings = _require_ratings(dataset, self.name)
        self.global_mean = float(ratings.get_column(RATING).mean())
        if self.key is not None:
            means = ratings.group_by(self.key).agg(pl.col(RATING).mean())
            self.means = dict(
                zip(
                    means.get_column(self.key).to_list(),
                    means.get_column(RATING).to_list(),
                    strict=True,
                )
            )
        self.fitted = True
        return FitReport(epochs=1, best_epoch=1)

    def predict(self, user_ids: Sequence[int], item_ids: Sequence[int]) -> np.ndarray:
        self._require_fitted()
        keys = user_ids if self.key == USER_ID else item_ids
        if self.key is None:
            return np.full(len(user_ids), self.global_mean)
        return np.array([self.means.get(int(k), self.global_mean) for k in keys])

    def _save_state(self, out: Path) -> dict[str, Any]:
        keys = np.array(list(self.means), dtype=np.int64)
        values = np.array([self.means[k] for k in keys], dtype=np.float64)
        np.savez(out / STATE_FILE, keys=keys, values=values)
        return {"global_mean": self.global_mean}

    def _load_state(self, path: Path, meta: dict[str, Any]) -> None:
        self.global_mean = float(meta["global_mean"])
        with np.load(path / STATE_FILE, allow_pickle=False) as data:
            self.means = dict(zip(data["keys"].tolist(), data["values"].tolist(), strict=True))


class GlobalMean(_MeanRating):
    name = "global-mean"
    key = None


class UserMean(_MeanRating):
    name = "user-mean"
    key = USER_ID


class ItemMean(_MeanRating):
    name = "item-mean"
    key = "item_id"


class BiasedMF(RatingPredictor):
    """mu + b_u + b_i + p_u . q_i, MSE with L2, early-stopped on valid RMSE."""

    name = "biased-mf"
    config_class = RatingMFConfig

    def __init__(self, config: RatingMFConfig | None = None) -> None:
        super().__init__(config)
        self.mu = 0.0
        self.bounds = (1.0, 5.0)
        self.user_index: dict[int, int] = {}
        self.item_index: dict[int, int] = {}
        self.arrays: dict[str, np.ndarray] = {}

    def fit(self, dataset: PreparedDataset, valid_fn: ValidFn | None = None) -> FitReport:
        import torch
        from torch import nn

        from recalign.baselines._torch import early_stopping_loop, minibatch_epoch, training
        from recalign.baselines.evaluate import evaluate_rating

        cfg: RatingMFConfig = self.config
        ratings = _require_ratings(dataset, self.name)
        values = ratings.get_column(RATING).to_numpy().astype(np.float32)
        self.mu = float(values.mean())
        self.bounds = (float(values.min()), float(values.max()))
        users = np.unique(dataset.sequences.get_column(USER_ID).to_numpy())
        self.user_index = {int(u): r for r, u in enumerate(users)}
        self.item_index = {int(i): i for i in range(dataset.num_items + 1)}
        u_rows = np.array([self.user_index[int(u)] for u in ratings.get_column(USER_ID)])
        i_rows = ratings.get_column("item_id").to_numpy()
        rng = np.random.default_rng(cfg.seed)

        with training(cfg) as device:
            net = nn.ModuleDict(
                {
                    "p": nn.Embedding(len(users), cfg.dim),
                    "q": nn.Embedding(dataset.num_items + 1, cfg.dim),
                    "bu": nn.Embedding(len(users), 1),
                    "bi": nn.Embedding(dataset.num_items + 1, 1),
                }
            ).to(device)
            for name in ("p", "q"):
                nn.init.normal_(net[name].weight, std=0.01)
            for name in ("bu", "bi"):
                nn.init.zeros_(net[name].weight)
            optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
            self.fitted = True

            def batch_loss(sel: np.ndarray) -> torch.Tensor:
                u = torch.from_numpy(u_rows[sel]).to(device)
                i = torch.from_numpy(i_rows[sel]).to(device)
                r = torch.from_numpy(values[sel]).to(device)
                p, q = net["p"](u), net["q"](i)
                pred = self.mu + net["bu"](u)[:, 0] + net["bi"](i)[:, 0] + (p * q).sum(-1)
                reg = cfg.reg * ((p.pow(2).sum(-1) + q.pow(2).sum(-1)).mean())
                return torch.nn.functional.mse_loss(pred, r) + reg

            def run_epoch(epoch: int) -> float:
                order = rng.permutation(len(values))
                loss = minibatch_epoch(optimizer, order, cfg.batch_size, batch_loss)
                self._take_weights(net)
                return loss

            def evaluate() -> float:
                # Early stopping maximises, so hand it the negative valid RMSE.
                return -evaluate_rating(self, dataset, split="valid")[1]["rmse"]

            report = early_stopping_loop(
                cfg, run_epoch=run_epoch, module=net, evaluate=evaluate, label="biased-mf"
            )
            self._take_weights(net)
        return report

    def _take_weights(self, net: Any) -> None:
        self.arrays = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
        self.arrays = {k.replace(".weight", ""): v for k, v in self.arrays.items()}

    def predict(self, user_ids: Sequence[int], item_ids: Sequence[int]) -> np.ndarray:
        self._require_fitted()
        a = self.arrays
        u = np.array([self.user_index.get(int(x), -1) for x in user_ids])
        i = np.array([self.item_index.get(int(x), -1) for x in item_ids])
        u_ok, i_ok = u >= 0, (i >= 0) & (i < len(a["bi"]))
        uu, ii = np.maximum(u, 0), np.where(i_ok, i, 0)
        pred = (
            self.mu
            + np.where(u_ok, a["bu"][uu, 0], 0.0)
            + np.where(i_ok, a["bi"][ii, 0], 0.0)
            + np.where(u_ok & i_ok, (a["p"][uu] * a["q"][ii]).sum(-1), 0.0)
        )
        return np.clip(pred, *self.bounds)

    def _save_state(self, out: Path) -> dict[str, Any]:
        users = np.array(sorted(self.user_index, key=self.user_index.get), dtype=np.int64)
        np.savez(out / STATE_FILE, users=users, **self.arrays)
        return {"mu": self.mu, "bounds": list(self.bounds)}

    def _load_state(self, path: Path, meta: dict[str, Any]) -> None:
        self.mu = float(meta["mu"])
        self.bounds = tuple(meta["bounds"])
        with np.load(path / STATE_FILE, allow_pickle=False) as data:
            self.user_index = {int(u): r for r, u in enumerate(data["users"])}
            self.arrays = {k: data[k] for k in ("p", "q", "bu", "bi")}
        self.item_index = {i: i for i in range(len(self.arrays["bi"]))}
