"""Fine-tuning seq2seq and causal LMs on generated samples (HF `Trainer` + peft)."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy: `import recalign.training` must not pull torch in.
    if name == "train":
        from recalign.training.run import train

        return train
    if name == "TrainConfig":
        from recalign.training.config import TrainConfig

        return TrainConfig
    raise AttributeError(name)
