"""mlm (masked language modeling on item text): the history's titles with ~15% of the words
masked -> the masked words.

seq2seq targets follow T5 span corruption: each run of masked words becomes one sentinel
`<extra_id_i>` in the input, and the target lists `<extra_id_i> words` per span, closed by
the next sentinel. Causal models get a plain mask word per span and the spans' words as the
target, separated like the history.

Words are whitespace-separated and shown single-spaced. The masks are drawn for a whole
block of samples in numpy (one draw per word); each sample's text is then its user's
joined titles with the spans' byte ranges cut out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from recalign.samples.batch import Batch, Cases, ranges
from recalign.samples.draws import STRIDE, Purpose, below, uniform
from recalign.samples.tasks.base import (
    TaskContext,
    TaskOptions,
    TaskRows,
    TaskSpec,
    history_bounds,
    render_cases,
)
from recalign.samples.templates import Template

NAME = "mlm"
MAX_SENTINELS = 100  # T5 vocabularies have <extra_id_0> .. <extra_id_99>
SENTINELS = [f"<extra_id_{i}>".encode() for i in range(MAX_SENTINELS)]


class MlmOptions(TaskOptions):
    mask_prob: float = Field(default=0.15, gt=0.0, lt=1.0, description="share of words masked")
    max_items: int = Field(default=5, ge=1, description="titles in the text (the most recent)")
    mask_word: str = Field(default="[MASK]", min_length=1, description="causal models' mask")


class Words:
    """Per item id: its single-spaced text and each word's byte range in it."""

    def __init__(self, texts: Sequence[str]) -> None:
        split = [text.split() for text in texts]
        self.texts = [" ".join(words).encode("utf-8") for words in split]
        sizes = [len(w.encode("utf-8")) + 1 for words in split for w in words]
        counts = np.fromiter(map(len, split), dtype=np.int64, count=len(split))
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        ends = np.cumsum(np.asarray(sizes, dtype=np.int64))  # running, +1 space per word
        item_base = np.repeat(np.concatenate([[0], ends])[self.offsets[:-1]], counts)
        self.end = ends - 1 - item_base  # byte end of each word within its item's text
        self.start = self.end - (np.asarray(sizes, dtype=np.int64) - 1)
        self.counts = counts


def hidden_spans(
    case_start: np.ndarray, new_item: np.ndarray, masked: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """First and last word index of each masked span that gets a sentinel, in word order.

    A span is a run of masked words inside one item (`new_item` marks each item's first
    word; `case_start` is the index of each word's case's first word). A case has
    `MAX_SENTINELS - 1` spans at most (the last sentinel closes the target): words of
    later spans stay visible.
    """
    previous = np.concatenate([[False], masked[:-1]])
    begins = masked & (new_item | ~previous)
    running = np.cumsum(begins)
    before = np.where(case_start > 0, running[np.maximum(case_start - 1, 0)], 0)
    hidden = masked & (running - before <= MAX_SENTINELS - 1)
    following = np.concatenate([hidden[1:], [False]])
    following_new = np.concatenate([new_item[1:], [True]])
    first = np.flatnonzero(hidden & begins)
    last = np.flatnonzero(hidden & (~following | following_new))
    return first, last


def assemble(
    text: bytes,
    begin: int,
    stop: int,
    spans: Sequence[tuple[int, int]],
    family: str,
    mask: bytes,
    sep: bytes,
) -> tuple[bytes, bytes]:
    """`text[begin:stop]` with each (start, end) byte span replaced; and the target."""
    pieces: list[bytes] = []
    cursor = begin
    if family == "seq2seq":
        parts: list[bytes] = []
        for i, (start, end) in enumerate(spans):
            pieces += (text[cursor:start], SENTINELS[i])
            parts += (SENTINELS[i], text[start:end])
            cursor = end
        parts.append(SENTINELS[len(spans)])
        target = b" ".join(parts)
    else:
        for start, end in spans:
            pieces += (text[cursor:start], mask)
            cursor = end
        target = sep.join([text[start:end] for start, end in spans])
    pieces.append(text[cursor:stop])
    return b"".join(pieces), target


def build(
    batch: Batch, cases: Cases, ctx: TaskContext, template: Template | None = None
) -> TaskRows:
    opts: MlmOptions = ctx.options
    words: Words = ctx.cached("words", lambda: Words(ctx.texts))
    target = cases.target_flat(batch)
    first = cases.window_start(batch, opts.max_items, inclusive=True)
    slots = ranges(np.arange(len(batch.items)), first, target + 1)  # flat item per slot
    slot_case = np.repeat(np.arange(len(cases)), slots.lengths)
    slot_words = words.counts[batch.items[slots.values]]
    totals = np.bincount(slot_case, weights=slot_words, minlength=len(cases)).astype(np.int64)
    # Word level: each word's case, item slot and index within its item and its case.
    word_slot = np.repeat(np.arange(len(slot_case)), slot_words)
    slot_first_word = np.cumsum(slot_words) - slot_words
    in_item = np.arange(len(word_slot)) - slot_first_word[word_slot]
    case = slot_case[word_slot]
    case_first_word = np.cumsum(totals) - totals
    j = np.arange(len(case)) - case_first_word[case]
    masked = uniform(cases.keys[case], Purpose.MASK, cases.t[case] * STRIDE + j) < opts.mask_prob
    # At least one masked word per sample (when its titles have any).
    none = (np.bincount(case, weights=masked, minlength=len(cases)) == 0) & (totals > 0)
    pick = below(cases.keys[none], Purpose.FALLBACK, cases.t[none], totals[none])
    masked[case_first_word[none] + pick] = True
    span_first, span_last = hidden_spans(case_first_word[case], in_item == 0, masked)

    plain = words.texts
    joined = batch.joined(
        f"words:{id(words)}", lambda: [plain[i] for i in batch.items.tolist()], ctx.sep
    )
    item_flat = slots.values[word_slot]
    word_item = batch.items[item_flat]
    base = words.offsets[word_item] + in_item
    span_start = (joined.start[item_flat] + words.start[base])[span_first].tolist()
    span_end = (joined.start[item_flat] + words.end[base])[span_last].tolist()
    per_case_spans = np.bincount(case[span_first], minlength=len(cases))
    per_case = per_case_spans.tolist()
    # Droppable: the titles before the one holding the case's first masked span (spans
    # are in word order). A case without a span (blank titles) keeps its titles.
    has_span = per_case_spans > 0
    held = first.copy()
    held[has_span] = item_flat[span_first[(np.cumsum(per_case_spans) - per_case_spans)[has_span]]]
    texts, start, end = joined.texts, joined.start.tolist(), joined.end.tolist()
    mask, sep, family = opts.mask_word.encode("utf-8"), ctx.sep, ctx.family
    shown_texts: list[bytes] = []
    answers: list[bytes] = []
    k = 0
    for row, a, last, n in zip(
        cases.rows.tolist(), first.tolist(), target.tolist(), per_case, strict=True
    ):
        spans = list(zip(span_start[k : k + n], span_end[k : k + n], strict=True))
        k += n
        inp, tgt = assemble(texts[row], start[a], end[last], spans, family, mask, sep)
        shown_texts.append(inp)
        answers.append(tgt)
    # The masked titles are MLM's history: the oldest unmasked ones may be dropped.
    rendered = render_cases(cases, ctx, template, {"text": shown_texts, "target": answers}, "text")
    shown = ranges(batch.items, first, target + 1)
    bounds = history_bounds(joined, first, held, joined.start[held], rendered.offset)
    return rendered.rows(NAME, cases, shown, bounds)  # the target is words, not an item


SPEC = TaskSpec(
    name=NAME,
    kind="aux",
    placeholders=frozenset({"text", "target"}),
    build=build,
    options=MlmOptions,
)
