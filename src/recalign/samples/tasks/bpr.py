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
    item_texts,
    next_item_cases,
)
from recalign.samples.templates import Template

NAME = "bpr"


def build(
    batch: Batch, cases: Cases, ctx: TaskContext, template: Template | None = None
) -> TaskRows:
    case = next_item_cases(batch, cases, ctx)
    positive = batch.items[case.target]
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
    values = {
        "item_a": item_texts(ctx, pair[:, 0]),
        "item_b": item_texts(ctx, pair[:, 1]),
        "target": item_texts(ctx, positive),
    }
    shown = concat_rows(ranges(batch.items, case.first, case.target), matrix_rows(pair))
    return case.rows(NAME, ctx, template, values, shown, target_item=positive)


SPEC = TaskSpec(
    name=NAME,
    kind="aux",
    placeholders=frozenset({"history", "item_a", "item_b", "target"}),
    build=build,
)
