"""How a samples directory's prompts fit a model's token budget (`recalign samples inspect`).

Runs `fit_prompts` — the fitting training, evaluation and serving do — over each task and
split and counts what it would do: prompts over budget, history items dropped, tokens
removed, item texts cut, and prompts that cannot fit even without their history.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recalign.constants import HISTORY_BOUNDS, INPUT, SPLITS, TASK
from recalign.fileio import parquet_file, read_parquet
from recalign.samples.export import split_path

logger = logging.getLogger(__name__)


def inspect_fit(
    samples_dir: str | Path,
    tokenizer: Any,
    family: str,
    max_source_length: int,
    *,
    splits: tuple[str, ...] = SPLITS,
    max_samples: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """`{"splits": {split: {task: summary}}, "has_bounds": ..., "max_source_length": ...}`.

    Each summary is `FittedPrompts.summary()`; `has_bounds` is False for samples written
    before prompts carried history bounds (they are cut from one side, as training did).

    `max_samples` takes a seeded subset of each split (a quick look at a large one).
    """
    from recalign.models.tokenization import fit_prompts

    report: dict[str, Any] = {"max_source_length": max_source_length, "splits": {}}
    has_bounds = True
    for split in splits:
        path = split_path(samples_dir, split)
        columns = parquet_file(path).schema_arrow.names
        wanted = [TASK, INPUT, *([HISTORY_BOUNDS] if HISTORY_BOUNDS in columns else [])]
        has_bounds = has_bounds and HISTORY_BOUNDS in columns
        frame = read_parquet(path, columns=wanted)
        if max_samples is not None and frame.height > max_samples:
            rows = np.random.default_rng(seed).choice(frame.height, max_samples, replace=False)
            frame = frame[np.sort(rows)]
        per_task = {}
        for task in frame.get_column(TASK).unique(maintain_order=True).to_list():
            part = frame.filter(pl.col(TASK) == task)
            bounds = part.get_column(HISTORY_BOUNDS).to_list() if len(wanted) == 3 else None
            fitted = fit_prompts(
                tokenizer,
                family,
                part.get_column(INPUT).to_list(),
                bounds,
                max_source_length,
                quiet=True,
            )
            per_task[task] = fitted.summary()
            logger.debug("%s/%s: %s", split, task, per_task[task])
        report["splits"][split] = per_task
    report["has_bounds"] = has_bounds
    return report
