"""rating: the history with its ratings + one item -> the user's rating of it (`"1"`..`"5"`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recalign.samples.buffer import SampleBuffer
from recalign.samples.tasks.base import (
    EvalQuery,
    EvalRow,
    TaskContext,
    TaskSpec,
    UserData,
    draw_templates,
    format_rating,
    train_positions,
    window,
)
from recalign.samples.templates import Template

NAME = "rating"


def rated_history(ctx: TaskContext, items: Sequence[int], ratings: Sequence[float]) -> str:
    reprs = ctx.reprs
    return ctx.separator.join(
        [f"{reprs[i]} (rated {format_rating(r)})" for i, r in zip(items, ratings, strict=True)]
    )


def train(user: UserData, rng: np.random.Generator, ctx: TaskContext, out: SampleBuffer) -> None:
    items, ratings = user.train, user.train_ratings
    if ratings is None:
        return
    positions = train_positions(rng, len(items), ctx)
    templates = draw_templates(rng, len(positions), ctx)
    reprs, size = ctx.reprs, ctx.max_history
    for t, template in zip(positions, templates, strict=True):
        history = window(items, t, size)
        item = items[t]
        values = {
            "history": rated_history(ctx, history, window(ratings, t, size)),
            "item": reprs[item],
            "target": format_rating(ratings[t]),
        }
        inp, tgt = template.render(values)
        # The target is a rating, not an item: target_item stays null.
        out.rows.append((NAME, template.id, user.user_id, inp, tgt, None, None, [*history, item]))


def evaluate(
    query: EvalQuery, rng: np.random.Generator, ctx: TaskContext, template: Template | None
) -> EvalRow:
    if query.history_ratings is None or query.target_rating is None:
        raise ValueError("the rating task needs ratings")
    n = len(query.history)
    history = list(window(query.history, n, ctx.max_history))
    ratings = window(query.history_ratings, n, ctx.max_history)
    if template is None:
        template = draw_templates(rng, 1, ctx)[0]
    values = {
        "history": rated_history(ctx, history, ratings),
        "item": ctx.reprs[query.target],
        "target": format_rating(query.target_rating),
    }
    inp, tgt = template.render(values)
    return EvalRow(template.id, inp, tgt, None, None, history)


SPEC = TaskSpec(
    name=NAME,
    kind="rec",
    placeholders=frozenset({"history", "item", "target"}),
    train=train,
    evaluate=evaluate,
    needs_ratings=True,
)
