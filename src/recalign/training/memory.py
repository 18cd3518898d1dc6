"""A rough training-memory estimate, to refuse a run that would clearly not fit.

Transformer activations per layer and token are ~34*d bytes plus ~5*heads*seq bytes for
the attention scores at 16-bit (Korthikanti et al. 2022, "Reducing Activation
Recomputation"); fp32 doubles it. The logits (batch x answer length x vocab) and the
parameters with AdamW state (16 bytes each for full fine-tuning) come on top, and so
does what the data path holds: per sample, its grouping length and its place in the
sampler's order (int32 each, ~8 bytes transient more while lengths are measured), plus
fixed-size streaming buffers. It is an estimate: it catches a batch that is 10x too
large, not one that is 10% too large.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from recalign.errors import ConfigError

logger = logging.getLogger(__name__)

GIB = 1 << 30
DATA_BYTES_PER_SAMPLE = 16  # int32 length + int32 sampler index + transients of the length pass
# Parquet record batches being read, the Arrow batch being written, and the Python ints
# of the rows being tokenised (training.stream READ_ROWS / ENCODE_ROWS).
STREAM_BUFFER_BYTES = 96 << 20


@dataclass(frozen=True)
class ModelDims:
    hidden: int
    layers: int  # encoder + decoder layers for seq2seq
    heads: int
    vocab: int
    params: int
    trainable: int


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak training memory by what holds it, in bytes."""

    activations: int
    logits: int
    weights: int  # parameters, gradients and AdamW moments of the trainable ones
    data: int

    @property
    def total(self) -> int:
        return self.activations + self.logits + self.weights + self.data

    def describe(self) -> str:
        parts = ("activations", "logits", "weights", "data")
        return ", ".join(f"{p} {getattr(self, p) / GIB:.2f}" for p in parts) + " GiB"


def model_dims(model: Any) -> ModelDims:
    config = model.config
    hidden = getattr(config, "d_model", None) or getattr(config, "hidden_size", 0)
    layers = getattr(config, "num_layers", None) or getattr(config, "num_hidden_layers", 0)
    layers += getattr(config, "num_decoder_layers", 0) or 0
    heads = getattr(config, "num_heads", None) or getattr(config, "num_attention_heads", 1)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelDims(hidden, layers, heads, config.vocab_size, params, trainable)


def estimate(
    dims: ModelDims,
    *,
    batch_size: int,
    seq_len: int,
    target_len: int,
    bytes_per_value: int = 4,
    checkpointing: bool = False,
    samples: int = 0,
) -> MemoryEstimate:
    """Peak training memory for one micro-batch, with `samples` train + eval samples."""
    scale = bytes_per_value / 2  # the per-token constants are for 16-bit activations
    per_layer = batch_size * seq_len * (34 * dims.hidden + 5 * dims.heads * seq_len) * scale
    layers = 1 if checkpointing else dims.layers
    return MemoryEstimate(
        activations=int(per_layer * layers),
        logits=3 * batch_size * target_len * dims.vocab * 4,  # fp32 logits, softmax, grad
        weights=dims.params * bytes_per_value + dims.trainable * 12,  # grads + AdamW moments
        data=samples * DATA_BYTES_PER_SAMPLE + (STREAM_BUFFER_BYTES if samples else 0),
    )


def estimate_bytes(dims: ModelDims, **kwargs: Any) -> int:
    """`estimate(...)` as one number of bytes."""
    return estimate(dims, **kwargs).total


def device_memory_bytes(device: str) -> int:
    """Total memory of the training device (GPU memory, or the machine's RAM on CPU)."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def free_memory_bytes(device: str) -> int | None:
    """Memory free for a new process now (Linux `MemAvailable`); None where unknown."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _advice(need: MemoryEstimate, batch_size: int, share: float) -> str:
    if need.data > need.total / 2:
        return "use --max-train-samples (a seeded subset) or fewer tasks"
    fit = max(1, int(batch_size * share))
    return (
        f"use batch_size {fit} or less with grad_accum {-(-batch_size // fit)} (the same "
        "effective batch), lower max_source_length, enable gradient_checkpointing or LoRA"
    )


def check_memory(
    dims: ModelDims,
    *,
    batch_size: int,
    seq_len: int,
    target_len: int,
    bytes_per_value: int,
    checkpointing: bool,
    available: int,
    fraction: float | None,
    samples: int = 0,
    free: int | None = None,
) -> int:
    """Raise a `ConfigError` with advice when the estimate exceeds `fraction` of memory.

    When it fits the device but not the memory `free` now (other processes hold the
    rest), log a warning with the same advice instead.
    """
    need = estimate(
        dims,
        batch_size=batch_size,
        seq_len=seq_len,
        target_len=target_len,
        bytes_per_value=bytes_per_value,
        checkpointing=checkpointing,
        samples=samples,
    )
    if fraction is None or available <= 0:
        return need.total
    what = (
        f"batch_size {batch_size} at up to {seq_len} tokens needs about {need.total / GIB:.1f} GiB"
    )
    if need.total > fraction * available:
        raise ConfigError(
            f"{what} ({need.describe()}) but the device has {available / GIB:.1f} GiB: this "
            f"would run out of memory. {_advice(need, batch_size, fraction * available / need.total)}"
            ", or set memory_fraction: null to skip this check."
        )
    if free is not None and need.total > free:
        logger.warning(
            "%s (%s) but only %.1f GiB is free now (other processes hold the rest): the run "
            "may be killed. To fit, %s.",
            what,
            need.describe(),
            free / GIB,
            _advice(need, batch_size, free / need.total),
        )
    return need.total
