"""Typed configuration of every baseline, with defaults from `defaults.yaml`.

Each model has one pydantic model that forbids unknown keys, so a typo in a config
names the key instead of being silently ignored. The YAML beside this file holds the
same defaults with a comment on every key; `test_config.py` keeps the two in sync.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from recalign.validation import validate

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0


class TrainingConfig(_Config):
    """What every gradient-trained baseline shares: the optimiser and early stopping."""

    epochs: int = Field(200, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    # Early stopping looks at valid NDCG@10 every `eval_every` epochs and stops after
    # `patience` evaluations without improvement; the best weights are restored.
    eval_every: int = Field(2, ge=1)
    patience: int = Field(5, ge=1)
    device: str = "cpu"
    num_threads: int | None = Field(None, ge=1)


class PopConfig(_Config):
    pass


class BPRMFConfig(TrainingConfig):
    dim: int = Field(64, ge=1)
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(4096, ge=1)
    lr: float = Field(5e-3, gt=0)
    # L2 on the embeddings that a batch touches (the usual BPR regulariser).
    reg: float = Field(1e-4, ge=0)


class SASRecConfig(TrainingConfig):
    loss: Literal["bce", "ce"] = "bce"
    # BCE on Beauty still improves after 150+ epochs; batch 256 halves the time per
    # epoch at equal quality (measured, bench/RESULTS.md).
    epochs: int = Field(300, ge=1)
    batch_size: int = Field(256, ge=1)
    eval_every: int = Field(4, ge=1)
    patience: int = Field(8, ge=1)
    max_len: int = Field(50, ge=1)
    hidden: int = Field(64, ge=1)
    blocks: int = Field(2, ge=1)
    heads: int = Field(1, ge=1)
    dropout: float = Field(0.5, ge=0, lt=1)


class RatingMFConfig(TrainingConfig):
    dim: int = Field(32, ge=1)
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(1024, ge=1)
    lr: float = Field(5e-3, gt=0)
    reg: float = Field(0.05, ge=0)
    eval_every: int = Field(1, ge=1)


class MeanConfig(_Config):
    pass


def parse_config(cls: type[_Config], values: dict[str, Any] | None, *, where: str = "") -> _Config:
    """Build a config; a `ConfigError` naming each bad key otherwise."""
    return validate(cls, values, f"baseline {where} options" if where else "baseline options")


def load_defaults() -> dict[str, dict[str, Any]]:
    """The per-baseline defaults from `defaults.yaml` (name -> values)."""
    import yaml

    return yaml.safe_load(DEFAULTS_FILE.read_text())
