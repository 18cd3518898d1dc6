"""A rough activation-memory estimate, to refuse a run that would clearly not fit.

Transformer activations per layer and token are ~34*d bytes plus ~5*heads*seq bytes for
the attention scores at 16-bit (Korthikanti et al. 2022, "Reducing Activation
Recomputation"); fp32 doubles it. The logits (batch x answer length x vocab) and the
parameters with AdamW state (16 bytes each for full fine-tuning) come on top. It is an
estimate: it catches a batch that is 10x too large, not one that is 10% too large.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from recalign.errors import ConfigError


@dataclass(frozen=True)
class ModelDims:
    hidden: int
    layers: int  # encoder + decoder layers for seq2seq
    heads: int
    vocab: int
    params: int
    trainable: int


def model_dims(model: Any) -> ModelDims:
    config = model.config
    hidden = getattr(config, "d_model", None) or getattr(config, "hidden_size", 0)
    layers = getattr(config, "num_layers", None) or getattr(config, "num_hidden_layers", 0)
    layers += getattr(config, "num_decoder_layers", 0) or 0
    heads = getattr(config, "num_heads", None) or getattr(config, "num_attention_heads", 1)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelDims(hidden, layers, heads, config.vocab_size, params, trainable)


def estimate_bytes(
    dims: ModelDims,
    *,
    batch_size: int,
    seq_len: int,
    target_len: int,
    bytes_per_value: int = 4,
    checkpointing: bool = False,
) -> int:
    """Peak training memory estimate in bytes for one micro-batch."""
    scale = bytes_per_value / 2  # the per-token constants are for 16-bit activations
    per_layer = batch_size * seq_len * (34 * dims.hidden + 5 * dims.heads * seq_len) * scale
    layers = 1 if checkpointing else dims.layers
    activations = per_layer * layers
    logits = 3 * batch_size * target_len * dims.vocab * 4  # fp32 logits, softmax, grad
    weights = dims.params * bytes_per_value + dims.trainable * 12  # grads + AdamW moments
    return int(activations + logits + weights)


def device_memory_bytes(device: str) -> int:
    """Total memory of the training device (GPU memory, or the machine's RAM on CPU)."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


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
) -> int:
    """Raise a `ConfigError` with advice when the estimate exceeds `fraction` of memory."""
    need = estimate_bytes(
        dims,
        batch_size=batch_size,
        seq_len=seq_len,
        target_len=target_len,
        bytes_per_value=bytes_per_value,
        checkpointing=checkpointing,
    )
    if fraction is None or available <= 0 or need <= fraction * available:
        return need
    gib = 1 << 30
    fit = max(1, int(batch_size * fraction * available / need))
    raise ConfigError(
        f"batch_size {batch_size} at up to {seq_len} tokens needs about {need / gib:.1f} GiB "
        f"but the device has {available / gib:.1f} GiB: this would run out of memory. Use "
        f"batch_size {fit} or less with grad_accum {-(-batch_size // fit)} (the same "
        "effective batch), lower max_source_length, enable gradient_checkpointing or LoRA, "
        "or set memory_fraction: null to skip this check."
    )
