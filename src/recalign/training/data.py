"""Samples -> token ids -> padded batches.

seq2seq: `input` is the encoder input, `target` the labels. causal: one sequence,
prompt then answer, with labels -100 on the prompt (and padding) so the loss is on the
answer tokens only. Ids come from `recalign.models.tokenization`, the same functions the
evaluator uses, so the model is trained on exactly the sequences it is scored on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recalign.constants import HISTORY_BOUNDS, INPUT, MANIFEST_FILE, TARGET, TASK
from recalign.errors import DataFormatError, IncompatibleArtifactError, RecalignError

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # the label value torch's cross-entropy skips
LENGTH = "length"  # column the length-grouped sampler reads


def read_samples_manifest(samples_dir: str | Path, data_hash: str | None) -> dict[str, Any]:
    """The samples manifest; refuse samples generated from another dataset."""
    from recalign.manifest import read_manifest

    samples_dir = Path(samples_dir)
    if not samples_dir.is_dir():
        raise RecalignError(f"{samples_dir} is not a directory (expected a samples directory)")
    manifest = read_manifest(samples_dir)
    theirs = manifest.get("data_hash")
    if theirs is None or data_hash is None or theirs != data_hash:
        raise IncompatibleArtifactError(
            f"{samples_dir / MANIFEST_FILE} has data_hash {theirs!r} but the prepared dataset "
            f"has {data_hash!r}: these samples were generated from another dataset (or another "
            "version of it). Regenerate them with `recalign samples` from this --data."
        )
    return manifest


def read_split(
    samples_dir: str | Path, split: str, *, tasks: list[str] | None = None
) -> pl.DataFrame:
    """One split's samples (`input`, `target`, `task`), optionally restricted to some tasks."""
    path = Path(samples_dir) / f"{split}.parquet"
    if not path.is_file():
        raise RecalignError(f"{path} does not exist: the samples directory has no {split} split")
    frame = pl.read_parquet(path)
    for column in (INPUT, TARGET):
        if column not in frame.columns:
            from recalign.errors import MissingColumnError

            raise MissingColumnError(column, path=path, available=frame.columns)
    if tasks is not None and TASK in frame.columns:
        frame = frame.filter(pl.col(TASK).is_in(tasks))
    nulls = frame.select(pl.col(INPUT).is_null() | pl.col(TARGET).is_null()).to_series()
    if nulls.any():
        row = int(nulls.arg_true()[0])
        raise DataFormatError("sample with an empty input or target", path=path, line=row + 1)
    if frame.height == 0:
        raise RecalignError(f"{path} has no samples" + (f" for tasks {tasks}" if tasks else ""))
    return frame


def truncate(ids: list[int], limit: int, side: str, *, keep_first: bool = False) -> list[int]:
    """Cut `ids` to `limit` tokens from `side`; keep the first id (a BOS) when asked."""
    if len(ids) <= limit:
        return ids
    if side == "right":
        return ids[:limit]
    if keep_first:
        return [ids[0], *ids[len(ids) - limit + 1 :]]
    return ids[len(ids) - limit :]


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


def tokenize_frame(tokenizer: Any, family: str, frame: pl.DataFrame, lengths: Lengths) -> Any:
    """A `datasets.Dataset` with `input_ids`, `labels` and `length` for each sample."""
    import datasets

    from recalign.models.tokenization import encode_answers, fit_prompts

    # Prompts over budget drop whole history items (never the instruction or chat frame);
    # samples without bounds (generated before them) are cut from one side, with a warning.
    bounds = frame.get_column(HISTORY_BOUNDS).to_list() if HISTORY_BOUNDS in frame.columns else None
    prompts = fit_prompts(
        tokenizer,
        family,
        frame.get_column(INPUT).to_list(),
        bounds,
        lengths.max_source_length,
        side=lengths.truncation_side,
    ).ids
    answers = encode_answers(tokenizer, family, frame.get_column(TARGET).to_list())
    inputs, labels = [], []
    for prompt, answer in zip(prompts, answers, strict=True):
        answer = truncate_answer(answer, lengths.max_target_length)
        if family == "causal":
            ids, label = causal_example(prompt, answer)
        else:
            ids, label = prompt, answer
        inputs.append(ids)
        labels.append(label)
    # Length-grouping cares about the padded work per batch: both sides for seq2seq.
    if family == "causal":
        length = [len(ids) for ids in inputs]
    else:
        length = [len(a) + len(b) for a, b in zip(inputs, labels, strict=True)]
    return datasets.Dataset.from_dict({"input_ids": inputs, "labels": labels, LENGTH: length})


def subsample(frame: pl.DataFrame, limit: int | None, seed: int) -> pl.DataFrame:
    """A seeded subset of rows (validation speed), in the original order."""
    if limit is None or frame.height <= limit:
        return frame
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(frame.height, size=limit, replace=False))
    return frame[rows]


@dataclass
class Collator:
    """Dynamic padding: each batch is padded to its own longest sequence."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def _width(self, rows: list[list[int]]) -> int:
        width = max(len(r) for r in rows)
        m = self.pad_to_multiple_of
        return width if not m else -(-width // m) * m

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        inputs = [list(f["input_ids"]) for f in features]
        labels = [list(f["labels"]) for f in features]
        width = self._width(inputs)
        label_width = self._width(labels)
        batch = {
            "input_ids": torch.tensor(
                [r + [self.pad_token_id] * (width - len(r)) for r in inputs], dtype=torch.long
            ),
            "attention_mask": torch.tensor(
                [[1] * len(r) + [0] * (width - len(r)) for r in inputs], dtype=torch.long
            ),
            "labels": torch.tensor(
                [r + [IGNORE_INDEX] * (label_width - len(r)) for r in labels], dtype=torch.long
            ),
        }
        return batch
