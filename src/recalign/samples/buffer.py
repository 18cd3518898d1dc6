"""Column buffers for generated samples and their Arrow schema (the output contract)."""

from __future__ import annotations

from collections import Counter

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
    """Appends samples column-wise; `to_table()` builds Arrow arrays in one go.

    Lists are kept flat with offsets: building an Arrow list array from offsets is an
    order of magnitude faster than from a Python list of lists.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._reset()

    def _reset(self) -> None:
        self.task: list[str] = []
        self.template: list[str] = []
        self.user_id: list[int] = []
        self.input: list[str] = []
        self.target: list[str] = []
        self.target_item: list[int | None] = []
        self.cand_values: list[int] = []
        self.cand_offsets: list[int] = [0]
        self.cand_valid: list[bool] = []
        self.shown_values: list[int] = []
        self.shown_offsets: list[int] = [0]

    def __len__(self) -> int:
        return len(self.task)

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
        self.task.append(task)
        self.template.append(template)
        self.user_id.append(user_id)
        self.input.append(input)
        self.target.append(target)
        self.target_item.append(target_item)
        if candidates is None:
            self.cand_valid.append(False)
        else:
            self.cand_valid.append(True)
            self.cand_values.extend(candidates)
        self.cand_offsets.append(len(self.cand_values))
        self.shown_values.extend(shown)
        self.shown_offsets.append(len(self.shown_values))
        self.counts[task] += 1

    @staticmethod
    def _list_array(values: list[int], offsets: list[int], valid: list[bool] | None) -> pa.Array:
        offs = pa.array(np.asarray(offsets, dtype=np.int32))
        vals = pa.array(np.asarray(values, dtype=np.int64))
        mask = None if valid is None else pa.array(~np.asarray(valid, dtype=bool))
        return pa.ListArray.from_arrays(offs, vals, mask=mask)

    def to_table(self) -> pa.Table:
        """The buffered rows as a table in `SCHEMA`; the buffer is emptied."""
        table = pa.Table.from_arrays(
            [
                pa.array(self.task, pa.string()),
                pa.array(self.template, pa.string()),
                pa.array(self.user_id, pa.int64()),
                pa.array(self.input, pa.string()),
                pa.array(self.target, pa.string()),
                pa.array(self.target_item, pa.int64()),
                self._list_array(self.cand_values, self.cand_offsets, self.cand_valid),
                self._list_array(self.shown_values, self.shown_offsets, None),
            ],
            schema=SCHEMA,
        )
        self._reset()
        return table
