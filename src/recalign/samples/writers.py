"""Writing the sample splits: one Parquet file per split, written whole or not at all."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from recalign.constants import SPLITS
from recalign.samples.buffer import SCHEMA


class SplitWriters:
    """One ParquetWriter per split, writing to temporary names renamed on success.

    Encoding and compressing the row groups (about a third of a run) happens in a
    background thread, which Arrow lets run without the GIL: the next block of users is
    generated meanwhile. The queue is short, so memory stays flat.
    """

    def __init__(self, out: Path, compression: str) -> None:
        self.paths = {split: out / f"{split}.parquet" for split in SPLITS}
        self.tmp = {split: out / f".{split}.parquet.tmp" for split in SPLITS}
        self.writers = {
            split: pq.ParquetWriter(
                self.tmp[split],
                SCHEMA,
                compression=compression,
                use_dictionary=["task", "template", "target"],
                write_statistics=["user_id", "target_item"],
            )
            for split in SPLITS
        }
        self.error: BaseException | None = None
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.thread = threading.Thread(target=self._drain, name="samples-writer", daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue  # keep taking tables so that the generating thread never blocks
            split, table = item
            try:
                self.writers[split].write_table(table, row_group_size=table.num_rows)
            except BaseException as error:  # re-raised in the generating thread
                self.error = error

    def write(self, split: str, table: pa.Table) -> None:
        if self.error is not None:
            raise self.error
        if table.num_rows:
            self.queue.put((split, table))

    def close(self, ok: bool) -> None:
        """Finish writing; keep the files if `ok` (else remove them) and raise a write error."""
        self.queue.put(None)
        self.thread.join()
        keep = ok and self.error is None
        for split, writer in self.writers.items():
            writer.close()
            if keep:
                self.tmp[split].replace(self.paths[split])
            else:
                self.tmp[split].unlink(missing_ok=True)
        if ok and self.error is not None:  # else the generating thread's error propagates
            raise self.error
