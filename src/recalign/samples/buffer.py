"""The output contract (Arrow schema) and the assembly of task rows into its tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from recalign.constants import (
    CANDIDATES,
    HISTORY_BOUNDS,
    INPUT,
    TARGET,
    TARGET_ITEM,
    TASK,
    TEMPLATE,
    USER_ID,
)
from recalign.samples.batch import Ragged, empty_rows, stack_rows
from recalign.samples.tasks.base import NULL_ITEM, TaskRows, join_texts

ITEMS_SHOWN = "items_shown"  # list[int]: every item id the sample mentions (leakage audits)

SCHEMA = pa.schema(
    [
        pa.field(TASK, pa.string()),
        pa.field(TEMPLATE, pa.string()),
        pa.field(USER_ID, pa.int64()),
        pa.field(INPUT, pa.string()),
        pa.field(TARGET, pa.string()),
        pa.field(TARGET_ITEM, pa.int64()),
        pa.field(CANDIDATES, pa.list_(pa.int64())),
        pa.field(ITEMS_SHOWN, pa.list_(pa.int64())),
        pa.field(HISTORY_BOUNDS, pa.list_(pa.int32())),
    ]
)


def list_array(
    ragged: Ragged, valid: np.ndarray | None = None, value_type: pa.DataType = pa.int64()
) -> pa.Array:
    """Rows of integers as an Arrow list array (null where `valid` is False)."""
    offsets = pa.array(ragged.offsets.astype(np.int32))
    mask = None if valid is None else pa.array(~valid)
    values = pa.array(ragged.values.astype(value_type.to_pandas_dtype(), copy=False), value_type)
    return pa.ListArray.from_arrays(offsets, values, mask=mask)


def assemble(parts: list[TaskRows], task_order: dict[str, int], user_ids: np.ndarray) -> pa.Table:
    """One split's rows of a block of users, in canonical order: user, task, position."""
    parts = [p for p in parts if len(p.cases)]
    if not parts:
        return SCHEMA.empty_table()
    rows = np.concatenate([p.cases.rows for p in parts])
    rank = np.concatenate([np.full(len(p.cases), task_order[p.task]) for p in parts])
    # Within a part, cases are in (row, position) order already: a stable sort suffices.
    order = np.argsort(rows * len(task_order) + rank, kind="stable")
    template = np.concatenate([np.array(p.template, dtype=object) for p in parts])[order]
    names = [p.task for p in parts]
    task = np.repeat(np.arange(len(parts)), [len(p.cases) for p in parts])[order]
    candidates = stack_rows(
        [p.candidates if p.candidates is not None else empty_rows(len(p.cases)) for p in parts]
    ).take(order)
    has_candidates = np.concatenate(
        [np.full(len(p.cases), p.candidates is not None) for p in parts]
    )[order]
    shown = stack_rows([p.shown for p in parts]).take(order)
    bounds = stack_rows([p.bounds.rows for p in parts]).take(order)
    bounds_valid = np.concatenate([p.bounds.valid for p in parts])[order]
    target_item = np.concatenate([p.target_item for p in parts])[order]
    return pa.Table.from_arrays(
        [
            pa.DictionaryArray.from_arrays(pa.array(task, pa.int32()), pa.array(names)).cast(
                pa.string()
            ),
            pa.array(template, pa.string()),
            pa.array(user_ids[rows[order]], pa.int64()),
            join_texts([p.input for p in parts], order),
            join_texts([p.target for p in parts], order),
            pa.array(target_item, pa.int64(), mask=target_item == NULL_ITEM),
            list_array(candidates, has_candidates),
            list_array(shown),
            list_array(bounds, bounds_valid, pa.int32()),
        ],
        schema=SCHEMA,
    )
