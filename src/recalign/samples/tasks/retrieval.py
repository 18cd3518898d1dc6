"""retrieval: the history -> the next item."""

from __future__ import annotations

from recalign.samples.batch import Batch, Cases, ranges
from recalign.samples.tasks.base import (
    TaskContext,
    TaskRows,
    TaskSpec,
    item_texts,
    next_item_cases,
)
from recalign.samples.templates import Template

NAME = "retrieval"


def build(
    batch: Batch, cases: Cases, ctx: TaskContext, template: Template | None = None
) -> TaskRows:
    case = next_item_cases(batch, cases, ctx)
    items = batch.items[case.target]
    values = {"target": item_texts(ctx, items)}
    shown = ranges(batch.items, case.first, case.target + 1)  # the history and the target
    return case.rows(NAME, ctx, template, values, shown, target_item=items)


SPEC = TaskSpec(
    name=NAME,
    kind="rec",
    placeholders=frozenset({"history", "target"}),
    build=build,
)
