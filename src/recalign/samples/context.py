"""Per-run setup shared by generation and evaluation: item strings, sampler, task contexts."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import polars as pl

from recalign.constants import ITEMS
from recalign.data.domain import Domain
from recalign.data.store import PreparedDataset
from recalign.errors import ConfigError
from recalign.samples.mixture import DEFAULTS
from recalign.samples.negatives import make_sampler
from recalign.samples.representation import item_representations
from recalign.samples.tasks import TASKS, TaskContext
from recalign.samples.templates import TemplateSet

logger = logging.getLogger(__name__)

FAMILIES = ("seq2seq", "causal")


def check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ConfigError(f"unknown model family {family!r}; choose from {FAMILIES}")


def natural_positions(dataset: PreparedDataset) -> int:
    """Train positions t >= 1 over all users: the 100% of a task's `ratio`."""
    # Train part = all but the last two items (the leave-one-out split), without
    # materialising the split views.
    positions = (pl.col(ITEMS).list.len() - 3).clip(lower_bound=0).sum()
    return int(dataset.scan_sequences().select(positions).collect(engine="streaming").item())


def train_item_counts(dataset: PreparedDataset, num_items: int) -> np.ndarray:
    """How often each item (index = id) occurs in the train parts (all but the last two)."""
    train = pl.col(ITEMS).list.head(pl.col(ITEMS).list.len() - 2)
    counts = (
        dataset.scan_sequences()
        .select(train.alias(ITEMS))
        .explode(ITEMS)
        .drop_nulls()  # polars 1.x explodes an empty train part to a null (2.x: no row)
        .group_by(ITEMS)
        .len()
        .collect(engine="streaming")
    )
    out = np.zeros(num_items + 1, dtype=np.int64)
    out[counts.get_column(ITEMS).to_numpy()] = counts.get_column("len").to_numpy()
    return out


def check_options(task: str, options: Any, num_items: int) -> None:
    k = getattr(options, "num_candidates", None)
    if k is not None and k > num_items:
        raise ConfigError(
            f"tasks.{task}.num_candidates = {k} is larger than the catalogue ({num_items} items)"
        )


def build_contexts(
    dataset: PreparedDataset,
    task_options: dict[str, Any],
    templates: TemplateSet,
    *,
    item_repr: str = DEFAULTS.item_repr,
    id_seed: int = DEFAULTS.id_seed,
    negatives: str = DEFAULTS.negatives,
    max_history: int = DEFAULTS.max_history,
    family: str = "seq2seq",
    separator: str = DEFAULTS.separator,
    domain: Domain | None = None,
    codes: list[str] | None = None,
    exclude_items: np.ndarray | None = None,
) -> dict[str, TaskContext]:
    """One `TaskContext` per task; the item strings and the sampler are shared.

    The templates' domain words are the dataset's (`dataset.domain`) unless `domain` is
    given. `codes` are the items' semantic ids (for the semantic representations);
    `exclude_items` are never drawn as negatives (cold-start items, in generated samples).
    """
    check_family(family)
    words = (domain or dataset.domain).words()
    reprs = item_representations(dataset.item_texts, item_repr, id_seed, codes)
    texts = [str(t) for t in dataset.item_texts.tolist()]
    counts = train_item_counts(dataset, len(reprs) - 1) if negatives == "popularity" else None
    sampler = make_sampler(negatives, len(reprs) - 1, counts=counts, excluded=exclude_items)
    repr_bytes = [r.encode("utf-8") for r in reprs]  # shared: users' joined items too
    total = None
    contexts: dict[str, TaskContext] = {}
    for task, options in task_options.items():
        check_options(task, options, len(reprs) - 1)
        ratio = 1.0 if options.ratio is None else options.ratio
        if options.count is not None:
            total = natural_positions(dataset) if total is None else total
            ratio = min(1.0, options.count / total) if total else 0.0
            logger.info(
                "%s: count %d -> ratio %.4f of %d positions", task, options.count, ratio, total
            )
        contexts[task] = TaskContext(
            reprs=reprs,
            texts=texts,
            templates=templates.select(task, options.templates),
            sampler=sampler,
            options=options,
            max_history=max_history,
            ratio=ratio,
            family=family,
            separator=separator,
            words=words,
            cache={"repr_bytes": repr_bytes},
        )
    return contexts


def default_options(task: str, **overrides: Any) -> Any:
    return TASKS[task].options.model_validate(overrides)
