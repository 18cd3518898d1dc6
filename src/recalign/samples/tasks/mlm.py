"""mlm (masked language modeling on item text): the history's titles with ~15% of the words
masked -> the masked words.

seq2seq targets follow T5 span corruption: each run of masked words becomes one sentinel
`<extra_id_i>` in the input, and the target lists `<extra_id_i> words` per span, closed by
the next sentinel. Causal models get a plain mask word per span and the spans' words as the
target, separated like the history.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from recalign.samples.buffer import SampleBuffer
from recalign.samples.tasks.base import (
    TaskContext,
    TaskOptions,
    TaskSpec,
    UserData,
    draw_templates,
    train_positions,
    window,
)

NAME = "mlm"
MAX_SENTINELS = 100  # T5 vocabularies have <extra_id_0> .. <extra_id_99>


class MlmOptions(TaskOptions):
    mask_prob: float = Field(default=0.15, gt=0.0, lt=1.0, description="share of words masked")
    max_items: int = Field(default=5, ge=1, description="titles in the text (the most recent)")
    mask_word: str = Field(default="[MASK]", min_length=1, description="causal models' mask")


def mask_words(
    item_words: list[list[str]], masked: list[bool], family: str, mask_word: str, sep: str
) -> tuple[list[str], str]:
    """Each item's text with its masked words replaced, and the target.

    `masked` is flat over all items' words; a span never crosses two items.
    """
    seq2seq = family == "seq2seq"
    texts: list[str] = []
    spans: list[list[str]] = []
    k = 0
    for words in item_words:
        pieces: list[str] = []
        span: list[str] | None = None
        for word in words:
            # Past the last sentinel, words stay visible (the final one closes the target).
            if masked[k] and (span is not None or len(spans) < MAX_SENTINELS - 1):
                if span is None:
                    span = []
                    spans.append(span)
                    pieces.append(f"<extra_id_{len(spans) - 1}>" if seq2seq else mask_word)
                span.append(word)
            else:
                pieces.append(word)
                span = None
            k += 1
        texts.append(" ".join(pieces))
    if not seq2seq:
        return texts, sep.join(" ".join(span) for span in spans)
    parts = [f"<extra_id_{i}> {' '.join(span)}" for i, span in enumerate(spans)]
    parts.append(f"<extra_id_{len(spans)}>")
    return texts, " ".join(parts)


def train(user: UserData, rng: np.random.Generator, ctx: TaskContext, out: SampleBuffer) -> None:
    items = user.train
    positions = train_positions(rng, len(items), ctx)
    if not positions:
        return
    opts: MlmOptions = ctx.options
    words = ctx.cache.get("words")
    if words is None:
        words = ctx.cache["words"] = [text.split() for text in ctx.texts]
    windows = [window(items, t + 1, opts.max_items) for t in positions]
    totals = [sum(len(words[i]) for i in win) for win in windows]
    draws = rng.random(sum(totals)) < opts.mask_prob
    fallback = rng.integers(1 << 30, size=len(positions)).tolist()  # used when none is masked
    templates = draw_templates(rng, len(positions), ctx)
    sep, start = ctx.separator, 0
    for win, total, extra, template in zip(windows, totals, fallback, templates, strict=True):
        masked = draws[start : start + total].tolist()
        start += total
        if not any(masked) and total:
            masked[extra % total] = True
        texts, target = mask_words([words[i] for i in win], masked, ctx.family, opts.mask_word, sep)
        values = {"text": sep.join(texts), "target": target}
        inp, tgt = template.render(values)
        out.rows.append((NAME, template.id, user.user_id, inp, tgt, None, None, list(win)))


SPEC = TaskSpec(
    name=NAME,
    kind="aux",
    placeholders=frozenset({"text", "target"}),
    train=train,
    options=MlmOptions,
)
