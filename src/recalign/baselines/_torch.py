"""Shared plumbing of the PyTorch baselines: seeding, devices, threads, the minibatch
epoch, early stopping.

torch is imported lazily by the callers; this module is only imported from them.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from recalign.baselines.base import FitReport
from recalign.baselines.config import TrainingConfig
from recalign.errors import ConfigError

logger = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} was asked for but CUDA is not available; use --device cpu"
        )
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"unknown device {name!r} (use cpu or cuda)") from error


@contextmanager
def seeded(seed: int, num_threads: int | None = None) -> Iterator[None]:
    """Run with torch's RNG seeded, then give the caller's RNG state back.

    Initialisation and dropout draw from torch's global generator; forking it keeps a
    fit reproducible without disturbing anyone else's random stream.
    """
    previous_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(previous_threads)


@contextmanager
def training(cfg: TrainingConfig) -> Iterator[torch.device]:
    """The device `cfg` asks for, with torch seeded by `cfg.seed` (and on `cfg.num_threads`
    threads) inside: how every gradient-trained baseline fits."""
    device = resolve_device(cfg.device)
    with seeded(cfg.seed, cfg.num_threads):
        yield device


def minibatch_epoch(
    optimizer: torch.optim.Optimizer,
    order: np.ndarray,
    batch_size: int,
    batch_loss: Callable[[np.ndarray], torch.Tensor],
) -> float:
    """One pass over the rows `order`, `batch_size` at a time: an optimiser step on each
    batch's `batch_loss(rows)`. Returns the mean batch loss."""
    total, batches = 0.0, 0
    for start in range(0, len(order), batch_size):
        loss = batch_loss(order[start : start + batch_size])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach())
        batches += 1
    return total / max(batches, 1)


def early_stopping_loop(
    cfg: TrainingConfig,
    *,
    run_epoch: Callable[[int], float],
    module: torch.nn.Module,
    evaluate: Callable[[], float] | None,
    label: str,
) -> FitReport:
    """Train for up to `cfg.epochs`; evaluate every `cfg.eval_every`, stop after
    `cfg.patience` evaluations without improvement; restore the best weights.

    `run_epoch(epoch)` returns the mean training loss. Without `evaluate` the model
    trains for all epochs and keeps its last weights.
    """
    epochs, eval_every, patience = cfg.epochs, cfg.eval_every, cfg.patience
    report = FitReport()
    best_state: dict[str, Any] | None = None
    bad_evals = 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        module.train()
        loss = run_epoch(epoch)
        report.epochs = epoch
        row: dict[str, float] = {"epoch": epoch, "loss": float(loss)}
        should_eval = evaluate is not None and (epoch % eval_every == 0 or epoch == epochs)
        if should_eval:
            module.eval()
            eval_start = time.perf_counter()
            score = float(evaluate())
            report.eval_seconds += time.perf_counter() - eval_start
            row["valid_ndcg@10"] = score
            if report.best_valid is None or score > report.best_valid:
                report.best_valid, report.best_epoch = score, epoch
                best_state = copy.deepcopy(module.state_dict())
                bad_evals = 0
            else:
                bad_evals += 1
        row["seconds"] = round(time.perf_counter() - start, 3)
        report.history.append(row)
        logger.info(
            "%s epoch %d loss %.4f%s",
            label,
            epoch,
            loss,
            f" valid ndcg@10 {row['valid_ndcg@10']:.4f}" if "valid_ndcg@10" in row else "",
        )
        if should_eval and bad_evals >= patience:
            logger.info("%s: early stop at epoch %d (best %d)", label, epoch, report.best_epoch)
            break
    report.train_seconds = time.perf_counter() - start - report.eval_seconds
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return report
