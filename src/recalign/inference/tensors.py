"""Small tensor helpers the decoder sessions, the scorer and the reference decoder share.

torch is imported inside each function: importing `recalign.inference` stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def pad_rows(
    rows: Sequence[Sequence[int]], pad_id: int, *, left: bool, device: Any = None
) -> tuple[Any, Any]:
    """Token rows as one (ids, attention mask) pair of long tensors, padded left or right
    (built on the CPU, then moved to `device` when one is given)."""
    import torch

    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if not row:
            continue
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.as_tensor(list(row), dtype=torch.long)
        mask[i, span] = 1
    if device is not None:
        ids, mask = ids.to(device), mask.to(device)
    return ids, mask


def upcast(logits: Any) -> Any:
    """Half-precision logits to float32 (log-probabilities of long answers need it)."""
    import torch

    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def softmax(scores: Any) -> Any:
    """Softmax in at least fp32 (half-precision logits lose the tail of the distribution)."""
    import torch

    if scores.dtype in (torch.float16, torch.bfloat16):
        return torch.softmax(scores.float(), dim=-1).to(scores.dtype)
    return torch.softmax(scores, dim=-1)


def logsumexp(logits: Any) -> Any:
    """`torch.logsumexp` over the last axis, without its denormal slow path.

    Logits far below the maximum make `exp` produce denormals, which x86 CPUs handle
    ~10x slower (measured: 40-100 ms instead of 3-8 ms for 320 x 8k logits of a
    random-init T5). Clamping differences at -80 cannot change the result: each clamped
    term is below 2e-35 while the sum is at least 1, far under one ulp even in float64.
    """
    top = logits.amax(dim=-1, keepdim=True)
    return (logits - top).clamp_(min=-80.0).exp_().sum(dim=-1).log_() + top.squeeze(-1)


def model_device(model: Any) -> Any:
    """The device of a model's (first) parameters."""
    return next(model.parameters()).device
