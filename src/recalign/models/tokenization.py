"""Prompt and answer token ids: the one definition training and inference share.

The evaluator builds its item trie from `encode_answer(item_text)` and scores candidates
with it, so training labels must be exactly these ids: a model trained on other ids
(a missing EOS, a BOS in the middle, a different leading space) would be scored on
sequences it never learnt.

Prompts are fitted to the model's budget (`max_source_length`) by `fit_prompts`, which
training, evaluation and serving all call: a prompt over budget loses whole history
items, oldest first, and only if the newest item alone is still too long, the end of
that item's text — never its instruction, its candidates, its chat frame, BOS or EOS.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# For causal models without a chat template the answer follows the prompt after this
# separator; it ends with a newline so the answer's first token is a word start, the
# same token it is when the answer is encoded on its own.
CAUSAL_SEPARATOR = "\nAnswer:\n"


def _check_family(family: str) -> None:
    if family not in ("seq2seq", "causal"):
        from recalign.errors import ConfigError

        raise ConfigError(f"unknown model family {family!r}; expected 'seq2seq' or 'causal'")


def _ids(tokenizer: Any, text: str, *, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def _batch_ids(tokenizer: Any, texts: list[str], *, special: bool) -> list[list[int]]:
    if not texts:
        return []
    return [list(row) for row in tokenizer(texts, add_special_tokens=special)["input_ids"]]


def uses_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer puts BOS in front of a plain encoding (Llama does, GPT-2 not)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = _ids(tokenizer, "a", special=True)
    return bool(ids) and ids[0] == bos


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def encode_prompts(tokenizer: Any, family: str, texts: Sequence[str]) -> list[list[int]]:
    """Ids of the model input that precedes the answer, for many texts at once.

    seq2seq: the encoder input, with the tokenizer's EOS. causal: the user turn plus the
    generation prompt through the chat template when the tokenizer has one, else BOS (if
    the model uses one) + text + `CAUSAL_SEPARATOR`.
    """
    _check_family(family)
    texts = list(texts)
    if family == "seq2seq":
        return _batch_ids(tokenizer, texts, special=True)
    if has_chat_template(tokenizer):
        rendered = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
            )
            for text in texts
        ]
        # The rendered template already carries any BOS text; adding special tokens
        # again would put a second BOS in front.
        return _batch_ids(tokenizer, rendered, special=False)
    ids = _batch_ids(tokenizer, [text + CAUSAL_SEPARATOR for text in texts], special=False)
    if uses_bos(tokenizer):
        return [[tokenizer.bos_token_id, *row] for row in ids]
    return ids


def encode_answers(tokenizer: Any, family: str, texts: Sequence[str]) -> list[list[int]]:
    """Ids the model must produce for each text, each ending with EOS."""
    _check_family(family)
    eos = tokenizer.eos_token_id
    if eos is None:
        from recalign.errors import ConfigError

        raise ConfigError("the tokenizer has no EOS token; answers need one to end")
    if family == "seq2seq":
        rows = _batch_ids(tokenizer, list(texts), special=True)
        return [row if row and row[-1] == eos else [*row, eos] for row in rows]
    return [[*row, eos] for row in _batch_ids(tokenizer, list(texts), special=False)]


def encode_prompt(tokenizer: Any, family: str, text: str) -> list[int]:
    """`encode_prompts` for one text."""
    return encode_prompts(tokenizer, family, [text])[0]


def encode_answer(tokenizer: Any, family: str, text: str) -> list[int]:
    """`encode_answers` for one text: the ids the model must produce, ending with EOS."""
    return encode_answers(tokenizer, family, [text])[0]


# --- fitting prompts to a token budget --------------------------------------------------
_SPACE = re.compile(r"\s+")


@dataclass
class FittedPrompts:
    """`fit_prompts`' ids and what it did to each prompt."""

    ids: list[list[int]]
    texts: list[str]  # the prompts as encoded (the given text where nothing was dropped)
    lengths: np.ndarray  # tokens before fitting
    dropped: np.ndarray  # whole history items dropped
    shortened: np.ndarray  # bool: the newest kept item lost the end of its text
    over: np.ndarray  # bool: over budget even without its history (kept, not cut)
    cut: np.ndarray  # bool: no history bounds, so cut from one side as before
    limit: int | None = None

    @property
    def fitted_lengths(self) -> np.ndarray:
        return np.fromiter(map(len, self.ids), dtype=np.int64, count=len(self.ids))

    @property
    def removed(self) -> np.ndarray:
        """Tokens removed from each prompt."""
        return self.lengths - self.fitted_lengths

    def summary(self) -> dict[str, Any]:
        removed = self.removed
        changed = removed > 0
        return {
            "prompts": len(self.ids),
            "max_source_length": self.limit,
            "over_budget": int((self.lengths > (self.limit or np.inf)).sum()),
            "shortened": int(changed.sum()),
            "items_dropped": int(self.dropped.sum()),
            "items_dropped_max": int(self.dropped.max(initial=0)),
            "item_texts_shortened": int(self.shortened.sum()),
            "tokens_removed": int(removed.sum()),
            "tokens_removed_max": int(removed.max(initial=0)),
            "cannot_fit": int(self.over.sum()),
            "longest_unfit": int(self.fitted_lengths[self.over].max(initial=0)),
            "cut_without_bounds": int(self.cut.sum()),
        }


@dataclass
class _Job:
    """One prompt over budget with known history bounds (character offsets)."""

    row: int
    text: str
    starts: list[int]  # s_0 .. s_{n-1}
    end: int  # where the newest droppable item ends
    resume: int  # where the kept text resumes when every droppable item is dropped
    k: int = 0  # items to drop in the next try

    @property
    def n(self) -> int:
        return len(self.starts)

    def without(self, k: int) -> str:
        """The text with the k oldest droppable items dropped."""
        cut = self.starts[k] if k < self.n else self.resume
        return self.text[: self.starts[0]] + self.text[cut:]

    def with_newest_cut(self, chars: int) -> str:
        """Only the newest droppable item kept, cut to its first `chars` characters."""
        newest = self.starts[-1]
        kept = self.text[newest : newest + chars]
        return self.text[: self.starts[0]] + kept + self.text[self.end :]


def _char_bounds(text: str, bounds: Sequence[int], row: int) -> list[int]:
    """Byte offsets (as stored) -> character offsets in `text`, checked."""
    bounds = [int(b) for b in bounds]
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    starts = bounds[:-2]
    valid = (
        len(bounds) >= 3
        and all(a <= b for a, b in pairwise(starts))
        and starts[-1] <= bounds[-2] <= size
        and starts[0] <= bounds[-1] <= size
    )
    if not valid:
        from recalign.errors import DataFormatError

        raise DataFormatError(
            f"history_bounds {bounds[:8]} do not describe a history of its input "
            f"({size} bytes); regenerate the samples",
            line=row + 1,
            field="history_bounds",
        )
    if text.isascii():
        return bounds
    data = text.encode("utf-8")
    return [len(data[:b].decode("utf-8")) for b in bounds]


def _legacy_cut(ids: list[int], limit: int, side: str, keep_first: bool) -> list[int]:
    """What training did before prompts carried bounds: keep `limit` ids from one side."""
    if side == "right":
        return ids[:limit]
    if keep_first:
        return [ids[0], *ids[len(ids) - limit + 1 :]]
    return ids[len(ids) - limit :]


def _first_guess(job: _Job, offsets: Sequence[tuple[int, int]], need: int) -> int:
    """Fewest items whose dropping may remove `need` tokens (an optimistic estimate).

    Counts the plain text's tokens that overlap the dropped span, boundary tokens
    included, so the guess never drops more than needed (up to merges at the join).
    """
    if not offsets:
        return 1
    spans = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    cuts = np.asarray([*job.starts[1:], job.resume], dtype=np.int64)  # k = 1..n
    low = np.searchsorted(spans[:, 1], job.starts[0], side="right")
    high = np.searchsorted(spans[:, 0], cuts, side="left")
    enough = np.flatnonzero(high - low >= need)
    return int(enough[0]) + 1 if len(enough) else job.n


def fit_prompts(
    tokenizer: Any,
    family: str,
    texts: Sequence[str],
    bounds: Sequence[Sequence[int] | None] | None,
    max_length: int | None,
    *,
    side: str = "left",
    quiet: bool = False,
) -> FittedPrompts:
    """`encode_prompts`, with every prompt fitted to `max_length` tokens.

    `bounds[i]` are prompt i's history bounds (the samples' `history_bounds` column:
    UTF-8 byte offsets, see `recalign.samples.tasks.base`). A prompt over budget drops
    the fewest whole history items, oldest first, that make it fit; when even its newest
    item alone is too long, that item keeps the first words that fit; when not even the
    prompt without history fits, that prompt is kept (over budget) and counted in
    `over` — the budget is too small for its instruction and candidates. The chat frame,
    BOS and EOS come from `encode_prompts` around whatever text is kept.

    Rows without bounds (`bounds` None: samples generated before prompts carried them;
    or a null row) are cut from `side` as training used to do, BOS kept, with a warning.
    `max_length` None encodes without fitting.
    """
    texts = list(texts)
    ids = encode_prompts(tokenizer, family, texts)
    n = len(ids)
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=n)
    flags = [np.zeros(n, dtype=bool) for _ in range(3)]
    out = FittedPrompts(ids, list(texts), lengths, np.zeros(n, np.int64), *flags, limit=max_length)
    if max_length is None:
        return out
    long_rows = np.flatnonzero(lengths > max_length).tolist()
    jobs: list[_Job] = []
    for row in long_rows:
        row_bounds = None if bounds is None else bounds[row]
        if row_bounds is None:
            out.cut[row] = True
            continue
        if not len(row_bounds):
            out.over[row] = True  # nothing droppable: over budget as it is
            continue
        b = _char_bounds(texts[row], row_bounds, row)
        jobs.append(_Job(row, texts[row], b[:-2], b[-2], b[-1]))
    if out.cut.any():
        keep_bos = family == "causal" and uses_bos(tokenizer)
        for row in np.flatnonzero(out.cut).tolist():
            ids[row] = _legacy_cut(ids[row], max_length, side, keep_bos)
    if jobs:
        _fit_jobs(tokenizer, family, jobs, out, max_length)
    if not quiet:
        _warn(out, bounds is None)
    return out


def _fit_jobs(
    tokenizer: Any, family: str, jobs: list[_Job], out: FittedPrompts, limit: int
) -> None:
    if getattr(tokenizer, "is_fast", False):
        offsets = tokenizer(
            [job.text for job in jobs], add_special_tokens=False, return_offsets_mapping=True
        )["offset_mapping"]
        for job, spans in zip(jobs, offsets, strict=True):
            job.k = _first_guess(job, spans, int(out.lengths[job.row]) - limit)
    else:  # a slow tokenizer has no offsets: start from one item
        for job in jobs:
            job.k = 1
    # Rounds of one batched encoding each: drop one more item where it did not fit.
    pending = [job for job in jobs if job.k < job.n]
    exhausted = [job for job in jobs if job.k >= job.n]
    while pending:
        encoded = encode_prompts(tokenizer, family, [job.without(job.k) for job in pending])
        still = []
        for job, ids in zip(pending, encoded, strict=True):
            if len(ids) <= limit:
                _accept(out, job, ids, job.without(job.k), job.k)
            elif job.k + 1 < job.n:
                job.k += 1
                still.append(job)
            else:
                exhausted.append(job)
        pending = still
    for job in exhausted:  # the newest item alone does not fit (rare): cut its text
        _fit_newest(tokenizer, family, job, out, limit)


def _accept(out: FittedPrompts, job: _Job, ids: list[int], text: str, dropped: int) -> None:
    out.ids[job.row] = ids
    out.texts[job.row] = text
    out.dropped[job.row] = dropped


def _fit_newest(tokenizer: Any, family: str, job: _Job, out: FittedPrompts, limit: int) -> None:
    """Keep the longest word prefix of the newest item that fits, else no history."""
    bare = job.without(job.n)
    bare_ids = encode_prompts(tokenizer, family, [bare])[0]
    _accept(out, job, bare_ids, bare, job.n)
    if len(bare_ids) > limit:
        out.over[job.row] = True  # the instruction and candidates alone are over budget
        return
    newest = job.text[job.starts[-1] : job.end]
    # Word prefixes of the newest item, the whole item last.
    cuts = [m.start() for m in _SPACE.finditer(newest) if m.start() > 0] + [len(newest)]
    low, high = 0, len(cuts)  # the first `low` prefixes are known to fit
    found: tuple[list[int], str] | None = None
    while low < high:
        middle = (low + high + 1) // 2
        text = job.with_newest_cut(cuts[middle - 1])
        ids = encode_prompts(tokenizer, family, [text])[0]
        if len(ids) <= limit:
            low, found = middle, (ids, text)
        else:
            high = middle - 1
    if found is not None:
        _accept(out, job, found[0], found[1], job.n - 1)
        out.shortened[job.row] = low < len(cuts)


def _warn(out: FittedPrompts, no_bounds: bool) -> None:
    cut = int(out.cut.sum())
    if cut:
        why = (
            "the samples carry no history bounds (generated before prompts were fitted)"
            if no_bounds
            else "their history could not be located in the prompt"
        )
        logger.warning(
            "%d of %d prompts over max_source_length %d were cut from one side as before, "
            "because %s: a cut can remove the instruction or the chat frame. Regenerate the "
            "samples with `recalign samples generate` to drop whole history items instead.",
            cut,
            len(out.ids),
            out.limit,
            why,
        )
    over = int(out.over.sum())
    if over:
        longest = int(out.fitted_lengths[out.over].max())
        logger.warning(
            "%d of %d prompts do not fit max_source_length %d even without their history "
            "(the longest needs %d tokens): they are kept whole, over budget. Raise "
            "max_source_length to %d, or shorten what every prompt carries (fewer ranking "
            "candidates: tasks.ranking.num_candidates; shorter item texts: --max-words).",
            over,
            len(out.ids),
            out.limit,
            longest,
            longest,
        )


def fit_prompt(
    tokenizer: Any, family: str, text: str, bounds: Sequence[int] | None, max_length: int | None
) -> list[int]:
    """`fit_prompts` for one prompt (serving)."""
    return fit_prompts(tokenizer, family, [text], [bounds], max_length).ids[0]
