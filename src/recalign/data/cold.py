"""Cold-start items: a seeded fraction of the catalogue that training never sees.

`data prepare --cold-items F` picks round(F x items) items uniformly at random (seeded)
and removes their interactions from every user's sequence except where one is the
user's last interaction, the leave-one-out test target. So:

- no train sample (target, history, candidate positive) and no baseline's training
  data contains a cold item, and no validation target is cold;
- a test case is *cold* when its target is a cold item, *warm* otherwise; test
  histories never contain cold items;
- cold items stay in the catalogue (items.parquet, `cold` = true), so full ranking
  and constrained decoding can still produce them.

Why random rather than "the items first seen last in time": a random cold set has the
catalogue's popularity and genre mix, so the warm/cold gap measures how a model copes
with an unseen item, not with late, typically less popular releases (and datasets
without timestamps work too). Users left with fewer than `MIN_SEQUENCE_LENGTH`
interactions are dropped and counted in the report.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recalign.constants import (
    COLD,
    ITEM_ID,
    ITEMS,
    MIN_SEQUENCE_LENGTH,
    RATINGS,
    TIMESTAMPS,
    USER_ID,
)
from recalign.errors import ConfigError

logger = logging.getLogger(__name__)

_COLD_STREAM = 0xC01D


def choose_cold(item_ids: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """The sorted ids of a seeded `fraction` of `item_ids` (at least one when > 0)."""
    if not 0 <= fraction < 1:
        raise ConfigError(f"--cold-items must be a fraction in [0, 1), got {fraction}")
    ids = np.sort(np.asarray(item_ids, dtype=np.int64))
    count = round(fraction * len(ids))
    if fraction > 0:
        count = max(1, count)
    rng = np.random.default_rng([seed, _COLD_STREAM])
    return np.sort(rng.choice(ids, size=count, replace=False))


def hold_out_cold(sequences: pl.DataFrame, cold: np.ndarray) -> tuple[pl.DataFrame, dict]:
    """Sequences without cold interactions except a cold last one; users left too short
    are dropped. Returns the sequences and a report of what was removed."""
    cold_set = set(np.asarray(cold).tolist())
    aligned = [c for c in (ITEMS, RATINGS, TIMESTAMPS) if c in sequences.columns]
    kept_rows: dict[str, list[Any]] = {c: [] for c in (USER_ID, *aligned)}
    removed = dropped_users = cold_targets = 0
    for row in sequences.select(USER_ID, *aligned).iter_rows(named=True):
        items = row[ITEMS]
        keep = [i for i, item in enumerate(items) if item not in cold_set or i == len(items) - 1]
        removed += len(items) - len(keep)
        if len(keep) < MIN_SEQUENCE_LENGTH:
            dropped_users += 1
            continue
        cold_targets += items[-1] in cold_set
        kept_rows[USER_ID].append(row[USER_ID])
        for column in aligned:
            kept_rows[column].append([row[column][i] for i in keep])
    out = pl.DataFrame(kept_rows, schema={c: sequences.schema[c] for c in kept_rows})
    report = {
        "items": len(cold_set),
        "interactions_removed": removed,
        "users_dropped_short": dropped_users,
        "cold_test_cases": cold_targets,
        "warm_test_cases": out.height - cold_targets,
    }
    return out, report


def mark_cold(path: Any, fraction: float, seed: int = 0) -> Any:
    """Rewrite the prepared dataset at `path` with a cold item set; returns it re-read."""
    from recalign.data.domain import domain_of_manifest
    from recalign.data.store import DatasetRecord, load_prepared, write_prepared

    dataset = load_prepared(path)
    cold = choose_cold(dataset.items.get_column(ITEM_ID).to_numpy(), fraction, seed)
    sequences, report = hold_out_cold(dataset.sequences, cold)
    if sequences.height == 0:
        raise ConfigError(f"--cold-items {fraction}: no user keeps {MIN_SEQUENCE_LENGTH} items")
    items = dataset.items.with_columns(pl.col(ITEM_ID).is_in(cold.tolist()).alias(COLD))
    manifest = dataset.manifest
    logger.info(
        "cold items: %d items, %d cold and %d warm test cases, %d interactions removed",
        report["items"],
        report["cold_test_cases"],
        report["warm_test_cases"],
        report["interactions_removed"],
    )
    inputs = {
        key: value["path"]
        for key, value in (manifest.get("input_files") or {}).items()
        if isinstance(value, dict) and value.get("path") and Path(value["path"]).is_file()
    }
    return write_prepared(
        path,
        dataset.name,
        sequences,
        items,
        DatasetRecord(
            source=manifest.get("source") or {},
            options={**(manifest.get("options") or {}), "cold_items": fraction, "cold_seed": seed},
            input_files=inputs,
            report={**(manifest.get("report") or {}), "cold": report},
            domain=domain_of_manifest(manifest),
        ),
    )
