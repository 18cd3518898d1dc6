"""Merge the user shards of one generation into one samples directory.

Shards partition the users into contiguous blocks of the canonical order, so writing
shard 0, 1, ... N-1 one after the other gives the unsharded rows in the unsharded order.
The Parquet row groups are copied as they are (nothing is decoded into Python).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recalign.constants import SPLITS
from recalign.errors import ConfigError
from recalign.fileio import parquet_errors, parquet_file
from recalign.manifest import build_manifest, read_manifest, write_manifest

# What every shard of one generation must agree on.
SHARED_KEYS = (
    "dataset",
    "data_hash",
    "preset",
    "seed",
    "family",
    "item_repr",
    "id_seed",
    "max_history",
    "domain",
    "tasks",
    "skipped",
    "templates",
    "config_hash",
    "num_shards",
)
# Copied from the shards' manifests into the merged one (shard keys are reset).
KEPT_KEYS = (*(k for k in SHARED_KEYS if k != "num_shards"), "data_path", "config", "files")


def _read_shards(shard_dirs: Sequence[str | Path]) -> list[tuple[Path, dict[str, Any]]]:
    if not shard_dirs:
        raise ConfigError("no shard directories to merge")
    shards = []
    for directory in map(Path, shard_dirs):
        manifest = read_manifest(directory)
        if manifest.get("kind") != "samples" or manifest.get("shard") is None:
            raise ConfigError(f"{directory} is not a samples shard (see its manifest.json)")
        shards.append((directory, manifest))
    first_dir, first = shards[0]
    for directory, manifest in shards[1:]:
        for key in SHARED_KEYS:
            if manifest.get(key) != first.get(key):
                raise ConfigError(
                    f"{directory} and {first_dir} are not shards of one generation: "
                    f"their manifests differ in {key!r}"
                )
    shards.sort(key=lambda pair: pair[1]["shard"])
    indices = [manifest["shard"] for _, manifest in shards]
    expected = list(range(first["num_shards"]))
    if indices != expected:
        repeated = sorted(i for i, n in Counter(indices).items() if n > 1)
        missing = sorted(set(expected) - set(indices))
        raise ConfigError(
            f"the shards must be 0..{first['num_shards'] - 1}, each once; "
            f"missing {missing}, repeated {repeated}"
        )
    return shards


def merge_samples(
    shard_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    compression: str = "zstd",
    record_sources: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """Write `out_dir` as if the generation had run unsharded; returns its manifest."""
    from recalign.samples.generate import ITEM_TEXTS_FILE
    from recalign.samples.writers import SplitWriters

    shards = _read_shards(shard_dirs)
    out = Path(out_dir)
    if any(out.resolve() == directory.resolve() for directory, _ in shards):
        raise ConfigError(f"{out} is one of the shards: merge into a new directory")
    out.mkdir(parents=True, exist_ok=True)
    writers = SplitWriters(out, compression)
    ok = False
    try:
        for split in SPLITS:
            for directory, _ in shards:
                path = directory / f"{split}.parquet"
                part = parquet_file(path)
                for group in range(part.metadata.num_row_groups):
                    with parquet_errors(path):
                        table = part.read_row_group(group)
                    writers.write(split, table)
        ok = True
    finally:
        writers.close(ok)
    shutil.copyfile(shards[0][0] / ITEM_TEXTS_FILE, out / ITEM_TEXTS_FILE)

    first = shards[0][1]
    counts = {split: Counter() for split in SPLITS}
    for _, manifest in shards:
        for split in SPLITS:
            counts[split].update(manifest["counts"][split])
    order = {task: i for i, task in enumerate(first["tasks"])}
    merged = build_manifest(
        "samples",
        **{key: first.get(key) for key in KEPT_KEYS},
        shard=None,
        num_shards=None,
        users=sum(manifest["users"] for _, manifest in shards),
        counts={
            split: dict(sorted(counts[split].items(), key=lambda kv: order[kv[0]]))
            for split in SPLITS
        },
        totals={split: sum(counts[split].values()) for split in SPLITS},
        **({"merged_from": [str(d) for d, _ in shards]} if record_sources else {}),
        **extra,
    )
    write_manifest(out, merged)
    return merged
