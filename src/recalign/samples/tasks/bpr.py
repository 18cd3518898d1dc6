"""bpr (Bayesian personalized ranking as language): a history prefix + the true next item and
an item the user never touched, in random order -> the preferred (true) item."""

from __future__ import annotations

import numpy as np

from recalign.samples.batch import Batch, Cases, concat_rows, matrix_rows, ranges
from recalign.samples.draws import Purpose, uniform
from recalign.samples.tasks.base import (
    TaskContext,
    TaskRows,
    TaskSpec,
    choose_templates,
    item_texts,
    next_item_cases,
    render,
    whole_history,
)
from recalign.samples.templates import Template

NAME = "bpr"


def build(
    batch: Batch, cases: Cases, ctx: TaskContext, template: Template | None = None
) -> TaskRows:
    target, first, history, joined = next_item_cases(batch, cases, ctx)
    positive = batch.items[target]
    ctx.sampler.check(batch.distinct_counts()[cases.rows], 1)
    negative = ctx.sampler.sample(
        cases.keys,
        cases.t,
        lambda i, items: batch.seen(cases.rows[i], items),
        1,
        distinct=False,
    )[:, 0]
    swap = uniform(cases.keys, Purpose.SWAP, cases.t) < 0.5
    pair = np.where(
        swap[:, None], np.stack([negative, positive], 1), np.stack([positive, negative], 1)
    )
    templates, choice = choose_templates(cases, ctx, template)
    values = {
        "history": history,
        "item_a": item_texts(ctx, pair[:, 0]),
        "item_b": item_texts(ctx, pair[:, 1]),
        "target": item_texts(ctx, positive),
        **ctx.words,
    }
    rendered = render(templates, choice, values, locate="history")
    shown = concat_rows(ranges(batch.items, first, target), matrix_rows(pair))
    bounds = whole_history(joined, first, target, rendered.offset)
    return rendered.rows(NAME, cases, shown, bounds, target_item=positive)


SPEC = TaskSpec(
    name=NAME,
    kind="aux",
    placeholders=frozenset({"history", "item_a", "item_b", "target"}),
    build=build,
)
