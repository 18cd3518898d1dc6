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

from recalign.artifacts import (
    DatasetDir,
    SamplesDir,
    SamplesManifest,
    find_input,
    recorded_path,
    staged_output,
)
from recalign.artifacts.dirs import ITEM_TEXTS_FILE
from recalign.constants import SPLITS
from recalign.errors import ConfigError
from recalign.fileio import parquet_errors, parquet_file
from recalign.samples.semantic import SEMANTIC_CODEBOOK_FILE, SEMANTIC_IDS_FILE

# What every shard of one generation must agree on.
SHARED_KEYS = (
    "dataset",
    "preset",
    "seed",
    "family",
    "item_repr",
    "id_seed",
    "max_history",
    "separator",
    "domain",
    "tasks",
    "skipped",
    "template_versions",
    "config_hash",
    "num_shards",
)


def _read_shards(shard_dirs: Sequence[str | Path]) -> list[SamplesDir]:
    if not shard_dirs:
        raise ConfigError("no shard directories to merge")
    shards = []
    for directory in map(Path, shard_dirs):
        shard = SamplesDir.open(directory)
        if shard.manifest.shard is None:
            raise ConfigError(f"{directory} is not a samples shard (see its manifest.json)")
        shards.append(shard)
    first = shards[0]
    for shard in shards[1:]:
        theirs, ours = shard.manifest, first.manifest
        if theirs.data_hash != ours.data_hash:
            raise ConfigError(
                f"{shard.path} and {first.path} are not shards of one generation: "
                "they were made from different datasets"
            )
        for key in SHARED_KEYS:
            if getattr(theirs, key) != getattr(ours, key):
                raise ConfigError(
                    f"{shard.path} and {first.path} are not shards of one generation: "
                    f"their manifests differ in {key!r}"
                )
    shards.sort(key=lambda shard: shard.manifest.shard)
    indices = [shard.manifest.shard for shard in shards]
    num_shards = int(first.manifest.num_shards or 0)
    expected = list(range(num_shards))
    if indices != expected:
        repeated = sorted(i for i, n in Counter(indices).items() if n > 1)
        missing = sorted(set(expected) - set(indices))
        raise ConfigError(
            f"the shards must be 0..{num_shards - 1}, each once; "
            f"missing {missing}, repeated {repeated}"
        )
    return shards


def merge_samples(
    shard_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    compression: str = "zstd",
    record_sources: bool = True,
) -> SamplesManifest:
    """Write `out_dir` as if the generation had run unsharded; returns its manifest."""
    from recalign.samples.writers import SplitWriters

    shards = _read_shards(shard_dirs)
    out = Path(out_dir)
    if any(out.resolve() == shard.path.resolve() for shard in shards):
        raise ConfigError(f"{out} is one of the shards: merge into a new directory")
    with staged_output(out, SamplesManifest) as staging:
        writers = SplitWriters(staging.path, compression)
        ok = False
        try:
            for split in SPLITS:
                for shard in shards:
                    path = shard.split(split)
                    part = parquet_file(path)
                    for group in range(part.metadata.num_row_groups):
                        with parquet_errors(path):
                            table = part.read_row_group(group)
                        writers.write(split, table)
            ok = True
        finally:
            writers.close(ok)
        first = shards[0]
        shutil.copyfile(first.item_texts, staging.path / ITEM_TEXTS_FILE)
        for name in (SEMANTIC_IDS_FILE, SEMANTIC_CODEBOOK_FILE):  # the same in every shard
            if (first.path / name).is_file():
                shutil.copyfile(first.path / name, staging.path / name)
        for name in first.manifest.templates:
            (staging.path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(first.path / name, staging.path / name)
        counts = {split: Counter() for split in SPLITS}
        for shard in shards:
            for split in SPLITS:
                counts[split].update(shard.manifest.counts[split])
        order = {task: i for i, task in enumerate(first.manifest.tasks)}
        inputs = {}
        if (dataset := first.manifest.inputs.get("dataset")) is not None:
            # Recorded again from where the merged directory is.
            found = find_input(first.path, dataset, DatasetDir)
            path = recorded_path(found, out) if found is not None else dataset.path
            inputs["dataset"] = dataset.model_copy(update={"path": path})
        merged = first.manifest.model_copy(
            update={
                "inputs": inputs,
                "shard": None,
                "num_shards": None,
                "users": sum(shard.manifest.users for shard in shards),
                "counts": {
                    split: dict(sorted(counts[split].items(), key=lambda kv: order[kv[0]]))
                    for split in SPLITS
                },
                "totals": {split: sum(counts[split].values()) for split in SPLITS},
                "merged_from": [str(s.path) for s in shards] if record_sources else None,
            }
        )
        # What made it (time, versions, command) is this merge; the files are its own.
        made = {"created", "versions", "git_revision", "command", "files", "content_hash"}
        return staging.commit(SamplesManifest(**merged.model_dump(exclude=made)))
