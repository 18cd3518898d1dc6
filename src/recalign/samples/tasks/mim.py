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
    widths = [min(t + 1, size) for t in positions]
    keys = rng.random(sum(widths)).tolist()  # one draw per user; sorted keys pick the masks
    templates = draw_templates(rng, len(positions), ctx)
    reprs, sep, mask = ctx.reprs, ctx.separator, opts.mask_token
    prob, cap = opts.mask_prob, opts.max_masked
    start = 0
    for t, width, template in zip(positions, widths, templates, strict=True):
        count = min(max(1, round(prob * width)), cap, width - 1)
        row = keys[start : start + width]
        start += width
        if count == 1:  # the common case (short windows): one uniform slot
            masked = [int(row[0] * width)]
        else:  # the `count` smallest keys: a uniform random subset of the slots
            masked = sorted(sorted(range(width), key=row.__getitem__)[:count])
        win = items[t + 1 - width : t + 1]
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
        out.rows.append((NAME, template.id, user.user_id, inp, tgt, target_item, None, win))


SPEC = TaskSpec(
    name=NAME,
    kind="aux",
    placeholders=frozenset({"history", "mask", "target"}),
    train=train,
    options=MimOptions,
)
