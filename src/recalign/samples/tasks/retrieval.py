"""retrieval: the history -> the next item."""

from __future__ import annotations

import numpy as np

from recalign.samples.buffer import SampleBuffer
from recalign.samples.tasks.base import (
    EvalQuery,
    EvalRow,
    TaskContext,
    TaskSpec,
    UserData,
    draw_templates,
    train_positions,
    window,
)
from recalign.samples.templates import Template

NAME = "retrieval"


def train(user: UserData, rng: np.random.Generator, ctx: TaskContext, out: SampleBuffer) -> None:
    items = user.train
    positions = train_positions(rng, len(items), ctx)
    templates = draw_templates(rng, len(positions), ctx)
    reprs = ctx.reprs
    for t, template in zip(positions, templates, strict=True):
        history, history_text = user.history(t, ctx)
        target = items[t]
        values = {"history": history_text, "target": reprs[target]}
        inp, tgt = template.render(values)
        out.rows.append(
            (NAME, template.id, user.user_id, inp, tgt, target, None, [*history, target])
        )


def evaluate(
    query: EvalQuery, rng: np.random.Generator, ctx: TaskContext, template: Template | None
) -> EvalRow:
    history = list(window(query.history, len(query.history), ctx.max_history))
    if template is None:
        template = draw_templates(rng, 1, ctx)[0]
    values = {"history": ctx.join(history), "target": ctx.reprs[query.target]}
    inp, tgt = template.render(values)
    return EvalRow(template.id, inp, tgt, query.target, None, history)


SPEC = TaskSpec(
    name=NAME,
    kind="rec",
    placeholders=frozenset({"history", "target"}),
    train=train,
    evaluate=evaluate,
)
