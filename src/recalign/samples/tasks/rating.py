"""rating: the history with its ratings + one item -> the user's rating of it (`"1"`..`"5"`)."""

from __future__ import annotations

import numpy as np

from recalign.samples.batch import Batch, Cases, ranges
from recalign.samples.tasks.base import (
    TaskContext,
    TaskRows,
    TaskSpec,
    format_rating,
    item_texts,
    next_item_cases,
)
from recalign.samples.templates import Template

NAME = "rating"
RATED = "{} (rated {})"  # how a history item shows its rating (serving formats with it)


def _rating_texts(values: np.ndarray) -> list[bytes]:
    unique, inverse = np.unique(values, return_inverse=True)
    texts = [format_rating(v).encode("utf-8") for v in unique.tolist()]
    return [texts[i] for i in inverse.tolist()]


def build(
    batch: Batch, cases: Cases, ctx: TaskContext, template: Template | None = None
) -> TaskRows:
    if batch.ratings is None:
        raise ValueError("the rating task needs ratings")
    reprs, pattern = ctx.repr_bytes, RATED.encode("utf-8").replace(b"{}", b"%s")
    joined = batch.joined(
        f"rated:{id(ctx.reprs)}",
        lambda: [
            pattern % (reprs[i], r)
            for i, r in zip(batch.items.tolist(), _rating_texts(batch.ratings), strict=True)
        ],
        ctx.sep,
    )
    case = next_item_cases(batch, cases, ctx, joined)
    values = {
        "item": item_texts(ctx, batch.items[case.target]),
        "target": _rating_texts(batch.ratings[case.target]),
    }
    shown = ranges(batch.items, case.first, case.target + 1)
    return case.rows(NAME, ctx, template, values, shown)  # the target is a rating, not an item


SPEC = TaskSpec(
    name=NAME,
    kind="rec",
    placeholders=frozenset({"history", "item", "target"}),
    build=build,
    needs_ratings=True,
)
