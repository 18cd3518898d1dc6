"""A samples split streamed from Parquet into a memory-mapped Arrow file of texts.

Nothing here holds the split in memory: Parquet is read in record batches, the rows a
run uses (its task filter, its seeded subset) go to an Arrow file that HF `datasets`
memory-maps, and the one per-sample array kept in memory is the length each sample is
grouped by (4 bytes a sample). Texts become ids per batch in the collator
(`recalign.training.data.encode_batch`).

Lengths for length-grouped batching come from one of two sources:

- `bytes`: the UTF-8 byte lengths of prompt and answer, turned into tokens by a linear
  fit on a strided sample of `CALIBRATION_ROWS` tokenised rows and capped at the
  truncation limits. No tokenisation pass; see bench/RESULTS.md for how it compares.
- `tokens`: the exact lengths, from tokenising every sample once up front.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recalign.constants import INPUT, TARGET, TASK
from recalign.errors import DataFormatError, MissingColumnError, RecalignError
from recalign.training.data import Lengths, encode_batch, sequence_lengths

logger = logging.getLogger(__name__)

LengthSource = Literal["bytes", "tokens"]
READ_ROWS = 8192  # Parquet rows per record batch read (and Arrow rows per batch written)
# pyarrow's default `pre_buffer=True` reads every requested row group into memory before
# the first batch (the whole file here); without it, and with a read buffer, a column
# chunk is read a page at a time.
READ_OPTIONS = {"pre_buffer": False, "buffer_size": 1 << 20}
ENCODE_ROWS = 512  # rows tokenised at once in a length pass: ~10 MB of Python ints
CALIBRATION_ROWS = 2000  # tokenised rows the byte-length fit is made on


@dataclass(frozen=True)
class SampleSplit:
    """One split's Parquet file, its task filter and its number of rows after the filter."""

    path: Path
    tasks: tuple[str, ...] | None
    rows: int


@dataclass
class TextSet:
    """The texts of a split, memory-mapped, with the length each sample is grouped by."""

    dataset: Any  # a `datasets.Dataset` with the columns `input` and `target`
    lengths: np.ndarray  # int32, one per row of `dataset`
    seconds: float  # time to stream, write and measure

    def __len__(self) -> int:
        return len(self.lengths)


def open_split(
    samples_dir: str | Path, split: str, *, tasks: list[str] | None = None
) -> SampleSplit:
    """Check a split's file and columns and count its rows (streaming the task column)."""
    path = Path(samples_dir) / f"{split}.parquet"
    if not path.is_file():
        raise RecalignError(f"{path} does not exist: the samples directory has no {split} split")
    try:
        parquet = pq.ParquetFile(path, **READ_OPTIONS)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataFormatError(f"not a readable Parquet file ({error})", path=path) from None
    names = parquet.schema_arrow.names
    for column in (INPUT, TARGET):
        if column not in names:
            raise MissingColumnError(column, path=path, available=names)
    chosen = tuple(tasks) if tasks is not None and TASK in names else None
    if chosen is None:
        rows = parquet.metadata.num_rows
    else:
        wanted = pa.array(chosen, pa.string())
        rows = sum(
            pc.sum(pc.is_in(batch.column(TASK), value_set=wanted)).as_py() or 0
            for batch in parquet.iter_batches(READ_ROWS, columns=[TASK])
        )
    if rows == 0:
        raise RecalignError(f"{path} has no samples" + (f" for tasks {tasks}" if tasks else ""))
    return SampleSplit(path, chosen, rows)


def choose_rows(n: int, limit: int | None, seed: int) -> np.ndarray | None:
    """A seeded subset of `limit` of `n` rows, in their original order (None: all rows)."""
    if limit is None or n <= limit:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=limit, replace=False))


def iter_texts(
    split: SampleSplit, rows: np.ndarray | None = None, *, batch_rows: int = READ_ROWS
) -> Iterator[pa.Table]:
    """The `input` and `target` of the chosen rows (numbered after the task filter), in order."""
    parquet = pq.ParquetFile(split.path, **READ_OPTIONS)
    columns = [INPUT, TARGET] + ([TASK] if split.tasks is not None else [])
    wanted = pa.array(split.tasks, pa.string()) if split.tasks is not None else None
    file_row = 0  # rows of the file read so far
    seen = 0  # rows that passed the task filter so far
    for batch in parquet.iter_batches(batch_rows, columns=columns):
        table = pa.Table.from_batches([batch])
        positions = np.arange(file_row, file_row + table.num_rows)
        file_row += table.num_rows
        if wanted is not None:
            keep = pc.is_in(table.column(TASK), value_set=wanted)
            table = table.filter(keep)
            positions = positions[keep.to_numpy(zero_copy_only=False)]
        empty = pc.or_(pc.is_null(table.column(INPUT)), pc.is_null(table.column(TARGET)))
        if pc.any(empty).as_py():
            row = int(positions[np.flatnonzero(empty.to_numpy(zero_copy_only=False))[0]])
            raise DataFormatError(
                "sample with an empty input or target", path=split.path, line=row + 1
            )
        if rows is not None:
            lo, hi = np.searchsorted(rows, [seen, seen + table.num_rows])
            table = table.take(pa.array(rows[lo:hi] - seen))
        seen += len(positions)
        if table.num_rows:
            yield table.select([INPUT, TARGET])


def head_texts(split: SampleSplit, rows: np.ndarray | None, count: int) -> list[str]:
    """Prompts and answers of the first `count` chosen rows (a tiny tokenizer's corpus)."""
    prompts: list[str] = []
    answers: list[str] = []
    for table in iter_texts(split, rows):
        take = table.slice(0, count - len(prompts))
        prompts.extend(take.column(INPUT).to_pylist())
        answers.extend(take.column(TARGET).to_pylist())
        if len(prompts) >= count:
            break
    return prompts + answers


def _byte_lengths(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    return (
        pc.binary_length(table.column(INPUT)).to_numpy().astype(np.int32),
        pc.binary_length(table.column(TARGET)).to_numpy().astype(np.int32),
    )


def _token_lengths(tokenizer: Any, family: str, table: pa.Table, lengths: Lengths) -> np.ndarray:
    out = []
    for start in range(0, table.num_rows, ENCODE_ROWS):
        part = table.slice(start, ENCODE_ROWS)
        encoded = encode_batch(
            tokenizer,
            family,
            part.column(INPUT).to_pylist(),
            part.column(TARGET).to_pylist(),
            lengths,
        )
        out.append(np.asarray(sequence_lengths(encoded, family), dtype=np.int32))
    return np.concatenate(out)


def _fit(byte_counts: np.ndarray, token_counts: np.ndarray) -> tuple[float, float]:
    """Least-squares tokens ~ slope * bytes + intercept (a ratio when bytes do not vary)."""
    x, y = byte_counts.astype(np.float64), token_counts.astype(np.float64)
    if len(x) > 1 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        return float(slope), float(intercept)
    return float(y.sum() / max(x.sum(), 1.0)), 0.0


class _ByteEstimate:
    """Byte lengths of every row, a strided sample of texts, and the fitted token lengths."""

    def __init__(self, total: int) -> None:
        self.stride = max(1, total // CALIBRATION_ROWS)
        self.prompt_bytes: list[np.ndarray] = []
        self.answer_bytes: list[np.ndarray] = []
        self.prompts: list[str] = []
        self.answers: list[str] = []
        self.offset = 0

    def add(self, table: pa.Table) -> None:
        prompt_bytes, answer_bytes = _byte_lengths(table)
        self.prompt_bytes.append(prompt_bytes)
        self.answer_bytes.append(answer_bytes)
        first = (-self.offset) % self.stride
        picked = pa.array(np.arange(first, table.num_rows, self.stride))
        sample = table.take(picked)
        self.prompts.extend(sample.column(INPUT).to_pylist())
        self.answers.extend(sample.column(TARGET).to_pylist())
        self.offset += table.num_rows

    def lengths(self, tokenizer: Any, family: str, lengths: Lengths) -> np.ndarray:
        from recalign.models.tokenization import encode_answers, encode_prompts

        prompt_tokens = np.array([len(x) for x in encode_prompts(tokenizer, family, self.prompts)])
        answer_tokens = np.array([len(x) for x in encode_answers(tokenizer, family, self.answers)])
        prompt_bytes = np.concatenate(self.prompt_bytes)
        answer_bytes = np.concatenate(self.answer_bytes)
        sampled = slice(0, None, self.stride)
        estimate = np.zeros(len(prompt_bytes), dtype=np.float64)
        for counts, tokens, limit in (
            (prompt_bytes, prompt_tokens, lengths.max_source_length),
            (answer_bytes, answer_tokens, lengths.max_target_length),
        ):
            slope, intercept = _fit(counts[sampled][: len(tokens)], tokens)
            estimate += np.clip(np.rint(slope * counts + intercept), 1, limit)
        return estimate.astype(np.int32)


def build_text_set(
    split: SampleSplit,
    rows: np.ndarray | None,
    path: str | Path,
    *,
    tokenizer: Any,
    family: str,
    lengths: Lengths,
    source: LengthSource = "bytes",
) -> TextSet:
    """Stream the chosen rows of `split` into the Arrow file `path`, measuring lengths."""
    import datasets

    started = time.perf_counter()
    path = Path(path)
    total = split.rows if rows is None else len(rows)
    estimate = _ByteEstimate(total) if source == "bytes" else None
    exact: list[np.ndarray] = []
    schema = pa.schema([(INPUT, pa.string()), (TARGET, pa.string())])
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for table in iter_texts(split, rows):
            table = table.cast(schema)
            writer.write_table(table)
            if estimate is not None:
                estimate.add(table)
            else:
                exact.append(_token_lengths(tokenizer, family, table, lengths))
    if estimate is not None:
        measured = estimate.lengths(tokenizer, family, lengths)
    else:
        measured = np.concatenate(exact)
    dataset = datasets.Dataset.from_file(str(path))
    seconds = time.perf_counter() - started
    logger.info(
        "%s: %d samples streamed to %s, lengths from %s in %.1fs",
        split.path.name,
        len(dataset),
        path,
        source,
        seconds,
    )
    return TextSet(dataset, measured, seconds)
