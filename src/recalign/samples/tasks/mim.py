"""mim (masked item modeling): a train window with items replaced by a mask -> those items."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from recalign.samples.buffer import SampleBuffer
from recalign.samples.tasks.base import (
    TaskContext,
    TaskOptions,
    TaskSpec,
    UserData,
    draw_templates,
    train_positions,
    window,
)

NAME = "mim"


class MimOptions(TaskOptions):
    mask_prob: float = Field(
        default=0.2, gt=0.0, le=1.0, description="share of window items masked"
    )
    max_masked: int = Field(default=3, ge=1, description="at most this many masked items")
    mask_token: str = Field(default="[MASK]", min_length=1)


def train(user: UserData, rng: np.random.Generator, ctx: TaskContext, out: SampleBuffer) -> None:
    items = user.train
    positions = train_positions(rng, len(items), ctx)
    if not positions:
        return
    opts: MimOptions = ctx.options
    size = ctx.max_history
    # The window ends at (and includes) position t, so it has at least two items.
    widths = np.array([min(t + 1, size) for t in positions])
    counts = np.clip(np.rint(opts.mask_prob * widths), 1, np.minimum(opts.max_masked, widths - 1))
    # Random keys, pushed past every real key outside each window: the `count` smallest
    # keys of a row are a uniform random subset of its window.
    keys = rng.random((len(positions), int(widths.max())))
    keys[np.arange(keys.shape[1])[None, :] >= widths[:, None]] = 2.0
    order = np.argsort(keys, axis=1).tolist()
    templates = draw_templates(rng, len(positions), ctx)
    reprs, sep, mask = ctx.reprs, ctx.separator, opts.mask_token
    for t, count, ranks, template in zip(
        positions, counts.astype(int).tolist(), order, templates, strict=True
    ):
        win = window(items, t + 1, size)
        masked = sorted(ranks[:count])
        shown = [reprs[i] for i in win]
        for j in masked:
            shown[j] = mask
        hidden = [win[j] for j in masked]
        values = {
            "history": sep.join(shown),
            "mask": mask,
            "target": sep.join([reprs[i] for i in hidden]),
        }
        inp, tgt = template.render(values)
        target_item = hidden[0] if len(hidden) == 1 else None
        out.rows.append((NAME, template.id, user.user_id, inp, tgt, target_item, None, list(win)))


SPEC = TaskSpec(
    name=NAME,
    kind="aux",
    placeholders=frozenset({"history", "mask", "target"}),
    train=train,
    options=MimOptions,
)
