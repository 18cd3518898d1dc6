"""A block of users as flat numpy arrays, and the ragged-array helpers the tasks share.

Generation works a block of users at a time: every user's full sequence (train, valid
and test items) lies in one flat `items` array cut by `offsets`. A sample is a *case*,
(user row, target position t): its history is the items before t, its target item
`items[offsets[row] + t]`. Train cases have 1 <= t < len - 2, the valid case t = len - 2,
the test case t = len - 1, which is the leave-one-out split of `recalign.data.split`.

Strings are handled as UTF-8 `bytes`: a user's items are joined once into one string and
every history is a slice of it (a history is a window of consecutive items), so a
sample's text costs a few slices, and Arrow takes the bytes without re-encoding them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import polars as pl

from recalign.constants import ITEMS, RATINGS, USER_ID

DENSE_SEEN_CELLS = 1 << 25  # up to 32 MB: a bool table of users x items beats a search


class Ragged(NamedTuple):
    """Rows of variable length: row r is `values[offsets[r]:offsets[r + 1]]`."""

    offsets: np.ndarray  # int64, n + 1
    values: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def take(self, rows: np.ndarray) -> Ragged:
        """The given rows, in that order."""
        return ranges(self.values, self.offsets[:-1][rows], self.offsets[1:][rows])


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _segment_index(starts: np.ndarray, lengths: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """For every output element, the index of its source: starts[r] + (its place in row r)."""
    return np.arange(offsets[-1], dtype=np.int64) + np.repeat(starts - offsets[:-1], lengths)


def ranges(values: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> Ragged:
    """Row r = `values[starts[r]:stops[r]]`."""
    lengths = np.asarray(stops, dtype=np.int64) - starts
    offsets = _offsets(lengths)
    return Ragged(offsets, values[_segment_index(starts, lengths, offsets)])


def concat_rows(*parts: Ragged) -> Ragged:
    """Row-wise concatenation: row r = parts[0] row r + parts[1] row r + ..."""
    lengths = sum(part.lengths for part in parts)
    offsets = _offsets(lengths)
    out = np.empty(offsets[-1], dtype=np.result_type(*(p.values for p in parts)))
    cursor = offsets[:-1].copy()
    for part in parts:
        n = part.lengths
        out[_segment_index(cursor, n, _offsets(n))] = part.values
        cursor += n
    return Ragged(offsets, out)


def stack_rows(parts: list[Ragged]) -> Ragged:
    """Vertical stacking: the rows of parts[0], then of parts[1], ..."""
    if len(parts) == 1:
        return parts[0]
    offsets = _offsets(np.concatenate([p.lengths for p in parts]))
    return Ragged(offsets, np.concatenate([p.values for p in parts]))


def empty_rows(n: int) -> Ragged:
    return Ragged(np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64))


def matrix_rows(matrix: np.ndarray) -> Ragged:
    n, k = matrix.shape
    return Ragged(np.arange(n + 1, dtype=np.int64) * k, matrix.reshape(-1))


@dataclass(frozen=True)
class Joined:
    """Each user's elements joined by a separator; element k spans text[start[k]:end[k]]."""

    texts: list[bytes]  # one per user row
    start: np.ndarray  # per flat element: byte offset in its user's text
    end: np.ndarray


@dataclass
class Batch:
    """Users (ascending) with their full sequences, flattened."""

    user_ids: np.ndarray  # int64, n
    offsets: np.ndarray  # int64, n + 1
    items: np.ndarray  # int64, flat
    ratings: np.ndarray | None  # float64, flat (aligned with items)
    num_items: int
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, num_items: int) -> Batch:
        items = frame.get_column(ITEMS)
        offsets = _offsets(items.list.len().to_numpy().astype(np.int64))
        ratings = None
        if RATINGS in frame.columns:
            ratings = frame.get_column(RATINGS).explode().to_numpy().astype(np.float64)
        return cls(
            user_ids=frame.get_column(USER_ID).to_numpy().astype(np.int64),
            offsets=offsets,
            items=items.explode().to_numpy().astype(np.int64)
            if offsets[-1]
            else np.zeros(0, np.int64),
            ratings=ratings,
            num_items=num_items,
        )

    def __len__(self) -> int:
        return len(self.user_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def row_of_flat(self) -> np.ndarray:
        found = self._cache.get("row_of_flat")
        if found is None:
            found = self._cache["row_of_flat"] = np.repeat(
                np.arange(len(self), dtype=np.int64), self.lengths
            )
        return found

    def seen(self, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each item (broadcast against `rows`) is in that user's sequence."""
        base = np.int64(self.num_items + 1)
        if len(self) * int(base) <= DENSE_SEEN_CELLS:  # a users x items table: one lookup
            table = self._cache.get("seen_table")
            if table is None:
                table = self._cache["seen_table"] = np.zeros((len(self), int(base)), dtype=bool)
                table[self.row_of_flat, self.items] = True
            return table[rows, items]
        keys = self._cache.get("seen_keys")
        if keys is None:
            keys = self._cache["seen_keys"] = np.sort(self.row_of_flat * base + self.items)
        query = np.asarray(rows) * base + items
        if not len(keys):
            return np.zeros(query.shape, dtype=bool)
        found = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        return keys[found] == query

    def distinct_counts(self) -> np.ndarray:
        """Distinct items per user (for the negative samplers' feasibility check)."""
        found = self._cache.get("distinct_counts")
        if found is None:
            keys = self.row_of_flat * np.int64(self.num_items + 1) + self.items
            unique_rows = np.unique(keys) // np.int64(self.num_items + 1)
            found = self._cache["distinct_counts"] = np.bincount(unique_rows, minlength=len(self))
        return found

    def joined(self, name: str, elements: Callable[[], list[bytes]], separator: bytes) -> Joined:
        """Join the elements (one per flat item, made by `elements()`) per user; cached."""
        found = self._cache.get(name)
        if found is not None:
            return found
        elements = elements()
        sizes = np.fromiter(map(len, elements), dtype=np.int64, count=len(elements))
        step = sizes + len(separator)
        global_start = np.cumsum(step) - step
        user_base = global_start[self.offsets[:-1][self.lengths > 0]]
        start = global_start - np.repeat(user_base, self.lengths[self.lengths > 0])
        bounds = self.offsets.tolist()
        texts = [separator.join(elements[bounds[r] : bounds[r + 1]]) for r in range(len(self))]
        found = self._cache[name] = Joined(texts, start, start + sizes)
        return found


@dataclass
class Cases:
    """The samples of one task and split: (user row, target position) pairs, row-major."""

    rows: np.ndarray  # int64: batch row of each case
    t: np.ndarray  # int64: target position in the user's full sequence
    keys: np.ndarray  # uint64: the (seed, task, split, user) key of each case

    def __len__(self) -> int:
        return len(self.rows)

    def target_flat(self, batch: Batch) -> np.ndarray:
        return batch.offsets[self.rows] + self.t

    def window_start(self, batch: Batch, size: int, *, inclusive: bool = False) -> np.ndarray:
        """Flat index of the first of the `size` items before t (or ending at t)."""
        end = self.t + 1 if inclusive else self.t
        return batch.offsets[self.rows] + np.maximum(end - size, 0)

    def select(self, mask: np.ndarray) -> Cases:
        return Cases(self.rows[mask], self.t[mask], self.keys[mask])
