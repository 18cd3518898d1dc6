"""retrieval: the history -> the next item."""

from __future__ import annotations

from recalign.samples.batch import Batch, Cases, ranges
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

NAME = "retrieval"


def build(
    batch: Batch, cases: Cases, ctx: TaskContext, template: Template | None = None
) -> TaskRows:
    target, first, history, joined = next_item_cases(batch, cases, ctx)
    items = batch.items[target]
    templates, choice = choose_templates(cases, ctx, template)
    values = {
        "history": history,
        "target": item_texts(ctx, items),
        **ctx.words,
    }
    rendered = render(templates, choice, values, locate="history")
    shown = ranges(batch.items, first, target + 1)  # the history and the target
    bounds = whole_history(joined, first, target, rendered.offset)
    return rendered.rows(NAME, cases, shown, bounds, target_item=items)


SPEC = TaskSpec(
    name=NAME,
    kind="rec",
    placeholders=frozenset({"history", "target"}),
    build=build,
)
