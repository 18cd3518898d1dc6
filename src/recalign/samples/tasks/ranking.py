"""ranking: the history + K shuffled candidates (the positive and K-1 negatives) -> the positive."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from recalign.samples.buffer import SampleBuffer
from recalign.samples.tasks.base import (
    EvalQuery,
    EvalRow,
    TaskContext,
    TaskOptions,
    TaskSpec,
    UserData,
    draw_templates,
    randint_list,
    train_positions,
    window,
)
from recalign.samples.templates import Template

NAME = "ranking"


class RankingOptions(TaskOptions):
    num_candidates: int = Field(default=20, ge=2, description="K: the positive + K-1 negatives")


def _candidates(
    rng: np.random.Generator, ctx: TaskContext, positives: list[int], seen: set[int]
) -> list[list[int]]:
    """Insert each positive at a uniform random slot among its i.i.d. negatives.

    The negatives are exchangeable draws, so this is a uniform shuffle of the K items
    without a per-row permutation.
    """
    k = ctx.options.num_candidates
    rows = ctx.sampler.distinct_rows(rng, seen, len(positives), k - 1)
    slots = randint_list(rng, k, len(positives))
    for row, slot, positive in zip(rows, slots, positives, strict=True):
        row.insert(slot, positive)
    return rows


def train(user: UserData, rng: np.random.Generator, ctx: TaskContext, out: SampleBuffer) -> None:
    items = user.train
    positions = train_positions(rng, len(items), ctx)
    if not positions:
        return
    rows = _candidates(rng, ctx, [items[t] for t in positions], user.seen)
    templates = draw_templates(rng, len(positions), ctx)
    reprs, k = ctx.reprs, ctx.options.num_candidates
    for t, candidates, template in zip(positions, rows, templates, strict=True):
        history, history_text = user.history(t, ctx)
        target = items[t]
        values = {
            "history": history_text,
            "candidates": ctx.join(candidates),
            "num_candidates": k,
            "target": reprs[target],
        }
        inp, tgt = template.render(values)
        out.rows.append(
            (NAME, template.id, user.user_id, inp, tgt, target, candidates, [*history, *candidates])
        )


def evaluate(
    query: EvalQuery, rng: np.random.Generator, ctx: TaskContext, template: Template | None
) -> EvalRow:
    history = list(window(query.history, len(query.history), ctx.max_history))
    candidates = _candidates(rng, ctx, [query.target], query.seen)[0]
    if template is None:
        template = draw_templates(rng, 1, ctx)[0]
    values = {
        "history": ctx.join(history),
        "candidates": ctx.join(candidates),
        "num_candidates": ctx.options.num_candidates,
        "target": ctx.reprs[query.target],
    }
    inp, tgt = template.render(values)
    return EvalRow(template.id, inp, tgt, query.target, candidates, history)


SPEC = TaskSpec(
    name=NAME,
    kind="rec",
    placeholders=frozenset({"history", "candidates", "num_candidates", "target"}),
    train=train,
    evaluate=evaluate,
    options=RankingOptions,
)
