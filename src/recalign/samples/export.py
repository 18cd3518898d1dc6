"""Export generated samples: JSON Lines, or a Hugging Face `datasets.DatasetDict`."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from recalign.artifacts import SamplesDir
from recalign.constants import SPLITS
from recalign.errors import ConfigError, RecalignError
from recalign.fileio import parquet_errors, scan_parquet

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("jsonl", "hf")


def split_path(samples_dir: str | Path, split: str) -> Path:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose from {SPLITS}")
    return SamplesDir.open(samples_dir).split(split)


def read_samples(
    samples_dir: str | Path, split: str = "train", task: str | None = None
) -> pl.DataFrame:
    """One split of a samples directory, optionally one task only."""
    path = split_path(samples_dir, split)
    frame = scan_parquet(path)
    if task is not None:
        frame = frame.filter(pl.col("task") == task)
    with parquet_errors(path):
        return frame.collect()


def export_samples(
    samples_dir: str | Path,
    out: str | Path,
    fmt: str = "jsonl",
    splits: Sequence[str] = SPLITS,
) -> list[Path]:
    """Write `out/{split}.jsonl` or a `datasets` DatasetDict saved to `out`."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose from {EXPORT_FORMATS}")
    paths = {split: split_path(samples_dir, split) for split in splits}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        written = []
        for split, path in paths.items():
            target = out / f"{split}.jsonl"
            # Streams row groups, so a large split never sits in memory at once.
            with parquet_errors(path):
                scan_parquet(path).sink_ndjson(target)
            written.append(target)
        logger.info("exported %s to %s", ", ".join(paths), out)
        return written
    try:
        import datasets  # heavy: only for this format
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise RecalignError(
            "exporting to a Hugging Face dataset needs `datasets` (pip install recalign[train])"
        ) from error
    # `from_parquet` converts into a cache; keep that cache out of ~/.cache and delete it.
    with tempfile.TemporaryDirectory(prefix="recalign-hf-") as cache:
        dataset = datasets.DatasetDict(
            {
                split: datasets.Dataset.from_parquet(str(path), cache_dir=cache)
                for split, path in paths.items()
            }
        )
        dataset.save_to_disk(str(out))
    return [out]
