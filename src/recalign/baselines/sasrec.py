"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the item sequence.

Reads top to bottom: the network (blocks, then the model), then the baseline that
trains it. Two losses:

- `bce`: one sampled negative per position with binary cross-entropy, as in the
  original paper and in the SASRec rows of the P5 / TIGER tables;
- `ce`: full softmax cross-entropy over the catalogue, known to be much stronger
  (Klenitskiy & Vasilev, RecSys 2023).

The block follows the reference implementation (pmixer/SASRec.pytorch): the query is
layer-normed, keys/values are not; residual on the normed query; point-wise FFN with
its own residual; padded positions zeroed after every block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recalign.baselines._data import train_sequences
from recalign.baselines.base import FitReport, Recommender, ValidFn
from recalign.baselines.config import SASRecConfig
from recalign.data.store import PreparedDataset

if TYPE_CHECKING:
    import torch

WEIGHTS_FILE = "sasrec.safetensors"


def _build_network(num_items: int, cfg: SASRecConfig) -> torch.nn.Module:
    """The SASRec network (defined inside a function so torch is imported lazily)."""
    import torch
    from torch import nn

    class PointWiseFFN(nn.Module):
        def __init__(self, hidden: int, dropout: float) -> None:
            super().__init__()
            self.fc1 = nn.Linear(hidden, hidden)
            self.fc2 = nn.Linear(hidden, hidden)
            self.drop1 = nn.Dropout(dropout)
            self.drop2 = nn.Dropout(dropout)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.drop2(self.fc2(self.drop1(torch.relu(self.fc1(x)))))

    class Block(nn.Module):
        def __init__(self, hidden: int, heads: int, dropout: float) -> None:
            super().__init__()
            self.attn_norm = nn.LayerNorm(hidden, eps=1e-8)
            self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
            self.ffn_norm = nn.LayerNorm(hidden, eps=1e-8)
            self.ffn = PointWiseFFN(hidden, dropout)

        def forward(self, x: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
            query = self.attn_norm(x)
            out, _ = self.attn(query, x, x, attn_mask=mask, need_weights=False)
            x = self.ffn(self.ffn_norm(query + out))
            return x * keep

    class SASRecNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden, self.heads, self.max_len = cfg.hidden, cfg.heads, cfg.max_len
            self.item_emb = nn.Embedding(num_items + 1, cfg.hidden, padding_idx=0)
            self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
            self.emb_drop = nn.Dropout(cfg.dropout)
            self.blocks = nn.ModuleList(
                Block(cfg.hidden, cfg.heads, cfg.dropout) for _ in range(cfg.blocks)
            )
            self.last_norm = nn.LayerNorm(cfg.hidden, eps=1e-8)
            for param in self.parameters():
                if param.dim() > 1:
                    nn.init.xavier_normal_(param)
            with torch.no_grad():
                self.item_emb.weight[0].zero_()

        def forward(self, seqs: torch.Tensor) -> torch.Tensor:
            """(batch, L) left-padded item ids, L <= max_len -> (batch, L, hidden)."""
            length = seqs.shape[1]
            x = self.item_emb(seqs) * math.sqrt(self.hidden)
            # Positions are absolute in the max_len window, so trimming a batch's
            # all-padding prefix changes nothing.
            positions = torch.arange(self.max_len - length, self.max_len, device=seqs.device)
            x = self.emb_drop(x + self.pos_emb(positions))
            pad = seqs == 0
            keep = (~pad).unsqueeze(-1).to(x.dtype)
            x = x * keep
            # True = may not attend: future keys, and padding keys. Each position may
            # always see itself so padded rows are never fully masked (NaN softmax).
            eye = torch.eye(length, dtype=torch.bool, device=seqs.device)
            future = torch.triu(torch.ones(length, length, dtype=torch.bool, device=seqs.device), 1)
            mask = future.unsqueeze(0) | (pad.unsqueeze(1) & ~eye)
            mask = mask.repeat_interleave(self.heads, dim=0)
            for block in self.blocks:
                x = block(x, mask, keep)
            return self.last_norm(x)

    return SASRecNet()


def _left_pad(sequences: Sequence[Sequence[int]], max_len: int) -> np.ndarray:
    """The last `max_len` items of each sequence, left-padded with 0."""
    out = np.zeros((len(sequences), max_len), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = list(seq)[-max_len:]
        if tail:
            out[row, max_len - len(tail) :] = tail
    return out


def _trim(batch: np.ndarray) -> np.ndarray:
    """Drop leading columns that are padding for every row (at least one column kept)."""
    used = np.flatnonzero(batch.any(axis=0))
    return batch[:, used[0] :] if len(used) else batch[:, -1:]


class SASRec(Recommender):
    name = "sasrec"
    config_class = SASRecConfig

    def __init__(self, config: SASRecConfig | None = None) -> None:
        super().__init__(config)
        self.net: Any = None

    # --- training ------------------------------------------------------------------
    def fit(self, dataset: PreparedDataset, valid_fn: ValidFn | None = None) -> FitReport:
        import torch

        from recalign.baselines._torch import early_stopping_loop, minibatch_epoch, training

        cfg: SASRecConfig = self.config
        self.num_items = dataset.num_items
        _, sequences = train_sequences(dataset)
        # Input = train items but the last; target at each position = the next item.
        usable = [s for s in sequences if len(s) >= 2]
        inputs = _left_pad([s[:-1] for s in usable], cfg.max_len)
        targets = _left_pad([s[1:] for s in usable], cfg.max_len)
        rng = np.random.default_rng(cfg.seed)

        with training(cfg) as device:
            self.net = _build_network(self.num_items, cfg).to(device)
            self.fitted = True
            optimizer = torch.optim.Adam(
                self.net.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay
            )

            def batch_loss(rows: np.ndarray) -> torch.Tensor:
                seq_np = _trim(inputs[rows])
                pos_np = targets[rows][:, -seq_np.shape[1] :]
                return self._loss(seq_np, pos_np, rng, device)

            def run_epoch(epoch: int) -> float:
                order = rng.permutation(len(inputs))
                return minibatch_epoch(optimizer, order, cfg.batch_size, batch_loss)

            report = early_stopping_loop(
                cfg,
                run_epoch=run_epoch,
                module=self.net,
                evaluate=None if valid_fn is None else (lambda: valid_fn(self)),
                label=f"sasrec-{cfg.loss}",
            )
        return report

    def _loss(
        self, seq_np: np.ndarray, pos_np: np.ndarray, rng: np.random.Generator, device: Any
    ) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        seqs = torch.from_numpy(seq_np).to(device)
        pos = torch.from_numpy(pos_np).to(device)
        hidden = self.net(seqs)
        valid = pos != 0
        h = hidden[valid]  # only real positions: cheaper, and padding has no target
        target = pos[valid]
        if self.config.loss == "ce":
            logits = h @ self.net.item_emb.weight.T
            logits[:, 0] = float("-inf")
            return F.cross_entropy(logits, target)
        # One uniform negative per position, re-drawn where it hit the positive
        # (the original samples outside the user's whole set; at ~9 items of 12k the
        # difference is negligible and this keeps sampling vectorised).
        neg_np = rng.integers(1, self.num_items + 1, size=int(valid.sum()))
        target_np = pos_np[pos_np != 0]
        for _ in range(3):
            clash = neg_np == target_np
            if not clash.any():
                break
            neg_np[clash] = rng.integers(1, self.num_items + 1, size=int(clash.sum()))
        neg = torch.from_numpy(neg_np).to(device)
        emb = self.net.item_emb
        pos_logits = (h * emb(target)).sum(-1)
        neg_logits = (h * emb(neg)).sum(-1)
        return F.binary_cross_entropy_with_logits(
            pos_logits, torch.ones_like(pos_logits)
        ) + F.binary_cross_entropy_with_logits(neg_logits, torch.zeros_like(neg_logits))

    # --- inference -----------------------------------------------------------------
    def score_batch(
        self, histories: Sequence[Sequence[int]], user_ids: Sequence[int] | None
    ) -> np.ndarray:
        import torch

        self._require_fitted()
        device = next(self.net.parameters()).device
        seqs = torch.from_numpy(_trim(_left_pad(histories, self.config.max_len))).to(device)
        with torch.inference_mode():
            last = self.net(seqs)[:, -1, :]
            scores = last @ self.net.item_emb.weight.T
        return scores.float().cpu().numpy()

    # --- persistence ---------------------------------------------------------------
    def _save_state(self, out: Path) -> dict[str, Any]:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, str(out / WEIGHTS_FILE))
        return {"num_items": self.num_items}

    def _load_state(self, path: Path, meta: dict[str, Any]) -> None:
        from safetensors.torch import load_file

        from recalign.baselines._torch import resolve_device

        self.num_items = int(meta["num_items"])
        self.net = _build_network(self.num_items, self.config)
        self.net.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
        self.net.to(resolve_device(self.config.device)).eval()
