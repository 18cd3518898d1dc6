"""Sample texts -> token ids -> padded batches, one batch at a time.

seq2seq: `input` is the encoder input, `target` the labels. causal: one sequence,
prompt then answer, with labels -100 on the prompt (and padding) so the loss is on the
answer tokens only. Ids come from `recalign.models.tokenization`, the same functions the
evaluator uses, so the model is trained on exactly the sequences it is scored on.

Texts are tokenised per batch, in the collator (`encode_batch` is the one place that
turns sample texts into training ids): nothing proportional to the number of samples
is held as Python objects. `recalign.training.stream` supplies the texts.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recalign.artifacts import SamplesDir
from recalign.constants import HISTORY_BOUNDS, INPUT, MANIFEST_FILE, TARGET
from recalign.errors import IncompatibleArtifactError

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # the label value torch's cross-entropy skips


def open_samples(samples_dir: str | Path, data_hash: str | None) -> SamplesDir:
    """The (verified) samples directory; refuse samples generated from another dataset."""
    samples = SamplesDir.open(samples_dir)
    theirs = samples.data_hash
    if theirs is None or data_hash is None or theirs != data_hash:
        raise IncompatibleArtifactError(
            f"{samples.path / MANIFEST_FILE} records a dataset of content hash "
            f"{str(theirs)[:12]}… but the prepared dataset is {str(data_hash)[:12]}…: these "
            "samples were generated from another dataset (or another version of it). "
            "Regenerate them with `recalign samples generate` from this --data."
        )
    return samples


def truncate_answer(ids: list[int], limit: int) -> list[int]:
    """Cut an answer but keep its EOS: the model must still learn where an answer ends."""
    return ids if len(ids) <= limit else [*ids[: limit - 1], ids[-1]]


def causal_example(prompt: list[int], answer: list[int]) -> tuple[list[int], list[int]]:
    """input_ids = prompt + answer; labels = -100 over the prompt, then the answer ids."""
    return [*prompt, *answer], [IGNORE_INDEX] * len(prompt) + list(answer)


@dataclass(frozen=True)
class Lengths:
    max_source_length: int
    max_target_length: int
    truncation_side: str = "left"


@dataclass
class Encoded:
    """Model inputs and labels of a batch of samples, unpadded."""

    input_ids: list[list[int]]
    labels: list[list[int]]
    # How the batch's prompts were fitted to the budget: prompts shortened (whole history
    # items dropped), kept over budget (no history left to drop), cut without bounds.
    fit: Counter = field(default_factory=Counter)


def encode_batch(
    tokenizer: Any,
    family: str,
    prompts: Sequence[str],
    answers: Sequence[str],
    lengths: Lengths,
    bounds: Sequence[Sequence[int] | None] | None = None,
) -> Encoded:
    """The training ids of a batch of samples: the one definition training uses.

    Prompts over `max_source_length` lose whole history items, oldest first (`bounds`:
    the samples' `history_bounds`; never the instruction, the candidates or a chat
    frame — `recalign.models.tokenization.fit_prompts`); samples without bounds are cut
    from `truncation_side`. Answers are cut to `max_target_length` with their EOS kept.
    """
    from recalign.models.tokenization import encode_answers, fit_prompts

    fitted = fit_prompts(
        tokenizer,
        family,
        prompts,
        bounds,
        lengths.max_source_length,
        side=lengths.truncation_side,
        quiet=True,  # per batch; the run reports the totals (`Collator.fit`)
    )
    answer_ids = encode_answers(tokenizer, family, answers)
    inputs, labels = [], []
    for prompt, answer in zip(fitted.ids, answer_ids, strict=True):
        answer = truncate_answer(answer, lengths.max_target_length)
        if family == "causal":
            ids, label = causal_example(prompt, answer)
        else:
            ids, label = prompt, answer
        inputs.append(ids)
        labels.append(label)
    summary = fitted.summary()
    fit = Counter(
        shortened=summary["shortened"],
        over_budget=summary["cannot_fit"],
        cut_without_bounds=summary["cut_without_bounds"],
    )
    return Encoded(inputs, labels, fit)


def sequence_lengths(encoded: Encoded, family: str) -> list[int]:
    """The length a batch is grouped by: the padded work, so both sides for seq2seq."""
    if family == "causal":
        return [len(ids) for ids in encoded.input_ids]
    return [len(a) + len(b) for a, b in zip(encoded.input_ids, encoded.labels, strict=True)]


def _width(rows: list[list[int]], multiple: int | None) -> int:
    width = max(len(r) for r in rows)
    return width if not multiple else -(-width // multiple) * multiple


def pad_batch(encoded: Encoded, pad_token_id: int, multiple: int | None = None) -> dict[str, Any]:
    """Dynamic padding: the batch is padded to its own longest sequence."""
    import torch

    inputs, labels = encoded.input_ids, encoded.labels
    width, label_width = _width(inputs, multiple), _width(labels, multiple)
    return {
        "input_ids": torch.tensor(
            [r + [pad_token_id] * (width - len(r)) for r in inputs], dtype=torch.long
        ),
        "attention_mask": torch.tensor(
            [[1] * len(r) + [0] * (width - len(r)) for r in inputs], dtype=torch.long
        ),
        "labels": torch.tensor(
            [r + [IGNORE_INDEX] * (label_width - len(r)) for r in labels], dtype=torch.long
        ),
    }


@dataclass
class Collator:
    """Sample texts (`input`, `target`, `history_bounds`) -> a padded batch of ids,
    tokenised per batch. `fit` counts how prompts were fitted over the batches seen."""

    tokenizer: Any
    family: str
    lengths: Lengths
    pad_to_multiple_of: int | None = None
    fit: Counter = field(default_factory=Counter)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        bounds = [f[HISTORY_BOUNDS] for f in features] if HISTORY_BOUNDS in features[0] else None
        encoded = encode_batch(
            self.tokenizer,
            self.family,
            [f[INPUT] for f in features],
            [f[TARGET] for f in features],
            self.lengths,
            bounds,
        )
        self.fit.update(encoded.fit)
        return pad_batch(encoded, self.tokenizer.pad_token_id, self.pad_to_multiple_of)
