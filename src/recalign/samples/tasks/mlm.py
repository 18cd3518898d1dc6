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
    randint_list,
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
    item_words: list[list[str]], masked: list[int], family: str, mask_word: str, sep: str
) -> tuple[list[str], str]:
    """Each item's text with its masked words replaced, and the target.

    `masked` holds sorted positions in the items' concatenated words; a span never
    crosses two items. The work is per masked word (~15%), not per word.
    """
    seq2seq = family == "seq2seq"
    texts: list[str] = []
    spans: list[list[str]] = []
    k = 0  # next masked position to place
    offset = 0  # position of the current item's first word
    for words in item_words:
        end = offset + len(words)
        if k == len(masked) or masked[k] >= end:
            texts.append(" ".join(words))
            offset = end
            continue
        pieces: list[str] = []
        last = -2  # previous masked word (item-local)
        cursor = 0  # first word not yet emitted
        while k < len(masked) and masked[k] < end:
            j = masked[k] - offset
            k += 1
            if j == last + 1:
                spans[-1].append(words[j])
            elif len(spans) < MAX_SENTINELS - 1:  # the last sentinel closes the target
                if j > cursor:
                    pieces.append(" ".join(words[cursor:j]))
                pieces.append(f"<extra_id_{len(spans)}>" if seq2seq else mask_word)
                spans.append([words[j]])
            else:
                continue  # out of sentinels: the word stays visible
            last, cursor = j, j + 1
        if cursor < len(words):
            pieces.append(" ".join(words[cursor:]))
        texts.append(" ".join(pieces))
        offset = end
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
    # One Bernoulli draw per word for the whole user; positions split per sample below.
    hits = np.flatnonzero(rng.random(sum(totals)) < opts.mask_prob).tolist()
    fallback = randint_list(rng, 1 << 30, len(positions))  # used when none is masked
    templates = draw_templates(rng, len(positions), ctx)
    sep, start, h = ctx.separator, 0, 0
    for win, total, extra, template in zip(windows, totals, fallback, templates, strict=True):
        end = start + total
        first = h
        while h < len(hits) and hits[h] < end:
            h += 1
        masked = [i - start for i in hits[first:h]]
        if not masked and total:
            masked = [extra % total]
        start = end
        texts, target = mask_words([words[i] for i in win], masked, ctx.family, opts.mask_word, sep)
        values = {"text": sep.join(texts), "target": target}
        inp, tgt = template.render(values)
        out.rows.append((NAME, template.id, user.user_id, inp, tgt, None, None, win))


SPEC = TaskSpec(
    name=NAME,
    kind="aux",
    placeholders=frozenset({"text", "target"}),
    train=train,
    options=MlmOptions,
)
