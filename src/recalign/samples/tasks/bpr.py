"""bpr (Bayesian personalized ranking as language): a history prefix + the true next item and
an item the user never touched, in random order -> the preferred (true) item."""

from __future__ import annotations

import numpy as np

from recalign.samples.buffer import SampleBuffer
from recalign.samples.tasks.base import (
    TaskContext,
    TaskSpec,
    UserData,
    draw_templates,
    train_positions,
)

NAME = "bpr"


def train(user: UserData, rng: np.random.Generator, ctx: TaskContext, out: SampleBuffer) -> None:
    items = user.train
    positions = train_positions(rng, len(items), ctx)
    if not positions:
        return
    negatives = ctx.sampler.one_each(rng, user.seen, len(positions))
    swaps = (rng.random(len(positions)) < 0.5).tolist()
    templates = draw_templates(rng, len(positions), ctx)
    reprs = ctx.reprs
    for t, negative, swap, template in zip(positions, negatives, swaps, templates, strict=True):
        history, history_text = user.history(t, ctx)
        positive = items[t]
        first, second = (negative, positive) if swap else (positive, negative)
        values = {
            "history": history_text,
            "item_a": reprs[first],
            "item_b": reprs[second],
            "target": reprs[positive],
        }
        inp, tgt = template.render(values)
        out.rows.append(
            (NAME, template.id, user.user_id, inp, tgt, positive, None, [*history, first, second])
        )


SPEC = TaskSpec(
    name=NAME,
    kind="aux",
    placeholders=frozenset({"history", "item_a", "item_b", "target"}),
    train=train,
)
