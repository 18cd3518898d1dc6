"""Per-run setup shared by generation and evaluation: item strings, sampler, task contexts."""

from __future__ import annotations

import hashlib
import logging
import struct
from typing import Any

import numpy as np
import polars as pl

from recalign.constants import ITEMS
from recalign.data.store import PreparedDataset
from recalign.errors import ConfigError
from recalign.samples.negatives import make_sampler
from recalign.samples.representation import item_representations
from recalign.samples.tasks import TASKS, TaskContext
from recalign.samples.templates import TemplateSet

logger = logging.getLogger(__name__)

SPLIT_INDEX = {"train": 0, "valid": 1, "test": 2}
FAMILIES = ("seq2seq", "causal")


class KeyedRng:
    """A `numpy.random.Generator` re-keyed for each (seed, task, split, user).

    Every key gets its own PCG64 stream, so which process or shard handles a user never
    changes its draws. The 256-bit state comes from BLAKE2b of the key: the same
    guarantee as `default_rng([seed, task, split, user])`, whose SeedSequence costs
    ~12 us per call, the largest single cost when a task makes ~6 samples per user.
    The returned generator is shared: use it for one key, then ask again.
    """

    def __init__(self) -> None:
        self._bits = np.random.PCG64(0)
        self._gen = np.random.Generator(self._bits)

    def __call__(self, seed: int, task_index: int, split: str, user_id: int) -> np.random.Generator:
        key = struct.pack("<4q", seed, task_index, SPLIT_INDEX[split], user_id)
        digest = hashlib.blake2b(key, digest_size=32, person=b"recalign-samples").digest()
        self._bits.state = {
            "bit_generator": "PCG64",
            "state": {
                "state": int.from_bytes(digest[:16], "little"),
                "inc": int.from_bytes(digest[16:], "little") | 1,
            },
            "has_uint32": 0,
            "uinteger": 0,
        }
        return self._gen


def user_rng(seed: int, task_index: int, split: str, user_id: int) -> np.random.Generator:
    """A fresh generator for one (seed, task, split, user) key (same stream as `KeyedRng`)."""
    return KeyedRng()(seed, task_index, split, user_id)


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
    item_repr: str = "title",
    id_seed: int = 0,
    negatives: str = "uniform",
    max_history: int = 20,
    family: str = "seq2seq",
    separator: str = "; ",
) -> dict[str, TaskContext]:
    """One `TaskContext` per task; the item strings and the sampler are shared."""
    check_family(family)
    reprs = item_representations(dataset.item_texts, item_repr, id_seed)
    texts = [str(t) for t in dataset.item_texts.tolist()]
    counts = train_item_counts(dataset, len(reprs) - 1) if negatives == "popularity" else None
    sampler = make_sampler(negatives, len(reprs) - 1, counts=counts)
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
        )
    return contexts


def default_options(task: str, **overrides: Any) -> Any:
    return TASKS[task].options.model_validate(overrides)
