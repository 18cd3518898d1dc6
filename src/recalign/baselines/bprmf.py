"""BPR-MF (Rendle et al., UAI 2009): user and item embeddings trained to rank a user's
train item above a uniformly sampled one.

A user is identified by `user_id`; a user unseen in training has a zero vector and so
gets the items ranked by their learned bias alone (a popularity-like fallback).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recalign.baselines._data import train_pairs
from recalign.baselines.base import FitReport, Recommender, ValidFn
from recalign.baselines.config import BPRMFConfig
from recalign.data.store import PreparedDataset

WEIGHTS_FILE = "bprmf.npz"


class BPRMF(Recommender):
    name = "bprmf"
    config_class = BPRMFConfig

    def __init__(self, config: BPRMFConfig | None = None) -> None:
        super().__init__(config)
        self.user_index: dict[int, int] = {}
        self.user_emb = np.zeros((0, 0), dtype=np.float32)
        self.item_emb = np.zeros((0, 0), dtype=np.float32)
        self.item_bias = np.zeros(0, dtype=np.float32)

    def fit(self, dataset: PreparedDataset, valid_fn: ValidFn | None = None) -> FitReport:
        import torch
        from torch import nn

        from recalign.baselines._torch import early_stopping_loop, minibatch_epoch, training

        cfg: BPRMFConfig = self.config
        users, items = train_pairs(dataset)
        self.num_items = dataset.num_items
        known = np.unique(dataset.sequences.get_column("user_id").to_numpy())
        self.user_index = {int(u): row for row, u in enumerate(known)}
        rows = np.array([self.user_index[int(u)] for u in users], dtype=np.int64)
        rng = np.random.default_rng(cfg.seed)

        with training(cfg) as device:
            net = nn.ModuleDict(
                {
                    "user": nn.Embedding(len(known), cfg.dim),
                    "item": nn.Embedding(self.num_items + 1, cfg.dim),
                    "bias": nn.Embedding(self.num_items + 1, 1),
                }
            ).to(device)
            for emb in (net["user"], net["item"]):
                nn.init.normal_(emb.weight, std=0.1)
            nn.init.zeros_(net["bias"].weight)
            optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
            self.fitted = True

            def run_epoch(epoch: int) -> float:
                order = rng.permutation(len(rows))
                negatives = rng.integers(1, self.num_items + 1, size=len(rows))

                def batch_loss(sel: np.ndarray) -> torch.Tensor:
                    u = torch.from_numpy(rows[sel]).to(device)
                    i = torch.from_numpy(items[sel]).to(device)
                    j = torch.from_numpy(negatives[sel]).to(device)
                    pu, qi, qj = net["user"](u), net["item"](i), net["item"](j)
                    diff = (pu * (qi - qj)).sum(-1) + (net["bias"](i) - net["bias"](j)).squeeze(-1)
                    reg = cfg.reg * (pu.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / len(sel)
                    return -torch.nn.functional.logsigmoid(diff).mean() + reg

                loss = minibatch_epoch(optimizer, order, cfg.batch_size, batch_loss)
                self._take_weights(net)
                return loss

            report = early_stopping_loop(
                cfg,
                run_epoch=run_epoch,
                module=net,
                evaluate=None if valid_fn is None else (lambda: valid_fn(self)),
                label="bprmf",
            )
            self._take_weights(net)  # the restored best weights
        return report

    def _take_weights(self, net: Any) -> None:
        self.user_emb = net["user"].weight.detach().cpu().numpy().copy()
        self.item_emb = net["item"].weight.detach().cpu().numpy().copy()
        self.item_bias = net["bias"].weight.detach().cpu().numpy()[:, 0].copy()

    def score_batch(
        self, histories: Sequence[Sequence[int]], user_ids: Sequence[int] | None
    ) -> np.ndarray:
        if user_ids is None:
            from recalign.errors import RecalignError

            raise RecalignError("bprmf scores users by id: pass user_ids to recommend()")
        rows = np.array([self.user_index.get(int(u), -1) for u in user_ids])
        vectors = np.where(rows[:, None] >= 0, self.user_emb[np.maximum(rows, 0)], 0.0)
        return vectors.astype(np.float32) @ self.item_emb.T + self.item_bias[None, :]

    def _save_state(self, out: Path) -> dict[str, Any]:
        users = np.array(sorted(self.user_index, key=self.user_index.get), dtype=np.int64)
        np.savez(
            out / WEIGHTS_FILE,
            users=users,
            user_emb=self.user_emb,
            item_emb=self.item_emb,
            item_bias=self.item_bias,
        )
        return {"num_items": self.num_items}

    def _load_state(self, path: Path, meta: dict[str, Any]) -> None:
        with np.load(path / WEIGHTS_FILE, allow_pickle=False) as data:
            self.user_index = {int(u): row for row, u in enumerate(data["users"])}
            self.user_emb = data["user_emb"]
            self.item_emb = data["item_emb"]
            self.item_bias = data["item_bias"]
        self.num_items = int(meta["num_items"])
