"""mim (masked item modeling): a train window with items replaced by a mask -> those items."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from recalign.samples.batch import Batch, Cases, ranges
from recalign.samples.draws import STRIDE, Purpose, below, uniform
from recalign.samples.tasks.base import (
    NULL_ITEM,
    TaskContext,
    TaskOptions,
    TaskRows,
    TaskSpec,
    history_bounds,
    render_cases,
)
from recalign.samples.templates import Template

NAME = "mim"


class MimOptions(TaskOptions):
    mask_prob: float = Field(
        default=0.2, gt=0.0, le=1.0, description="share of window items masked"
    )
    max_masked: int = Field(default=3, ge=1, description="at most this many masked items")
    mask_token: str = Field(default="[MASK]", min_length=1)


def masked_slots(
    cases: Cases, first: np.ndarray, width: np.ndarray, count: np.ndarray
) -> np.ndarray:
    """Flat item indices of the masked slots, per case ascending (`count[i]` of case i).

    One masked slot (most windows) is a uniform draw. For more, each slot of the window
    gets a uniform key and the `count` smallest keys are a uniform random subset.
    """
    out = np.empty(int(count.sum()), dtype=np.int64)
    starts = np.cumsum(count) - count
    one = count == 1
    picked = below(cases.keys[one], Purpose.MASK, cases.t[one] * STRIDE, width[one])
    out[starts[one]] = first[one] + picked
    many = np.flatnonzero(~one)
    if len(many):
        sizes = width[many]
        case = np.repeat(many, sizes)
        case_start = np.repeat(np.cumsum(sizes) - sizes, sizes)
        slot = np.arange(len(case)) - case_start
        keys = uniform(cases.keys[case], Purpose.MASK, cases.t[case] * STRIDE + slot)
        order = np.lexsort((keys, case))
        rank = np.empty(len(case), dtype=np.int64)
        rank[order] = np.arange(len(case)) - case_start
        masked = rank < count[case]
        # Per case ascending: the masked slots in slot order fill its `count` places.
        out[np.repeat(starts[many], count[many]) + _within(count[many])] = (first[case] + slot)[
            masked
        ]
    return out


def _within(sizes: np.ndarray) -> np.ndarray:
    """0..size-1 for each size, concatenated."""
    return np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def build(
    batch: Batch, cases: Cases, ctx: TaskContext, template: Template | None = None
) -> TaskRows:
    opts: MimOptions = ctx.options
    # The window ends at (and includes) position t; at least one of its items stays.
    target = cases.target_flat(batch)
    first = cases.window_start(batch, ctx.max_history, inclusive=True)
    width = target + 1 - first
    count = np.minimum(np.maximum(1, np.round(opts.mask_prob * width)), opts.max_masked)
    count = np.minimum(count, width - 1).astype(np.int64)
    if (count < 1).any():  # a one-item window (max_history 1) has nothing to mask
        keep = count >= 1
        cases, target, first, width, count = (
            cases.select(keep),
            target[keep],
            first[keep],
            width[keep],
            count[keep],
        )
    slots = masked_slots(cases, first, width, count)
    masked = slots.tolist()
    joined = ctx.joined_reprs(batch)
    # Droppable: the window's items before its first masked one (the target needs the rest).
    first_masked = slots[np.cumsum(count) - count]
    texts, start, end = joined.texts, joined.start.tolist(), joined.end.tolist()
    reprs, sep, items = ctx.repr_bytes, ctx.sep, batch.items.tolist()
    mask = opts.mask_token.encode("utf-8")
    shown_texts: list[bytes] = []
    hidden_texts: list[bytes] = []
    k = 0
    for row, a, last, c in zip(
        cases.rows.tolist(), first.tolist(), target.tolist(), count.tolist(), strict=True
    ):
        text = texts[row]
        if c == 1:  # the common case (windows under 8 items)
            m = masked[k]
            k += 1
            shown_texts.append(text[start[a] : start[m]] + mask + text[end[m] : end[last]])
            hidden_texts.append(reprs[items[m]])
            continue
        cursor, pieces = start[a], []
        slots = masked[k : k + c]
        k += c
        for m in slots:
            pieces.append(text[cursor : start[m]])
            pieces.append(mask)
            cursor = end[m]
        pieces.append(text[cursor : end[last]])
        shown_texts.append(b"".join(pieces))
        hidden_texts.append(sep.join([reprs[items[m]] for m in slots]))
    values = {"history": shown_texts, "mask": opts.mask_token, "target": hidden_texts}
    rendered = render_cases(cases, ctx, template, values)
    firsts = np.cumsum(count) - count
    single = batch.items[np.asarray(masked, dtype=np.int64)[firsts]] if len(cases) else firsts
    target_item = np.where(count == 1, single, NULL_ITEM)
    shown = ranges(batch.items, first, target + 1)
    starts = joined.start[first_masked]
    bounds = history_bounds(joined, first, first_masked, starts, rendered.offset)
    return rendered.rows(NAME, cases, shown, bounds, target_item=target_item)


SPEC = TaskSpec(
    name=NAME,
    kind="aux",
    placeholders=frozenset({"history", "mask", "target"}),
    build=build,
    options=MimOptions,
)
