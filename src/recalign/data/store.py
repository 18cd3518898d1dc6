"""The prepared-dataset directory: the contract later stages and outside tools read.

DIR/sequences.parquet   user_id, items (list[int], chronological), [ratings], [timestamps]
DIR/items.parquet       item_id (dense from 1), source_id, text (unique), metadata...
DIR/stats.json          what `recalign data stats --json` prints
DIR/manifest.json       a `DatasetManifest`: source, options, input file hashes, versions,
                        domain, and the size and sha256 of each file above (written last)

The directory is written in a temporary sibling and renamed into place whole
(`recalign.artifacts.staged_output`); `load_prepared` opens only a directory whose
files are the ones its manifest records.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recalign.artifacts import (
    DatasetDir,
    DatasetManifest,
    InputRecord,
    SourceFile,
    file_record,
    recorded_path,
    staged_output,
)
from recalign.artifacts.store import StagedOutput
from recalign.constants import (
    COLD,
    ITEM_ID,
    ITEMS,
    ITEMS_FILE,
    RATINGS,
    SEQUENCES_FILE,
    SOURCE_ID,
    STATS_FILE,
    TEXT,
    TIMESTAMPS,
    USER_ID,
)
from recalign.data.domain import NEUTRAL, Domain, domain_of_manifest
from recalign.data.split import LeaveOneOut, leave_one_out
from recalign.data.stats import compute_stats
from recalign.errors import DataFormatError, MissingColumnError, RecalignError
from recalign.fileio import (
    parquet_errors,
    parquet_file,
    read_parquet,
    record_batches,
    scan_parquet,
)
from recalign.manifest import write_json


@dataclass(frozen=True)
class PreparedDataset:
    """A prepared dataset: items in memory, sequences in memory or read on first use.

    `load_prepared` validates the sequences file by scanning it and leaves it on disk:
    `sequences` reads it whole the first time it is used, while `scan_sequences` and
    `sequence_batches` let a stage (sample generation) stream it with flat memory.
    """

    name: str
    items: pl.DataFrame
    path: Path | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    frame: pl.DataFrame | None = field(default=None, repr=False)  # sequences given in memory

    @cached_property
    def sequences(self) -> pl.DataFrame:
        """Every user's sequence (`user_id`, `items`, ...), in memory."""
        if self.frame is not None:
            return self.frame
        if self.path is None:
            raise RecalignError(f"dataset {self.name!r} has neither sequences nor a directory")
        return read_parquet(self.path / SEQUENCES_FILE)

    def _in_memory(self) -> pl.DataFrame | None:
        """The sequences if they are in memory (given, or read by `sequences` already)."""
        return self.frame if self.frame is not None else self.__dict__.get("sequences")

    def scan_sequences(self) -> pl.LazyFrame:
        """The sequences as a lazy query (the file, unless they are already in memory)."""
        in_memory = self._in_memory()
        if in_memory is not None:
            return in_memory.lazy()
        return pl.scan_parquet(self.path / SEQUENCES_FILE)

    def sequence_batches(
        self, start: int, stop: int, size: int, columns: list[str] | None = None
    ) -> Iterator[pl.DataFrame]:
        """Rows `[start, stop)` of the sequences in file order, `size` rows per batch.

        From a file only the row groups holding those rows are read, one batch at a
        time, so memory depends on `size`, not on the number of users.
        """
        in_memory = self._in_memory()
        if in_memory is not None:
            part = in_memory.slice(start, max(0, stop - start))
            if columns is not None:
                part = part.select(columns)
            for offset in range(0, part.height, size):
                yield part.slice(offset, size)
            return
        yield from _file_batches(self.path / SEQUENCES_FILE, start, stop, size, columns)

    @cached_property
    def num_users(self) -> int:
        return int(self.scan_sequences().select(pl.len()).collect().item())

    @cached_property
    def sequence_columns(self) -> list[str]:
        return self.scan_sequences().collect_schema().names()

    @property
    def has_ratings(self) -> bool:
        return RATINGS in self.sequence_columns

    @property
    def has_timestamps(self) -> bool:
        return TIMESTAMPS in self.sequence_columns

    @property
    def num_items(self) -> int:
        return self.items.height

    @property
    def data_hash(self) -> str | None:
        """The dataset's content hash; samples and runs record it to refuse mismatches."""
        return self.manifest.get("content_hash")

    def record_for(self, directory: str | Path) -> InputRecord | None:
        """How an artefact written to `directory` records this dataset as its input
        (None for a dataset that lives only in memory)."""
        if self.path is None or self.data_hash is None:
            return None
        return InputRecord(
            kind="dataset", path=recorded_path(self.path, directory), content_hash=self.data_hash
        )

    @cached_property
    def domain(self) -> Domain:
        """What the items are and what users do with them (the prompts' words)."""
        return domain_of_manifest({"name": self.name, **self.manifest})

    @cached_property
    def split(self) -> LeaveOneOut:
        return leave_one_out(self.sequences)

    @cached_property
    def item_texts(self) -> np.ndarray:
        """Item texts indexed by item id (index 0 unused, empty string)."""
        ids = self.items.get_column(ITEM_ID).to_numpy()
        texts = np.empty(int(ids.max()) + 1 if len(ids) else 1, dtype=object)
        texts[:] = ""
        texts[ids] = self.items.get_column(TEXT).to_list()
        return texts

    @cached_property
    def cold_items(self) -> np.ndarray:
        """Ids of the cold-start items (`data prepare --cold-items`), sorted; often empty."""
        if COLD not in self.items.columns:
            return np.zeros(0, dtype=np.int64)
        cold = self.items.filter(pl.col(COLD)).get_column(ITEM_ID).to_numpy()
        return np.sort(cold.astype(np.int64))

    @cached_property
    def text_to_item(self) -> dict[str, int]:
        return dict(zip(self.items.get_column(TEXT), self.items.get_column(ITEM_ID), strict=True))

    def stats(self) -> dict[str, Any]:
        return compute_stats(self.sequences, self.items)


def _file_batches(
    path: Path, start: int, stop: int, size: int, columns: list[str] | None
) -> Iterator[pl.DataFrame]:
    """Rows `[start, stop)` of a Parquet file re-cut into batches of exactly `size` rows
    (the last one shorter), so batch boundaries never depend on the file's row groups."""
    file = parquet_file(path)
    groups, skip, offset = [], 0, 0
    for index in range(file.metadata.num_row_groups):
        rows = file.metadata.row_group(index).num_rows
        if offset + rows > start and offset < stop:
            if not groups:
                skip = start - offset
            groups.append(index)
        offset += rows
    remaining = max(0, stop - start)
    pending: list[pl.DataFrame] = []
    pending_rows = 0
    batches = file.iter_batches(size, row_groups=groups, columns=columns)
    for batch in record_batches(path, batches):
        frame = pl.from_arrow(batch)
        if skip:
            dropped = min(skip, frame.height)
            frame, skip = frame.slice(dropped), skip - dropped
        frame = frame.head(remaining)
        remaining -= frame.height
        if frame.height:
            pending.append(frame)
            pending_rows += frame.height
        while pending_rows >= size or (remaining == 0 and pending_rows):
            joined = pl.concat(pending, rechunk=False) if len(pending) > 1 else pending[0]
            yield joined.head(size)
            rest = joined.slice(size)
            pending, pending_rows = ([rest], rest.height) if rest.height else ([], 0)
        if remaining == 0:
            return


def validate_tables(
    sequences: pl.DataFrame | pl.LazyFrame, items: pl.DataFrame, where: str = ""
) -> None:
    """Check the contract; raise a `DataFormatError` naming what is wrong."""
    columns = sequences.lazy().collect_schema().names()
    for column in (USER_ID, ITEMS):
        if column not in columns:
            raise MissingColumnError(column, path=where or SEQUENCES_FILE, available=columns)
    for column in (ITEM_ID, SOURCE_ID, TEXT):
        if column not in items.columns:
            raise MissingColumnError(column, path=where or ITEMS_FILE, available=items.columns)
    ids = items.get_column(ITEM_ID)
    if ids.null_count() or ids.n_unique() != ids.len():
        raise DataFormatError(
            "item ids must be unique and non-null", path=ITEMS_FILE, field=ITEM_ID
        )
    texts = items.get_column(TEXT)
    if texts.null_count() or (texts.str.len_chars() == 0).any():
        raise DataFormatError("every item needs a non-empty text", path=ITEMS_FILE, field=TEXT)
    if texts.n_unique() != texts.len():
        dupes = texts.filter(texts.is_duplicated()).unique().head(3).to_list()
        raise DataFormatError(
            f"item texts must be unique (text -> item is a bijection); duplicated: {dupes}",
            path=ITEMS_FILE,
            field=TEXT,
        )
    # One scan of the sequences (streamed from a file: flat memory) for every check.
    lazy = sequences.lazy()
    names = lazy.collect_schema().names()
    aligned = [c for c in (RATINGS, TIMESTAMPS) if c in names]
    found = lazy.select(
        pl.col(ITEMS).explode().unique().drop_nulls().implode().alias("used"),
        *((pl.col(c).list.len() != pl.col(ITEMS).list.len()).sum().alias(c) for c in aligned),
    ).collect(engine="streaming")
    used = pl.Series(found.get_column("used")[0], dtype=pl.Int64)
    unknown = used.filter(~used.is_in(ids.cast(pl.Int64).implode()))
    if unknown.len():
        raise DataFormatError(
            f"{unknown.len()} item id(s) in sequences are not in items, e.g. {unknown.sort().head(5).to_list()}",
            path=SEQUENCES_FILE,
            field=ITEMS,
        )
    for column in aligned:
        mismatch = int(found.get_column(column)[0])
        if mismatch:
            raise DataFormatError(
                f"{mismatch} user(s) have {column} not aligned with items",
                path=SEQUENCES_FILE,
                field=column,
            )


@dataclass(frozen=True)
class DatasetRecord:
    """What a prepared dataset's manifest says besides its files and stats: where it came
    from (`source`, the raw `input_files`, recorded with their hashes), how it was
    prepared (`options`, `report`) and what its items are (`domain`)."""

    source: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    input_files: Mapping[str, str | Path] = field(default_factory=dict)
    report: Mapping[str, Any] = field(default_factory=dict)
    domain: Domain = NEUTRAL

    def manifest(self, name: str, stats: dict[str, Any]) -> DatasetManifest:
        return DatasetManifest(
            name=name,
            source=dict(self.source),
            options=dict(self.options),
            input_files={key: _source_file(path) for key, path in self.input_files.items()},
            report=dict(self.report),
            domain=self.domain.to_dict(),
            stats=stats,
        )


def write_prepared(
    out_dir: str | Path,
    name: str,
    sequences: pl.DataFrame,
    items: pl.DataFrame,
    record: DatasetRecord | None = None,
) -> PreparedDataset:
    """Validate and write a prepared dataset; returns it re-read from disk."""
    validate_tables(sequences, items)
    out = Path(out_dir)
    with staged_output(out, DatasetManifest) as staging:
        sequences = sequences.sort(USER_ID)
        sequences.write_parquet(staging.path / SEQUENCES_FILE, statistics=False)
        _finish_prepared(staging, name, sequences, items, record or DatasetRecord())
    return load_prepared(out)


# Rows (users) per Parquet row group of a streamed sequences file. Fixed, so the file's
# bytes (and `data_hash`) depend on the rows alone, not on how the caller batched them.
STREAM_ROW_GROUP_USERS = 1 << 16


class _RowGroupWriter:
    """Writes Arrow tables to Parquet re-chunked into fixed-size row groups."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = None
        self.schema = None
        self.pending: list = []
        self.rows = 0

    def add(self, table) -> None:
        import pyarrow.parquet as pq

        if self.writer is None:
            self.schema = table.schema
            self.writer = pq.ParquetWriter(
                self.path, table.schema, compression="zstd", write_statistics=False
            )
        elif not table.schema.equals(self.schema):
            raise ValueError(f"columns/types {table.schema.names} vs {self.schema.names}")
        self.pending.append(table)
        self.rows += table.num_rows
        while self.rows >= STREAM_ROW_GROUP_USERS:
            self._flush(STREAM_ROW_GROUP_USERS)

    def _flush(self, rows: int) -> None:
        import pyarrow as pa

        combined = pa.concat_tables(self.pending)
        self.writer.write_table(combined.slice(0, rows), row_group_size=rows)
        rest = combined.slice(rows)
        self.pending = [rest] if rest.num_rows else []
        self.rows = rest.num_rows

    def close(self) -> bool:
        """Flush and close; False when nothing was ever written."""
        if self.writer is None:
            return False
        if self.rows:
            self._flush(self.rows)
        self.writer.close()
        return True


def _check_batch(batch: pl.DataFrame, items: pl.DataFrame, number: int, last: int | None) -> int:
    """Validate one streamed batch; returns its last user id."""
    validate_tables(batch, items, where=f"{SEQUENCES_FILE} batch {number}")
    users = batch.get_column(USER_ID)
    if not users.is_sorted() or (last is not None and users[0] <= last):
        raise DataFormatError(
            f"batch {number} is not in increasing user-id order after user {last}",
            path=SEQUENCES_FILE,
            field=USER_ID,
        )
    if users.n_unique() != users.len():
        raise DataFormatError(
            f"batch {number} repeats a user id", path=SEQUENCES_FILE, field=USER_ID
        )
    return int(users[-1])


def write_prepared_streaming(
    out_dir: str | Path,
    name: str,
    sequence_batches: Iterable[pl.DataFrame],
    items: pl.DataFrame,
    record: DatasetRecord | None = None,
    *,
    load: bool = True,
) -> PreparedDataset | None:
    """`write_prepared` for sequences that arrive in batches (memory flat in the users).

    Batches must share one schema and come in increasing user-id order (the file is
    sorted by user, as `write_prepared` writes it). Each batch is validated against the
    items as it arrives; stats are then computed by scanning the written file lazily.
    The same rows give the same file however they were batched. With `load=False`
    nothing is read back (returns None), so a million-user dataset never has to fit in
    memory.
    """
    out = Path(out_dir)
    with staged_output(out, DatasetManifest) as staging:
        path = staging.path / SEQUENCES_FILE
        writer = _RowGroupWriter(path)
        last_user: int | None = None
        try:
            for number, batch in enumerate(sequence_batches, start=1):
                if batch.height == 0:
                    continue
                last_user = _check_batch(batch, items, number, last_user)
                try:
                    writer.add(batch.to_arrow())
                except ValueError as err:  # pyarrow's ArrowInvalid is a ValueError
                    raise DataFormatError(
                        f"batch {number} does not match the first batch ({err})",
                        path=SEQUENCES_FILE,
                    ) from None
            written = writer.close()
        except BaseException:
            if writer.writer is not None:
                writer.writer.close()
            raise
        if not written:
            raise RecalignError(
                f"no sequences to write for dataset {name!r}: every batch was empty"
            )
        _finish_prepared(staging, name, pl.scan_parquet(path), items, record or DatasetRecord())
    return load_prepared(out) if load else None


def _finish_prepared(
    staging: StagedOutput,
    name: str,
    sequences: pl.DataFrame | pl.LazyFrame,
    items: pl.DataFrame,
    record: DatasetRecord,
) -> None:
    """Write items and stats next to an already written sequences file, then commit the
    directory (its manifest last)."""
    out = staging.path
    items = items.sort(ITEM_ID)
    items.write_parquet(out / ITEMS_FILE, statistics=False)
    stats = compute_stats(sequences, items)
    write_json(out / STATS_FILE, stats)
    staging.commit(record.manifest(name, stats))


def _source_file(path: str | Path) -> SourceFile:
    """A raw input, recorded absolute: `recalign run` checks it for changes from anywhere."""
    record = file_record(path)
    return SourceFile(path=str(Path(path).absolute()), sha256=record.sha256, size=record.size)


def load_prepared(path: str | Path) -> PreparedDataset:
    """Open a prepared-dataset directory: refused when it is not one, or when a file is
    not the one its manifest records (named, with how to prepare it again)."""
    directory = DatasetDir.open(path)
    items = read_parquet(directory.items)
    sequences = scan_parquet(directory.sequences)
    with parquet_errors(directory.sequences):  # the scan reads every page once
        validate_tables(sequences, items, where=str(directory.path))
    return PreparedDataset(
        name=directory.manifest.name,
        items=items,
        path=directory.path,
        manifest=directory.manifest.model_dump(mode="json"),
    )
