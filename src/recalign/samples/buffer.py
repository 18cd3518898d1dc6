"""Column buffers for generated samples and their Arrow schema (the output contract)."""

from __future__ import annotations

from collections import Counter
from itertools import chain

import numpy as np
import pyarrow as pa

from recalign.constants import CANDIDATES, INPUT, TARGET, TARGET_ITEM, TASK, TEMPLATE, USER_ID

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
    ]
)


class SampleBuffer:
    """Collects samples as row tuples; `to_table()` transposes them into Arrow in bulk.

    One `list.append` per sample is the cheapest way to collect rows in Python; the
    transpose (`zip(*rows)`) and the flattening of the list columns run in C.
    """

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.counts: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.rows)

    def add(
        self,
        task: str,
        template: str,
        user_id: int,
        input: str,
        target: str,
        target_item: int | None,
        candidates: list[int] | None,
        shown: list[int],
    ) -> None:
        self.rows.append((task, template, user_id, input, target, target_item, candidates, shown))

    @staticmethod
    def _list_array(lists: tuple, nullable: bool) -> pa.Array:
        lengths = np.fromiter(
            (0 if x is None else len(x) for x in lists) if nullable else map(len, lists),
            dtype=np.int32,
            count=len(lists),
        )
        offsets = np.zeros(len(lists) + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        flat = (
            chain.from_iterable(x for x in lists if x is not None)
            if nullable
            else (chain.from_iterable(lists))
        )
        values = pa.array(np.fromiter(flat, dtype=np.int64, count=int(offsets[-1])))
        mask = (
            pa.array(np.fromiter((x is None for x in lists), bool, len(lists)))
            if nullable
            else None
        )
        return pa.ListArray.from_arrays(pa.array(offsets), values, mask=mask)

    def to_table(self) -> pa.Table:
        """The buffered rows as a table in `SCHEMA`; the buffer is emptied."""
        if not self.rows:
            return SCHEMA.empty_table()
        task, template, user_id, inp, target, target_item, candidates, shown = zip(
            *self.rows, strict=True
        )
        self.counts.update(task)
        self.rows = []
        return pa.Table.from_arrays(
            [
                pa.array(task, pa.string()),
                pa.array(template, pa.string()),
                pa.array(user_id, pa.int64()),
                pa.array(inp, pa.string()),
                pa.array(target, pa.string()),
                pa.array(target_item, pa.int64()),
                self._list_array(candidates, nullable=True),
                self._list_array(shown, nullable=False),
            ],
            schema=SCHEMA,
        )
