"""ranking: the history + K shuffled candidates (the positive and K-1 negatives) -> the positive."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from recalign.samples.batch import Batch, Cases, concat_rows, matrix_rows, ranges
from recalign.samples.draws import Purpose, below
from recalign.samples.tasks.base import (
    TaskContext,
    TaskOptions,
    TaskRows,
    TaskSpec,
    item_lists,
    item_texts,
    next_item_cases,
)
from recalign.samples.templates import Template

NAME = "ranking"


class RankingOptions(TaskOptions):
    num_candidates: int = Field(default=20, ge=2, description="K: the positive + K-1 negatives")


def candidates(batch: Batch, cases: Cases, ctx: TaskContext, positives: np.ndarray) -> np.ndarray:
    """`(cases, K)`: each positive at a uniform random slot among K-1 distinct negatives.

    The negatives are exchangeable draws, so this is a uniform shuffle of the K items.
    """
    k = ctx.options.num_candidates
    ctx.sampler.check(batch.distinct_counts()[cases.rows], k - 1)
    negatives = ctx.sampler.sample(
        cases.keys, cases.t, lambda i, items: batch.seen(cases.rows[i], items), k - 1
    )
    slot = below(cases.keys, Purpose.SLOT, cases.t, k)[:, None]
    column = np.arange(k)[None, :]
    shifted = np.take_along_axis(negatives, np.clip(column - (column > slot), 0, k - 2), axis=1)
    return np.where(column == slot, positives[:, None], shifted)


def build(
    batch: Batch, cases: Cases, ctx: TaskContext, template: Template | None = None
) -> TaskRows:
    case = next_item_cases(batch, cases, ctx)
    items = batch.items[case.target]
    matrix = candidates(batch, cases, ctx, items)
    values = {
        "candidates": item_lists(ctx, matrix),
        "num_candidates": ctx.options.num_candidates,
        "target": item_texts(ctx, items),
    }
    listed = matrix_rows(matrix)
    shown = concat_rows(ranges(batch.items, case.first, case.target), listed)
    return case.rows(NAME, ctx, template, values, shown, target_item=items, candidates=listed)


SPEC = TaskSpec(
    name=NAME,
    kind="rec",
    placeholders=frozenset({"history", "candidates", "num_candidates", "target"}),
    build=build,
    options=RankingOptions,
)
